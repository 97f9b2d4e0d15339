//! The simulated cluster: its nodes as the scenario's types number them,
//! the placement the initial placer gives them, what the scenario's
//! failures do at a moment, and the seeded noise on telemetry.

use std::collections::{BTreeMap, BTreeSet};

use eddy_core::{
    ClusterMap, ClusterSettings, NodeId, NodeRecord, NodeSpec, NodeState, PartitionId, PartitionTable, Role,
};
use eddy_placement::{ClusterSnapshot, InitialPlacer, Placer, Snapshot};

use crate::scenario::{Failure, Scenario};

/// One node as the engine runs it.
#[derive(Debug, Clone)]
pub(crate) struct SimNode {
    pub(crate) id: NodeId,
    pub(crate) cores: f64,
    pub(crate) speed: f64,
    pub(crate) price_per_hour: f64,
    pub(crate) zone: String,
    /// CPU seconds of work queued beyond capacity.
    pub(crate) backlog_cpu_s: f64,
}

/// Numbers the nodes 1.. in the order of the scenario's types.
pub(crate) fn nodes(s: &Scenario) -> Vec<SimNode> {
    let mut nodes = Vec::new();
    for t in &s.node_types {
        for i in 0..t.count as usize {
            nodes.push(SimNode {
                id: nodes.len() as NodeId + 1,
                cores: t.cores,
                speed: t.speed,
                price_per_hour: t.price_per_hour,
                zone: t.zones[i % t.zones.len()].clone(),
                backlog_cpu_s: 0.0,
            });
        }
    }
    nodes
}

/// The cluster as the initial placer leaves it; capacities count speed,
/// so the planner sees every node in cores of the reference speed.
pub(crate) fn initial_snapshot(s: &Scenario, nodes: &[SimNode]) -> ClusterSnapshot {
    let records = nodes
        .iter()
        .map(|n| {
            let spec = NodeSpec {
                id: n.id,
                addr: String::new(),
                zone: n.zone.clone(),
                capacity_cores: n.cores * n.speed,
                price_per_hour: n.price_per_hour,
                roles: vec![Role::Worker],
            };
            (n.id, NodeRecord { spec, state: NodeState::Up, state_since_ms: 0 })
        })
        .collect();
    let mut map = ClusterMap {
        cluster_id: Some(s.name.clone()),
        settings: Some(ClusterSettings { partition_count: s.partitions, replication_factor: s.replication_factor }),
        nodes: records,
        nodes_version: 1,
        table: PartitionTable::unassigned(s.partitions),
        placement: Default::default(),
        history: Default::default(),
    };
    let placed = InitialPlacer.plan(&Snapshot { map: &map });
    // The initial placer fits the table by construction.
    let _ = map.apply_operations(&placed.operations);
    ClusterSnapshot::from_map(&map, &BTreeMap::new(), BTreeSet::new())
}

/// Down nodes and speed factors at `t_s`.
pub(crate) fn failures_at(s: &Scenario, nodes: &[SimNode], t_s: f64) -> (BTreeSet<NodeId>, BTreeMap<NodeId, f64>) {
    let mut down = BTreeSet::new();
    let mut slow = BTreeMap::new();
    let during = |at: f64, length: f64| t_s >= at && t_s < at + length;
    for failure in &s.failures {
        match failure {
            Failure::Crash { node, at_s, for_s } if during(*at_s, *for_s) => {
                down.insert(*node);
            }
            Failure::ZoneLoss { zone, at_s, for_s } if during(*at_s, *for_s) => {
                down.extend(nodes.iter().filter(|n| n.zone == *zone).map(|n| n.id));
            }
            Failure::Slow { node, factor, at_s, for_s } if during(*at_s, *for_s) => {
                *slow.entry(*node).or_insert(1.0) *= factor;
            }
            Failure::RollingRestart { at_s, every_s, down_s } if t_s >= *at_s => {
                let turn = ((t_s - at_s) / every_s).floor() as usize;
                if turn < nodes.len() && t_s - at_s - turn as f64 * every_s < *down_s {
                    down.insert(nodes[turn].id);
                }
            }
            _ => {}
        }
    }
    (down, slow)
}

/// A deterministic noise factor in [1 - amount, 1 + amount].
pub(crate) fn noise(seed: u64, step: u64, partition: PartitionId, amount: f64) -> f64 {
    1.0 + amount * (2.0 * unit(seed, step, partition) - 1.0)
}

/// A deterministic draw in [0, 1) for `(seed, step, partition)`.
fn unit(seed: u64, step: u64, partition: PartitionId) -> f64 {
    let mut bytes = [0u8; 20];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    bytes[8..16].copy_from_slice(&step.to_le_bytes());
    bytes[16..].copy_from_slice(&partition.to_le_bytes());
    (xxhash_rust::xxh3::xxh3_64(&bytes) >> 11) as f64 / (1u64 << 53) as f64
}

/// The new leader of `partition` elected at `step` among its `replicas`
/// that are not `down`: the one whose election timer fires first, drawn
/// from the seed, so that leaders lost together do not all land on one
/// node. Both engines elect with it, so they elect alike.
pub(crate) fn elect(
    seed: u64,
    partition: PartitionId,
    replicas: &[NodeId],
    down: &BTreeSet<NodeId>,
    step: u64,
) -> Option<NodeId> {
    let candidates: Vec<NodeId> = replicas.iter().copied().filter(|r| !down.contains(r)).collect();
    (!candidates.is_empty()).then(|| candidates[pick(seed, partition, step, candidates.len())])
}

/// A deterministic draw in `0..n` for `(seed, partition, step)`.
fn pick(seed: u64, partition: PartitionId, step: u64, n: usize) -> usize {
    ((unit(seed ^ 2, step, partition) * n as f64) as usize).min(n.saturating_sub(1))
}
