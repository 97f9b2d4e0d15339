//! Placement operations: the only way the partition table changes.
//!
//! Placers (the initial placer now, the adaptive planner later) emit them,
//! the controller commits them, and [`crate::ClusterMap::apply_operations`]
//! is the one place that carries them out on the table.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{NodeId, PartitionId};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Operation {
    /// Give `partition` a new replica on `node`.
    AddReplica { partition: PartitionId, node: NodeId, reason: String },
    /// Take the replica of `partition` off `node`.
    RemoveReplica { partition: PartitionId, node: NodeId, reason: String },
    /// Make the replica on `to` the leader of `partition`.
    TransferLeader { partition: PartitionId, to: NodeId, reason: String },
}

impl Operation {
    pub fn partition(&self) -> PartitionId {
        match self {
            Operation::AddReplica { partition, .. }
            | Operation::RemoveReplica { partition, .. }
            | Operation::TransferLeader { partition, .. } => *partition,
        }
    }

    pub fn reason(&self) -> &str {
        match self {
            Operation::AddReplica { reason, .. }
            | Operation::RemoveReplica { reason, .. }
            | Operation::TransferLeader { reason, .. } => reason,
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Operation::AddReplica { partition, node, reason } => {
                write!(f, "add replica of partition {partition} on node {node} ({reason})")
            }
            Operation::RemoveReplica { partition, node, reason } => {
                write!(f, "remove replica of partition {partition} from node {node} ({reason})")
            }
            Operation::TransferLeader { partition, to, reason } => {
                write!(f, "transfer leader of partition {partition} to node {to} ({reason})")
            }
        }
    }
}

/// What a placer proposes: operations in the order to carry them out, and
/// what it could not do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub operations: Vec<Operation>,
    /// Constraints the placer could not meet, in words an operator can act on.
    pub unmet: Vec<String>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.operations.is_empty()
    }
}
