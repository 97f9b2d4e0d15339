//! Worker errors, each saying what the caller can do about it.

use eddy_core::{NodeId, PartitionId};

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("node does not lead partition {partition}; its leader is node {leader_id} at {leader_addr}")]
    NotLeader { partition: PartitionId, leader_id: NodeId, leader_addr: String },
    #[error("partition {partition} has no leader right now; retry shortly")]
    NoLeader { partition: PartitionId },
    #[error("invalid request: {0}")]
    InvalidArgument(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("partition {partition} has {queued} submits waiting; retry after {retry_after_ms} ms")]
    Overloaded { partition: PartitionId, queued: usize, retry_after_ms: u64 },
    #[error(
        "producer {producer} skipped sequence numbers on partition {partition}: expected {expected}; resend from there"
    )]
    OutOfOrder { partition: PartitionId, producer: u64, expected: u64 },
    #[error("the cluster map is not known yet on this node; retry shortly")]
    NotReady,
    #[error("offset {offset} of partition {partition} was removed by retention; the oldest kept is {start}")]
    Gone { partition: PartitionId, offset: u64, start: u64 },
    #[error("partition {partition} stopped: {reason}; restart this eddyd and see its log")]
    Stopped { partition: PartitionId, reason: String },
    #[error("partition {partition} storage: {reason}")]
    Storage { partition: PartitionId, reason: String },
}
