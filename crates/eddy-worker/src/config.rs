//! Settings of a worker: partition Raft timing, event log, submit limits.

use std::time::Duration;

use eddy_storage::eventlog::EventLogConfig;

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub raft_heartbeat_interval: Duration,
    pub election_timeout_min: Duration,
    pub election_timeout_max: Duration,
    /// Raft entries between two snapshots of a partition.
    pub snapshot_every_entries: u64,
    /// Raft entries kept after a snapshot, so a replica that was briefly
    /// away catches up from the Raft log instead of a whole snapshot.
    pub keep_entries_after_snapshot: u64,
    pub event_log: EventLogConfig,
    pub limits: Limits,
    /// Submits waiting for a partition's proposer before new ones are refused.
    pub queue_depth: usize,
    /// Proposals of one partition in flight at once.
    pub proposals_in_flight: usize,
    /// Largest Raft entry a proposer builds from queued submits.
    pub max_entry_bytes: usize,
}

/// Limits on what a client may submit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_event_bytes: usize,
    pub max_key_bytes: usize,
    pub max_type_bytes: usize,
    pub max_batch_events: usize,
    pub max_batch_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_event_bytes: 1024 * 1024,
            max_key_bytes: 1024,
            max_type_bytes: 256,
            max_batch_events: 10_000,
            max_batch_bytes: 4 * 1024 * 1024,
        }
    }
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            raft_heartbeat_interval: Duration::from_millis(150),
            election_timeout_min: Duration::from_millis(800),
            election_timeout_max: Duration::from_millis(1600),
            snapshot_every_entries: 1000,
            keep_entries_after_snapshot: 2000,
            event_log: EventLogConfig::default(),
            limits: Limits::default(),
            queue_depth: 4096,
            proposals_in_flight: 2,
            max_entry_bytes: 2 * 1024 * 1024,
        }
    }
}
