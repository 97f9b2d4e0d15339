//! The storage engine's Prometheus metrics: group commits of the Raft logs.
//! Names and help texts live here; the node installs the exporter.

use std::time::Duration;

pub const FSYNCS_TOTAL: &str = "eddy_storage_fsyncs_total";
pub const FSYNC_WRITES_TOTAL: &str = "eddy_storage_fsync_writes_total";
pub const FSYNC_SECONDS: &str = "eddy_storage_fsync_seconds";
pub const FSYNC_ERRORS_TOTAL: &str = "eddy_storage_fsync_errors_total";

/// Registers the help texts; harmless to call more than once.
pub fn describe() {
    metrics::describe_counter!(FSYNCS_TOTAL, "group commits of the Raft logs (one fsync each)");
    metrics::describe_counter!(FSYNC_WRITES_TOTAL, "Raft log writes made durable by those fsyncs");
    metrics::describe_histogram!(FSYNC_SECONDS, metrics::Unit::Seconds, "time of one group commit");
    metrics::describe_counter!(FSYNC_ERRORS_TOTAL, "group commits that failed (the node must restart)");
}

pub(crate) fn group_commit(writes: usize, took: Duration, failed: bool) {
    metrics::counter!(FSYNCS_TOTAL).increment(1);
    metrics::counter!(FSYNC_WRITES_TOTAL).increment(writes as u64);
    metrics::histogram!(FSYNC_SECONDS).record(took.as_secs_f64());
    if failed {
        metrics::counter!(FSYNC_ERRORS_TOTAL).increment(1);
    }
}
