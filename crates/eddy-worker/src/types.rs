//! A partition group's Raft types: the commands it replicates and what
//! applying them answers.

use std::fmt;

use eddy_core::{Event, Hlc, PartitionId};
pub use eddy_raft::RaftNode;
use serde::{Deserialize, Serialize};

/// Raft group id of a partition on the shared transport and storage (the
/// controller is group 0).
pub fn group_of(partition: PartitionId) -> u64 {
    eddy_core::raft_group_of(partition)
}

/// The partition a group id names, if it names one.
pub fn partition_of(group: u64) -> Option<PartitionId> {
    group.checked_sub(1).and_then(|p| PartitionId::try_from(p).ok())
}

/// An idempotent producer's stamp on a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerStamp {
    pub id: u64,
    /// The producer's count of events sent to this partition before this batch.
    pub sequence: u64,
}

/// One client batch inside a command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppendRequest {
    pub producer: Option<ProducerStamp>,
    /// The leader's wall clock when it proposed the batch; hlcs follow it.
    pub proposed_ms: u64,
    pub events: Vec<Event>,
}

/// What a partition group replicates: client batches, gathered by the
/// leader into one entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PartitionCommand {
    Append(Vec<AppendRequest>),
    /// One piece of the leader's processors' states (see [`crate::checkpoint`]).
    CheckpointChunk(crate::checkpoint::CheckpointChunk),
    /// Closes a checkpoint whose pieces committed before it.
    Checkpoint(crate::checkpoint::CheckpointSeal),
}

impl fmt::Display for PartitionCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PartitionCommand::Append(requests) => {
                let events: usize = requests.iter().map(|r| r.events.len()).sum();
                write!(f, "append {events} events in {} batches", requests.len())
            }
            PartitionCommand::CheckpointChunk(c) => {
                write!(f, "piece {} of processor checkpoint {:x} ({} bytes)", c.index, c.id, c.bytes.len())
            }
            PartitionCommand::Checkpoint(c) => {
                write!(f, "seal of processor checkpoint {:x} at offset {} ({} bytes)", c.id, c.offset, c.len)
            }
        }
    }
}

/// Where a batch's events are: event i at `first_offset + i`, hlc `first_hlc + i`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchAck {
    pub first_offset: u64,
    pub count: u32,
    pub first_hlc: Hlc,
}

/// What became of one client batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AppendOutcome {
    Stored(BatchAck),
    /// The batch had been stored before; this is the original acknowledgement.
    Duplicate(BatchAck),
    /// The producer skipped sequence numbers: a batch before this one is missing.
    OutOfOrder {
        expected: u64,
    },
    /// An old retry whose acknowledgement is no longer kept; it was stored.
    Stale {
        next_expected: u64,
    },
    /// The producer's sequence plus the batch's count does not fit a u64.
    SequenceOverflow,
}

/// The answer to a committed command: one outcome per batch, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionResponse {
    pub outcomes: Vec<AppendOutcome>,
}

/// Raft type configuration of a partition group. Spelled out rather than
/// declared with openraft's macro, which cannot name a generic responder.
#[derive(Debug, Clone, Copy, Default, Eq, PartialEq, Ord, PartialOrd)]
pub struct PartitionTypes {}

impl openraft::RaftTypeConfig for PartitionTypes {
    type D = PartitionCommand;
    type R = PartitionResponse;
    type NodeId = u64;
    type Node = RaftNode;
    type Term = u64;
    type LeaderId = openraft::impls::leader_id_adv::LeaderId<Self::Term, Self::NodeId>;
    type Vote = openraft::impls::Vote<Self::LeaderId>;
    type Payload = openraft::EntryPayload<Self::D, Self::NodeId, Self::Node>;
    type Entry = openraft::Entry<<Self::LeaderId as openraft::vote::RaftLeaderId>::Committed, Self::Payload>;
    type Responder<T>
        = crate::proposer::DeliverOnComplete<T>
    where
        T: openraft::OptionalSend + 'static;
    type Batch<T>
        = openraft::impls::InlineBatch<T>
    where
        T: openraft::OptionalSend + 'static;
    type AsyncRuntime = openraft_rt_tokio::TokioRuntime;
    type ErrorSource = openraft::impls::BoxedErrorSource;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_and_partitions_map_both_ways() {
        assert_eq!(group_of(0), 1);
        assert_eq!(partition_of(1), Some(0));
        assert_eq!(partition_of(0), None, "group 0 is the controller");
        assert_eq!(partition_of(group_of(41)), Some(41));
    }
}
