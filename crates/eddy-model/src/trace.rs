//! The recorded load history of a cluster, as `eddyctl trace export` writes
//! it and the simulator replays it: per node its capacity, price and
//! utilisation over time, per partition its event rate and CPU cost per
//! event over time. Format `eddy-trace/1`, JSON; README documents it.

use serde::{Deserialize, Serialize};

pub const TRACE_FORMAT: &str = "eddy-trace/1";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trace {
    /// Always [`TRACE_FORMAT`].
    pub format: String,
    /// Milliseconds between samples (telemetry interval).
    pub interval_ms: u64,
    pub nodes: Vec<NodeTrace>,
    pub partitions: Vec<PartitionTrace>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeTrace {
    pub node: u64,
    pub capacity_cores: f64,
    pub price_per_hour: f64,
    pub samples: Vec<NodePoint>,
}

/// One interval of a node.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodePoint {
    pub at_ms: u64,
    /// Processor CPU over capacity (0..1, above 1 when overloaded).
    pub utilisation: f64,
    pub processed_events: u64,
    pub processed_p99_ms: f64,
    pub host_cpu_busy: f64,
    pub process_cpu_cores: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionTrace {
    pub partition: u32,
    pub samples: Vec<PartitionPoint>,
}

/// One interval of a partition, as its leader reported it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionPoint {
    pub at_ms: u64,
    pub leader: u64,
    /// Events stored in the interval.
    pub events: u64,
    pub events_per_s: f64,
    pub bytes_per_s: f64,
    /// Mean CPU per processed event; absent when none was processed.
    pub cpu_ms_per_event: Option<f64>,
}

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("not a trace: {0}")]
    Parse(#[from] serde_json::Error),
    #[error("trace format {found:?} is not supported; this build reads {TRACE_FORMAT:?}")]
    Format { found: String },
    #[error("{0}")]
    Invalid(String),
}

impl Trace {
    pub fn new(interval_ms: u64) -> Self {
        Trace { format: TRACE_FORMAT.to_owned(), interval_ms, nodes: Vec::new(), partitions: Vec::new() }
    }

    /// Reads a trace and checks it: known format, samples in time order,
    /// no negative or non-finite values.
    pub fn from_json(text: &str) -> Result<Self, TraceError> {
        let trace: Trace = serde_json::from_str(text)?;
        if trace.format != TRACE_FORMAT {
            return Err(TraceError::Format { found: trace.format });
        }
        trace.validate()?;
        Ok(trace)
    }

    pub fn to_json(&self) -> Result<String, TraceError> {
        Ok(serde_json::to_string_pretty(self)?)
    }

    fn validate(&self) -> Result<(), TraceError> {
        let bad = |what: String| Err(TraceError::Invalid(what));
        for node in &self.nodes {
            if !(node.capacity_cores.is_finite() && node.capacity_cores > 0.0) {
                return bad(format!("node {}: capacity_cores must be above 0", node.node));
            }
            if !ordered(node.samples.iter().map(|s| s.at_ms)) {
                return bad(format!("node {}: samples out of time order", node.node));
            }
        }
        for partition in &self.partitions {
            if !ordered(partition.samples.iter().map(|s| s.at_ms)) {
                return bad(format!("partition {}: samples out of time order", partition.partition));
            }
            let sane = |v: f64| v.is_finite() && v >= 0.0;
            if let Some(s) = partition
                .samples
                .iter()
                .find(|s| !(sane(s.events_per_s) && sane(s.bytes_per_s) && s.cpu_ms_per_event.is_none_or(sane)))
            {
                return bad(format!(
                    "partition {} at {} ms: negative or non-finite values",
                    partition.partition, s.at_ms
                ));
            }
        }
        Ok(())
    }
}

fn ordered(times: impl Iterator<Item = u64>) -> bool {
    let mut last = None;
    for t in times {
        if last.is_some_and(|l| t <= l) {
            return false;
        }
        last = Some(t);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_trace() -> Trace {
        let mut trace = Trace::new(1000);
        trace.nodes.push(NodeTrace {
            node: 1,
            capacity_cores: 2.0,
            price_per_hour: 0.25,
            samples: vec![NodePoint {
                at_ms: 1000,
                utilisation: 0.5,
                processed_events: 10,
                processed_p99_ms: 3.0,
                host_cpu_busy: 0.4,
                process_cpu_cores: 0.9,
            }],
        });
        trace.partitions.push(PartitionTrace {
            partition: 0,
            samples: vec![
                PartitionPoint {
                    at_ms: 1000,
                    leader: 1,
                    events: 10,
                    events_per_s: 10.0,
                    bytes_per_s: 2560.0,
                    cpu_ms_per_event: Some(1.5),
                },
                PartitionPoint {
                    at_ms: 2000,
                    leader: 1,
                    events: 0,
                    events_per_s: 0.0,
                    bytes_per_s: 0.0,
                    cpu_ms_per_event: None,
                },
            ],
        });
        trace
    }

    #[test]
    fn a_trace_round_trips() -> Result<(), TraceError> {
        let trace = sample_trace();
        assert_eq!(Trace::from_json(&trace.to_json()?)?, trace);
        Ok(())
    }

    #[test]
    fn bad_traces_are_refused_with_a_reason() -> Result<(), TraceError> {
        let mut other = sample_trace();
        other.format = "eddy-trace/9".into();
        assert!(matches!(Trace::from_json(&other.to_json()?), Err(TraceError::Format { .. })));
        let mut unordered = sample_trace();
        unordered.partitions[0].samples.swap(0, 1);
        let err = Trace::from_json(&unordered.to_json()?).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("partition 0") && err.contains("time order"), "{err}");
        assert!(matches!(Trace::from_json("{\"format\": 1}"), Err(TraceError::Parse(_))));
        Ok(())
    }
}
