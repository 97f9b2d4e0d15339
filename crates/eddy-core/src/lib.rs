//! Eddy's shared vocabulary, free of I/O: node and partition identities, the
//! node registry, the partition table, cluster settings and the placement
//! operations that change them. Every other crate speaks in these types; the
//! pure crates (placement, models, simulator) depend on nothing else.

pub mod event;
pub mod history;
pub mod map;
pub mod node;
pub mod ops;
pub mod policy;
pub mod settings;

pub use event::{Event, EventUid, Hlc, StoredEvent, partition_for_key};
pub use history::{TableChange, TableHistory};
pub use map::{ClusterMap, GroupLead, LeaderReport, PartitionAssignment, PartitionTable};
pub use node::{NodeId, NodeRecord, NodeSpec, NodeState, ParseError, Role};
pub use ops::{Operation, Plan};
pub use policy::{PlacementMode, PlacementSettings, Policy, PolicyName};
pub use settings::{ClusterSettings, SettingsError};

/// Partition number, `0..partition_count`.
pub type PartitionId = u32;

/// Raft group id of a partition on the shared transport and storage (the
/// controller is group 0).
pub fn raft_group_of(partition: PartitionId) -> u64 {
    u64::from(partition) + 1
}
