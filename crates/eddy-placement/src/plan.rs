//! What a planner returns: operations in order, each with its reason and
//! predicted effect, the cluster's predicted metrics before and after,
//! capacity advice, and what it could not achieve.

use eddy_core::{NodeId, Operation, PartitionId};
use serde::{Deserialize, Serialize};

/// One change of placement, as the planner thinks of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Move {
    TransferLeader {
        partition: PartitionId,
        from: Option<NodeId>,
        to: NodeId,
    },
    AddReplica {
        partition: PartitionId,
        node: NodeId,
    },
    RemoveReplica {
        partition: PartitionId,
        node: NodeId,
    },
    /// Add a replica on `to`, hand it the leadership if `from` led, and
    /// remove the replica on `from`.
    MoveReplica {
        partition: PartitionId,
        from: NodeId,
        to: NodeId,
    },
}

impl Move {
    pub fn partition(&self) -> PartitionId {
        match *self {
            Move::TransferLeader { partition, .. }
            | Move::AddReplica { partition, .. }
            | Move::RemoveReplica { partition, .. }
            | Move::MoveReplica { partition, .. } => partition,
        }
    }

    /// Whether it copies data (a new replica) rather than only shifting work.
    pub fn copies(&self) -> bool {
        matches!(self, Move::AddReplica { .. } | Move::MoveReplica { .. })
    }
}

/// What the planner expects a move to do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Effect {
    /// Drop of the objective (higher is better).
    pub gain: f64,
    /// Predicted time the move takes.
    pub move_s: f64,
    /// Utilisation of the node work leaves, before and after.
    pub source_utilisation: Option<(f64, f64)>,
    /// Utilisation of the node work goes to, before and after.
    pub target_utilisation: Option<(f64, f64)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedOperation {
    #[serde(flatten)]
    pub change: Move,
    pub reason: String,
    pub effect: Effect,
}

impl PlannedOperation {
    /// The table operations that carry the move out, in order.
    pub fn operations(&self, leader_before: Option<NodeId>) -> Vec<Operation> {
        let reason = self.reason.clone();
        match self.change {
            Move::TransferLeader { partition, to, .. } => vec![Operation::TransferLeader { partition, to, reason }],
            Move::AddReplica { partition, node } => vec![Operation::AddReplica { partition, node, reason }],
            Move::RemoveReplica { partition, node } => vec![Operation::RemoveReplica { partition, node, reason }],
            Move::MoveReplica { partition, from, to } => {
                // Removed first: the table never holds more replicas than
                // the factor; the partition's leader adds the learner
                // before it leaves the old replica.
                let mut ops = vec![
                    Operation::RemoveReplica { partition, node: from, reason: reason.clone() },
                    Operation::AddReplica { partition, node: to, reason: reason.clone() },
                ];
                if leader_before == Some(from) {
                    ops.push(Operation::TransferLeader { partition, to, reason });
                }
                ops
            }
        }
    }
}

/// The cluster as the models predict it for a placement.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterMetrics {
    /// Mean of the nodes' p99, weighted by the events they lead.
    pub p99_ms_mean: f64,
    /// The worst node's p99, among nodes that lead any events.
    pub p99_ms_max: f64,
    /// Share of events on nodes whose p99 meets the SLO.
    pub slo_attainment: f64,
    pub utilisation_max: f64,
    pub nodes_in_use: usize,
    pub price_per_hour: f64,
    /// The planner's objective (lower is better).
    pub objective: f64,
}

/// Advice on the cluster's size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Advice {
    /// Add `count` nodes like `like` (same cores and price).
    ScaleOut { count: usize, like: NodeId, capacity_cores: f64, price_per_hour: f64, reason: String },
    /// Drain `node`: the others carry its load within the targets.
    Drain { node: NodeId, saving_per_hour: f64, reason: String },
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub policy: String,
    pub operations: Vec<PlannedOperation>,
    pub before: ClusterMetrics,
    pub after: ClusterMetrics,
    pub advice: Vec<Advice>,
    /// Constraints that cannot be met, in words an operator can act on.
    pub unmet: Vec<String>,
    /// Whether the round's budget stopped the planner before it was done.
    pub budget_exhausted: bool,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.operations.is_empty()
    }
}
