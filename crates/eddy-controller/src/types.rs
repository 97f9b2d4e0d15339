//! The controller group's Raft types: the commands it replicates and what
//! applying them answers.

use std::fmt;

use eddy_core::{ClusterSettings, LeaderReport, NodeId, NodeSpec, NodeState, Operation, PlacementSettings};
pub use eddy_raft::RaftNode;
use serde::{Deserialize, Serialize};

/// Raft group id of the controller on the shared transport and storage.
pub const CONTROLLER_GROUP: u64 = 0;

/// A change to the cluster map. Every field the change depends on travels
/// in the command (including wall-clock stamps), so applying is deterministic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// First command of a cluster: its id and settings. Refused once set.
    InitCluster { cluster_id: String, settings: ClusterSettings },
    /// Adds a node or updates its spec; a returning node becomes up.
    RegisterNode { spec: NodeSpec, at_ms: u64 },
    /// Changes a node's state if it is still `from` (compare and set).
    SetNodeState { node: NodeId, from: NodeState, to: NodeState, at_ms: u64 },
    /// Applies placement operations planned against table epoch `expected_epoch`.
    ApplyOperations { expected_epoch: u64, operations: Vec<Operation> },
    /// Records the leaders partition groups elected.
    ObserveLeaders { reports: Vec<LeaderReport> },
    /// Sets the placement mode and policy (refused if the policy is invalid).
    SetPlacement { placement: PlacementSettings },
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::InitCluster { cluster_id, settings } => write!(
                f,
                "init cluster {cluster_id} ({} partitions, rf {})",
                settings.partition_count, settings.replication_factor
            ),
            Command::RegisterNode { spec, .. } => write!(f, "register node {} at {}", spec.id, spec.addr),
            Command::SetNodeState { node, from, to, .. } => write!(f, "node {node}: {from} -> {to}"),
            Command::ApplyOperations { expected_epoch, operations } => {
                write!(f, "apply {} operations at epoch {expected_epoch}", operations.len())
            }
            Command::ObserveLeaders { reports } => write!(f, "record {} partition leaders", reports.len()),
            Command::SetPlacement { placement } => {
                write!(f, "placement mode {}, policy {}", placement.mode.as_str(), placement.policy.name.as_str())
            }
        }
    }
}

/// What applying a command did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// The map changed.
    Applied,
    /// The map already was as the command asked.
    #[default]
    Unchanged,
    /// The command does not fit the map; nothing changed.
    Refused(String),
}

/// The answer to a committed command.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandResponse {
    pub outcome: Outcome,
    /// Partition table epoch after the command.
    pub epoch: u64,
    /// Node registry version after the command.
    pub nodes_version: u64,
}

openraft::declare_raft_types!(
    /// Raft type configuration of the controller group.
    pub ControllerTypes:
        D = Command,
        R = CommandResponse,
        NodeId = NodeId,
        Node = RaftNode,
        AsyncRuntime = openraft_rt_tokio::TokioRuntime,
);
