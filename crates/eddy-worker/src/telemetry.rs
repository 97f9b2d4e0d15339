//! What a worker measures for the controller's models: per partition it
//! leads, events and bytes stored, submit-to-commit latency, processor CPU,
//! and the response time of processed events. Meters are updated where the
//! work happens and drained once per telemetry report.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eddy_core::PartitionId;
use hdrhistogram::Histogram;

/// Latencies are kept in microseconds, up to an hour, to 2 significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    match Histogram::new_with_bounds(1, 3_600_000_000, 2) {
        Ok(h) => h,
        Err(_) => unreachable!("constant histogram bounds are valid"),
    }
}

/// One partition's counters since the last drain.
pub struct PartitionMeter {
    stored_events: AtomicU64,
    stored_bytes: AtomicU64,
    processed_events: AtomicU64,
    processor_cpu_us: AtomicU64,
    commit_us: Mutex<Histogram<u64>>,
    processed_us: Mutex<Histogram<u64>>,
}

impl Default for PartitionMeter {
    fn default() -> Self {
        PartitionMeter {
            stored_events: AtomicU64::new(0),
            stored_bytes: AtomicU64::new(0),
            processed_events: AtomicU64::new(0),
            processor_cpu_us: AtomicU64::new(0),
            commit_us: Mutex::new(latency_histogram()),
            processed_us: Mutex::new(latency_histogram()),
        }
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl PartitionMeter {
    /// A batch of `events` (`bytes` in all) committed `took` after it was queued.
    pub fn stored(&self, events: usize, bytes: usize, took: Duration) {
        self.stored_events.fetch_add(events as u64, Relaxed);
        self.stored_bytes.fetch_add(bytes as u64, Relaxed);
        if let Ok(mut h) = self.commit_us.lock() {
            h.saturating_record(micros(took).max(1));
        }
    }

    /// Events folded into processors for `cpu`, each `latencies` after its submission.
    pub fn processed(&self, cpu: Duration, latencies: impl Iterator<Item = Duration>) {
        self.processor_cpu_us.fetch_add(micros(cpu), Relaxed);
        let mut count = 0;
        if let Ok(mut h) = self.processed_us.lock() {
            for latency in latencies {
                h.saturating_record(micros(latency).max(1));
                count += 1;
            }
        }
        self.processed_events.fetch_add(count, Relaxed);
    }

    fn drain(&self) -> MeterReading {
        let take = |h: &Mutex<Histogram<u64>>| {
            h.lock().map_or_else(
                |_| latency_histogram(),
                |mut h| {
                    let out = h.clone();
                    h.reset();
                    out
                },
            )
        };
        MeterReading {
            stored_events: self.stored_events.swap(0, Relaxed),
            stored_bytes: self.stored_bytes.swap(0, Relaxed),
            processed_events: self.processed_events.swap(0, Relaxed),
            processor_cpu_us: self.processor_cpu_us.swap(0, Relaxed),
            commit_us: take(&self.commit_us),
            processed_us: take(&self.processed_us),
        }
    }
}

/// What a partition's meter held at a drain.
#[derive(Debug, Clone)]
pub struct MeterReading {
    pub stored_events: u64,
    pub stored_bytes: u64,
    pub processed_events: u64,
    pub processor_cpu_us: u64,
    pub commit_us: Histogram<u64>,
    pub processed_us: Histogram<u64>,
}

impl MeterReading {
    pub fn cpu_ms_per_event(&self) -> Option<f64> {
        (self.processed_events > 0).then(|| self.processor_cpu_us as f64 / 1000.0 / self.processed_events as f64)
    }
}

/// One replica's share of a telemetry report.
#[derive(Debug, Clone)]
pub struct ReplicaTelemetry {
    pub partition: PartitionId,
    pub leader: bool,
    /// What the partition's meter counted since the last report.
    pub reading: Option<MeterReading>,
    pub queue_depth: usize,
    pub log_bytes: u64,
}

/// The meters of all partitions of a node.
#[derive(Default)]
pub struct Meters {
    partitions: Mutex<BTreeMap<PartitionId, Arc<PartitionMeter>>>,
}

impl Meters {
    pub fn meter(&self, partition: PartitionId) -> Arc<PartitionMeter> {
        match self.partitions.lock() {
            Ok(mut map) => map.entry(partition).or_default().clone(),
            Err(_) => Arc::new(PartitionMeter::default()),
        }
    }

    /// Every partition's reading since the last drain, resetting them.
    pub fn drain(&self) -> BTreeMap<PartitionId, MeterReading> {
        let meters: Vec<(PartitionId, Arc<PartitionMeter>)> = match self.partitions.lock() {
            Ok(map) => map.iter().map(|(p, m)| (*p, m.clone())).collect(),
            Err(_) => Vec::new(),
        };
        meters.into_iter().map(|(p, m)| (p, m.drain())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drain_reads_and_resets() {
        let meters = Meters::default();
        let meter = meters.meter(3);
        meter.stored(10, 2560, Duration::from_millis(2));
        meter.stored(5, 1280, Duration::from_millis(4));
        meter.processed(Duration::from_millis(30), [Duration::from_millis(5); 15].into_iter());
        let reading = meters.drain().remove(&3).unwrap_or_else(|| panic!("no reading for partition 3"));
        assert_eq!((reading.stored_events, reading.stored_bytes, reading.processed_events), (15, 3840, 15));
        assert_eq!(reading.cpu_ms_per_event(), Some(2.0));
        assert_eq!(reading.commit_us.len(), 2);
        assert!(reading.commit_us.value_at_quantile(0.99) >= 3_900);
        let again = meters.drain().remove(&3).unwrap_or_else(|| panic!("no reading for partition 3"));
        assert_eq!((again.stored_events, again.processed_events, again.commit_us.len()), (0, 0, 0));
        assert_eq!(again.cpu_ms_per_event(), None);
    }
}
