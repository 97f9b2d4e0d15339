//! The worker's Prometheus metrics: submits, commits, applies and
//! processor work, per partition. Names and help texts live here; the node
//! installs the exporter.

use std::time::Duration;

use eddy_core::{PartitionId, StoredEvent};

use crate::WorkerError;

pub const SUBMITS_TOTAL: &str = "eddy_worker_submits_total";
pub const SUBMIT_EVENTS_TOTAL: &str = "eddy_worker_submit_events_total";
pub const COMMIT_SECONDS: &str = "eddy_worker_commit_seconds";
pub const APPLIED_EVENTS_TOTAL: &str = "eddy_worker_applied_events_total";
pub const PROCESSED_EVENTS_TOTAL: &str = "eddy_worker_processed_events_total";
pub const PROCESSED_SECONDS: &str = "eddy_worker_processed_seconds";
// metrics counters are integers: CPU time is counted in microseconds.
pub const PROCESSOR_CPU_MICROSECONDS_TOTAL: &str = "eddy_worker_processor_cpu_microseconds_total";
pub const CHECKPOINT_BYTES: &str = "eddy_worker_checkpoint_bytes";
pub const CHECKPOINTS_SKIPPED_TOTAL: &str = "eddy_worker_checkpoints_skipped_total";
pub const REPLICAS_BROKEN: &str = "eddy_worker_replicas_broken";
pub const PROCESSOR_PANICS_TOTAL: &str = "eddy_worker_processor_panics_total";

/// Registers the help texts; harmless to call more than once.
pub fn describe() {
    metrics::describe_counter!(SUBMITS_TOTAL, "submitted batches by partition and outcome");
    metrics::describe_counter!(SUBMIT_EVENTS_TOTAL, "events in batches stored by this node as leader");
    metrics::describe_histogram!(
        COMMIT_SECONDS,
        metrics::Unit::Seconds,
        "time from a batch being queued on the leader to its commit"
    );
    metrics::describe_counter!(APPLIED_EVENTS_TOTAL, "events appended to this node's replicas' event logs");
    metrics::describe_counter!(PROCESSED_EVENTS_TOTAL, "events folded into processors (leaders only)");
    metrics::describe_histogram!(
        PROCESSED_SECONDS,
        metrics::Unit::Seconds,
        "time from an event's submission to its fold into the processors (the response time)"
    );
    metrics::describe_counter!(
        PROCESSOR_CPU_MICROSECONDS_TOTAL,
        metrics::Unit::Microseconds,
        "CPU time spent folding events into processors"
    );
    metrics::describe_gauge!(
        CHECKPOINT_BYTES,
        metrics::Unit::Bytes,
        "size of the partition's latest committed processor checkpoint (leaders only)"
    );
    metrics::describe_counter!(
        CHECKPOINTS_SKIPPED_TOTAL,
        "processor checkpoints not taken because they exceeded processors.max_checkpoint_bytes"
    );
    metrics::describe_counter!(
        PROCESSOR_PANICS_TOTAL,
        "processor panics caught (folding an event, answering a query, encoding a checkpoint)"
    );
    metrics::describe_gauge!(
        REPLICAS_BROKEN,
        "replicas the table places on this node that cannot be opened; the controller rebuilds them"
    );
}

pub(crate) fn checkpoint_committed(partition: PartitionId, bytes: u64) {
    metrics::gauge!(CHECKPOINT_BYTES, "partition" => partition.to_string()).set(bytes as f64);
}

pub(crate) fn checkpoint_skipped(partition: PartitionId) {
    metrics::counter!(CHECKPOINTS_SKIPPED_TOTAL, "partition" => partition.to_string()).increment(1);
}

/// `processor` is a configured processor's name: a bounded set.
pub(crate) fn processor_panicked(partition: PartitionId, processor: &str) {
    metrics::counter!(PROCESSOR_PANICS_TOTAL, "partition" => partition.to_string(), "processor" => processor.to_owned())
        .increment(1);
}

pub(crate) fn replicas_broken(count: usize) {
    metrics::gauge!(REPLICAS_BROKEN).set(count as f64);
}

/// What became of a submitted batch, as a label value.
pub fn outcome_label(result: &Result<bool, &WorkerError>) -> &'static str {
    match result {
        Ok(false) => "stored",
        Ok(true) => "duplicate",
        Err(WorkerError::NotLeader { .. }) => "not_leader",
        Err(WorkerError::NoLeader { .. }) => "no_leader",
        Err(WorkerError::InvalidArgument(_)) | Err(WorkerError::TooLarge(_)) => "invalid",
        Err(WorkerError::Overloaded { .. }) => "overloaded",
        Err(WorkerError::OutOfOrder { .. }) => "out_of_order",
        Err(_) => "failed",
    }
}

pub(crate) fn submitted(partition: PartitionId, events: usize, took: Duration, result: &Result<bool, &WorkerError>) {
    let outcome = outcome_label(result);
    let partition = partition.to_string();
    metrics::counter!(SUBMITS_TOTAL, "partition" => partition.clone(), "outcome" => outcome).increment(1);
    if matches!(result, Ok(false)) {
        metrics::counter!(SUBMIT_EVENTS_TOTAL, "partition" => partition.clone()).increment(events as u64);
        metrics::histogram!(COMMIT_SECONDS, "partition" => partition).record(took.as_secs_f64());
    }
}

pub(crate) fn applied(partition: PartitionId, events: usize) {
    if events > 0 {
        metrics::counter!(APPLIED_EVENTS_TOTAL, "partition" => partition.to_string()).increment(events as u64);
    }
}

/// Events folded into processors: their count, the CPU they took, and for
/// each, the time from its submission (its hlc) to now.
pub(crate) fn processed(partition: PartitionId, events: &[StoredEvent], cpu: Duration, now_ms: u64) {
    let partition = partition.to_string();
    metrics::counter!(PROCESSED_EVENTS_TOTAL, "partition" => partition.clone()).increment(events.len() as u64);
    let micros = u64::try_from(cpu.as_micros()).unwrap_or(u64::MAX);
    metrics::counter!(PROCESSOR_CPU_MICROSECONDS_TOTAL, "partition" => partition.clone()).increment(micros);
    let latency = metrics::histogram!(PROCESSED_SECONDS, "partition" => partition);
    for event in events {
        latency.record(now_ms.saturating_sub(event.hlc.physical_ms()) as f64 / 1000.0);
    }
}
