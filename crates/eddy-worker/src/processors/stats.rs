//! `stats`: per key and per type, the count and the sum, min, max and
//! average of a numeric field of JSON payloads, over tumbling windows of
//! event time (hlc) and in total.

use std::collections::BTreeMap;

use eddy_core::StoredEvent;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Processor, decode_state, encode_state};

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Aggregate {
    pub count: u64,
    /// Events whose payload had the field as a number.
    pub measured: u64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
}

impl Aggregate {
    fn add(&mut self, value: Option<f64>) {
        self.count += 1;
        if let Some(v) = value {
            if self.measured == 0 {
                self.min = v;
                self.max = v;
            } else {
                self.min = self.min.min(v);
                self.max = self.max.max(v);
            }
            self.measured += 1;
            self.sum += v;
        }
    }

    fn merge(&mut self, other: &Aggregate) {
        if other.measured > 0 {
            if self.measured == 0 {
                self.min = other.min;
                self.max = other.max;
            } else {
                self.min = self.min.min(other.min);
                self.max = self.max.max(other.max);
            }
        }
        self.count += other.count;
        self.measured += other.measured;
        self.sum += other.sum;
    }

    pub fn to_json(self) -> Value {
        let avg = if self.measured > 0 { Some(self.sum / self.measured as f64) } else { None };
        let measured = self.measured > 0;
        json!({
            "count": self.count,
            "measured": self.measured,
            "sum": self.sum,
            "min": measured.then_some(self.min),
            "max": measured.then_some(self.max),
            "avg": avg,
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Series {
    total: Aggregate,
    /// Window start (ms) -> aggregate.
    windows: BTreeMap<u64, Aggregate>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct State {
    by_key: BTreeMap<String, Series>,
    by_type: BTreeMap<String, Series>,
}

pub struct Stats {
    field: String,
    window_ms: u64,
    windows_kept: usize,
    state: State,
}

impl Stats {
    pub fn new(field: &str, window_ms: u64, windows_kept: usize) -> Self {
        Stats {
            field: field.to_owned(),
            window_ms: window_ms.max(1),
            windows_kept: windows_kept.max(1),
            state: State::default(),
        }
    }

    fn value_of(&self, event: &StoredEvent) -> Option<f64> {
        let payload: Value = serde_json::from_slice(&event.event.payload).ok()?;
        payload.get(&self.field)?.as_f64()
    }
}

fn add(series: &mut Series, window: u64, value: Option<f64>, kept: usize) {
    series.total.add(value);
    series.windows.entry(window).or_default().add(value);
    while series.windows.len() > kept {
        series.windows.pop_first();
    }
}

impl Processor for Stats {
    fn name(&self) -> &str {
        "stats"
    }

    fn apply(&mut self, event: &StoredEvent) {
        let value = self.value_of(event);
        let window = event.hlc.physical_ms() / self.window_ms * self.window_ms;
        let key = String::from_utf8_lossy(&event.event.key).into_owned();
        add(self.state.by_key.entry(key).or_default(), window, value, self.windows_kept);
        let kind = event.event.event_type.clone();
        add(self.state.by_type.entry(kind).or_default(), window, value, self.windows_kept);
    }

    fn checkpoint(&self) -> Vec<u8> {
        encode_state(&self.state)
    }

    fn restore(&mut self, checkpoint: &[u8]) -> Result<(), String> {
        self.state = decode_state(checkpoint)?;
        Ok(())
    }

    /// `{"key": K}` or `{"type": T}`, optionally with `from_ms` and `to_ms`
    /// (event time, `to_ms` exclusive): the total, or every window that
    /// overlaps the range merged, each of them, and the edges of the
    /// windows used (`covered_from_ms`, `covered_to_ms`): windows are
    /// counted whole, so those edges may reach past the range.
    fn query(&self, request: &Value) -> Result<Value, String> {
        let (series, what) =
            match (request.get("key").and_then(Value::as_str), request.get("type").and_then(Value::as_str)) {
                (Some(key), _) => (self.state.by_key.get(key), json!({"key": key})),
                (None, Some(kind)) => (self.state.by_type.get(kind), json!({"type": kind})),
                (None, None) => return Err("stats: name a \"key\" or a \"type\"".into()),
            };
        let bound = |name: &str| match request.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => {
                v.as_u64().map(Some).ok_or_else(|| format!("stats: {name} must be a whole number of ms, got {v}"))
            }
        };
        let (from, to) = (bound("from_ms")?, bound("to_ms")?);
        let empty = Series::default();
        let series = series.unwrap_or(&empty);
        if from.is_none() && to.is_none() {
            return Ok(json!({"of": what, "total": series.total.to_json()}));
        }
        let (from, to) = (from.unwrap_or(0), to.unwrap_or(u64::MAX));
        if from >= to {
            return Err(format!("stats: from_ms ({from}) must be before to_ms ({to})"));
        }
        // A window [start, start + window_ms) overlaps [from, to) when it
        // starts before `to` and ends after `from`.
        let first_start = from.saturating_sub(self.window_ms - 1);
        let mut merged = Aggregate::default();
        let mut windows = Vec::new();
        let mut covered: Option<(u64, u64)> = None;
        for (start, agg) in series.windows.range(first_start..to) {
            let end = start.saturating_add(self.window_ms);
            merged.merge(agg);
            covered = Some(covered.map_or((*start, end), |(a, _)| (a, end)));
            windows.push(json!({"start_ms": start, "end_ms": end, "stats": agg.to_json()}));
        }
        Ok(json!({
            "of": what,
            "window_ms": self.window_ms,
            "range": merged.to_json(),
            "covered_from_ms": covered.map(|c| c.0),
            "covered_to_ms": covered.map(|c| c.1),
            "windows": windows,
        }))
    }
}

#[cfg(test)]
mod tests {
    use eddy_core::{Event, EventUid, Hlc};

    use super::*;

    fn event(ms: u64, value: f64) -> StoredEvent {
        StoredEvent {
            partition: 0,
            offset: ms,
            uid: EventUid::new(1, 0, ms),
            hlc: Hlc::from_millis(ms),
            event: Event {
                key: bytes::Bytes::from_static(b"k"),
                event_type: "reading".into(),
                payload: bytes::Bytes::from(format!("{{\"value\": {value}}}")),
                ..Event::default()
            },
        }
    }

    fn stats() -> Stats {
        let mut stats = Stats::new("value", 1000, 60);
        for (ms, v) in [(500, 1.0), (1500, 2.0), (2500, 4.0), (3500, 8.0)] {
            stats.apply(&event(ms, v));
        }
        stats
    }

    #[test]
    fn a_range_counts_every_window_it_overlaps_and_says_which() {
        let answer = stats().query(&json!({"type": "reading", "from_ms": 1200, "to_ms": 2600})).unwrap();
        assert_eq!(answer["range"]["count"], 2, "{answer}");
        assert_eq!(answer["range"]["sum"], 6.0);
        assert_eq!((answer["covered_from_ms"].as_u64(), answer["covered_to_ms"].as_u64()), (Some(1000), Some(3000)));
        let none = stats().query(&json!({"key": "k", "from_ms": 9000, "to_ms": 9500})).unwrap();
        assert_eq!(none["range"]["count"], 0);
        assert!(none["covered_from_ms"].is_null());
    }

    #[test]
    fn a_reversed_or_malformed_range_is_refused_not_a_panic() {
        let reversed = stats().query(&json!({"type": "reading", "from_ms": 10, "to_ms": 5})).unwrap_err();
        assert!(reversed.contains("must be before"), "{reversed}");
        assert!(stats().query(&json!({"type": "reading", "from_ms": 5, "to_ms": 5})).is_err());
        let text = stats().query(&json!({"type": "reading", "from_ms": "soon"})).unwrap_err();
        assert!(text.contains("from_ms"), "{text}");
        let all = stats().query(&json!({"type": "reading", "from_ms": 0, "to_ms": u64::MAX})).unwrap();
        assert_eq!(all["range"]["count"], 4);
    }
}
