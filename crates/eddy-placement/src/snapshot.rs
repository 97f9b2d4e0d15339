//! What the planner sees: nodes, partitions with their forecast load, the
//! operations in flight and the models. Plain data, built by the live
//! controller from its map and models and by the simulator from its own
//! state, so that both call the same planner on the same kind of input.

use std::collections::{BTreeMap, BTreeSet};

use eddy_core::{ClusterMap, NodeId, NodeState, PartitionId, Role};
use eddy_model::Queue;
use serde::{Deserialize, Serialize};

use crate::curve::LatencyCurve;
use crate::plan::Move;

/// A worker node as the planner sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeView {
    pub id: NodeId,
    pub zone: String,
    pub capacity_cores: f64,
    pub price_per_hour: f64,
    pub state: NodeState,
}

impl NodeView {
    /// Up: may take new replicas and leaderships.
    pub fn is_up(&self) -> bool {
        self.state == NodeState::Up
    }

    /// Holds replicas that must go elsewhere (down, draining or removed).
    /// A suspect node is given time: it may only be slow to answer.
    pub fn is_leaving(&self) -> bool {
        matches!(self.state, NodeState::Down | NodeState::Draining | NodeState::Removed)
    }
}

/// A partition with its replicas and forecast load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartitionView {
    pub id: PartitionId,
    pub replicas: Vec<NodeId>,
    pub leader: Option<NodeId>,
    /// Forecast events per second, a few minutes ahead.
    pub events_per_s: f64,
    /// CPU time the leader spends per event.
    pub cpu_ms_per_event: f64,
    /// Bytes a new replica must copy.
    pub size_bytes: u64,
}

impl PartitionView {
    /// CPU cores the partition's leader spends.
    pub fn leader_cores(&self) -> f64 {
        finite(self.events_per_s) * finite(self.cpu_ms_per_event) / 1000.0
    }
}

/// What the controller knows of moves: how long they take.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MoveTimes {
    pub copy_bytes_per_s: f64,
    /// Time of a replica move on top of the copy.
    pub replica_fixed_s: f64,
    pub leader_transfer_s: f64,
}

impl Default for MoveTimes {
    fn default() -> Self {
        let config = eddy_model::MoveCostConfig::default();
        MoveTimes {
            copy_bytes_per_s: config.copy_bytes_per_s,
            replica_fixed_s: config.fixed_s,
            leader_transfer_s: config.leader_transfer_s,
        }
    }
}

impl MoveTimes {
    pub fn replica_move_s(&self, size_bytes: u64) -> f64 {
        finite(self.replica_fixed_s) + size_bytes as f64 / self.copy_bytes_per_s.max(1.0)
    }
}

/// The models the planner uses: a p99 curve per node (the learned one
/// where it is trusted, else the prior) and move times. A node without a
/// curve gets the queueing prior for its cores at the cluster's mean cost
/// per event.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Models {
    pub curves: BTreeMap<NodeId, LatencyCurve>,
    pub move_times: MoveTimes,
}

/// The planner's whole input besides the policy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterSnapshot {
    pub replication_factor: u32,
    pub nodes: Vec<NodeView>,
    pub partitions: Vec<PartitionView>,
    /// Partitions with an operation under way: the planner leaves them
    /// alone, and they count against the round's budget.
    pub in_flight: BTreeSet<PartitionId>,
}

/// Forecast load of one partition, as the models give it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PartitionLoadView {
    pub events_per_s: f64,
    pub cpu_ms_per_event: f64,
    pub size_bytes: u64,
}

impl ClusterSnapshot {
    /// The planner's view of a live cluster map: its workers and partitions
    /// with the loads the models forecast (a partition without a forecast
    /// counts as idle).
    pub fn from_map(
        map: &ClusterMap,
        loads: &BTreeMap<PartitionId, PartitionLoadView>,
        in_flight: BTreeSet<PartitionId>,
    ) -> Self {
        let nodes = map
            .nodes
            .values()
            .filter(|n| n.spec.has_role(Role::Worker))
            .map(|n| NodeView {
                id: n.id(),
                zone: n.spec.zone.clone(),
                capacity_cores: n.spec.capacity_cores,
                price_per_hour: n.spec.price_per_hour,
                state: n.state,
            })
            .collect();
        let partitions = map
            .table
            .partitions
            .iter()
            .map(|p| {
                let load = loads.get(&p.id).copied().unwrap_or_default();
                PartitionView {
                    id: p.id,
                    replicas: p.replicas.clone(),
                    leader: p.leader,
                    events_per_s: load.events_per_s,
                    cpu_ms_per_event: load.cpu_ms_per_event,
                    size_bytes: load.size_bytes,
                }
            })
            .collect();
        ClusterSnapshot {
            replication_factor: map.settings.map_or(1, |s| s.replication_factor),
            nodes,
            partitions,
            in_flight,
        }
    }

    /// Carries out a planned move on the snapshot, as the cluster would
    /// once the move completes. Moves that do not fit the snapshot (a
    /// replica already there, a leader that is no replica) change nothing.
    pub fn apply(&mut self, change: &Move) {
        let Some(p) = self.partitions.iter_mut().find(|p| p.id == change.partition()) else { return };
        match *change {
            Move::TransferLeader { to, .. } => {
                if p.replicas.contains(&to) {
                    p.leader = Some(to);
                }
            }
            Move::AddReplica { node, .. } => {
                if !p.replicas.contains(&node) {
                    p.replicas.push(node);
                }
            }
            Move::RemoveReplica { node, .. } => {
                p.replicas.retain(|r| *r != node);
                if p.leader == Some(node) {
                    p.leader = None;
                }
            }
            Move::MoveReplica { from, to, .. } => {
                if p.replicas.contains(&from) && !p.replicas.contains(&to) {
                    p.replicas.retain(|r| *r != from);
                    p.replicas.push(to);
                    if p.leader == Some(from) {
                        p.leader = Some(to);
                    }
                }
            }
        }
    }

    /// The mean CPU cost per event over all partitions, weighted by rate.
    pub fn mean_cpu_ms_per_event(&self) -> f64 {
        let rate: f64 = self.partitions.iter().map(|p| finite(p.events_per_s)).sum();
        let cores: f64 = self.partitions.iter().map(PartitionView::leader_cores).sum();
        if rate > 0.0 && cores > 0.0 { cores * 1000.0 / rate } else { 1.0 }
    }
}

/// The curve for `node`: its model's, or the queueing prior for its cores
/// at `cpu_ms_per_event`.
pub fn curve_for(models: &Models, node: &NodeView, cpu_ms_per_event: f64) -> LatencyCurve {
    models.curves.get(&node.id).cloned().unwrap_or_else(|| {
        let queue = Queue::for_cores(node.capacity_cores.max(0.01), cpu_ms_per_event);
        LatencyCurve::from_fn(|u| queue.p99_ms(u))
    })
}

/// Negative and non-finite inputs count as zero: bad telemetry must not
/// make the planner misbehave.
pub(crate) fn finite(value: f64) -> f64 {
    if value.is_finite() { value.max(0.0) } else { 0.0 }
}
