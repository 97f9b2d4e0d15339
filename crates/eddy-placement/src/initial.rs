//! The initial placer: gives every partition `replication_factor` replicas on
//! distinct up workers, spread over zones, with balanced replica and leader
//! counts. It never moves an existing replica or leader: moving is the
//! adaptive planner's job.

use std::collections::{BTreeMap, BTreeSet};

use eddy_core::{NodeId, NodeRecord, Operation, PartitionAssignment, Plan};

use crate::{Placer, Snapshot};

#[derive(Debug, Clone, Copy, Default)]
pub struct InitialPlacer;

impl Placer for InitialPlacer {
    fn name(&self) -> &'static str {
        "initial"
    }

    fn plan(&self, snapshot: &Snapshot<'_>) -> Plan {
        let map = snapshot.map;
        let Some(settings) = map.settings else {
            return Plan::default();
        };
        let rf = settings.replication_factor as usize;
        let eligible: Vec<&NodeRecord> = map.nodes.values().filter(|n| n.accepts_replicas()).collect();
        let fresh = map.table.partitions.iter().all(|p| p.replicas.is_empty());
        if fresh && eligible.len() < rf {
            // Placing a fresh table on fewer workers than replicas would pile
            // every leader on the first workers to arrive; wait for enough.
            return Plan {
                operations: Vec::new(),
                unmet: vec![format!(
                    "waiting for {rf} up workers to place {} partitions (have {})",
                    map.table.partitions.len(),
                    eligible.len()
                )],
            };
        }
        let mut counts = Counts::new(map);
        let mut plan = Plan::default();
        let mut short = 0usize;
        for partition in &map.table.partitions {
            let replicas = add_replicas(partition, rf, &eligible, &mut counts, &mut plan.operations);
            if replicas.len() < rf {
                short += 1;
            }
            choose_leader(partition, &replicas, &eligible, &mut counts, &mut plan.operations);
        }
        if short > 0 {
            plan.unmet.push(format!(
                "{short} partitions have fewer than {rf} replicas: only {} up workers; add workers",
                eligible.len()
            ));
        }
        plan
    }
}

/// Replica and leader counts per node, kept current as the plan grows.
struct Counts {
    replicas: BTreeMap<NodeId, usize>,
    leaders: BTreeMap<NodeId, usize>,
}

impl Counts {
    fn new(map: &eddy_core::ClusterMap) -> Self {
        let mut replicas = BTreeMap::new();
        let mut leaders = BTreeMap::new();
        for p in &map.table.partitions {
            for r in &p.replicas {
                *replicas.entry(*r).or_default() += 1;
            }
            if let Some(l) = p.leader {
                *leaders.entry(l).or_default() += 1;
            }
        }
        Counts { replicas, leaders }
    }

    fn replicas(&self, node: NodeId) -> usize {
        self.replicas.get(&node).copied().unwrap_or(0)
    }

    fn leaders(&self, node: NodeId) -> usize {
        self.leaders.get(&node).copied().unwrap_or(0)
    }
}

/// Adds replicas until the partition has `rf` or no eligible node is left;
/// returns the resulting replica set.
fn add_replicas(
    partition: &PartitionAssignment,
    rf: usize,
    eligible: &[&NodeRecord],
    counts: &mut Counts,
    ops: &mut Vec<Operation>,
) -> Vec<NodeId> {
    let mut replicas = partition.replicas.clone();
    let mut zones: BTreeSet<&str> =
        eligible.iter().filter(|n| replicas.contains(&n.id())).map(|n| n.spec.zone.as_str()).collect();
    while replicas.len() < rf {
        // Prefer a zone the partition does not use yet, then the emptiest
        // node, then the lowest id so that the choice is deterministic.
        let best = eligible
            .iter()
            .filter(|n| !replicas.contains(&n.id()))
            .min_by_key(|n| (zones.contains(n.spec.zone.as_str()), counts.replicas(n.id()), n.id()));
        let Some(node) = best else { break };
        let id = node.id();
        replicas.push(id);
        zones.insert(node.spec.zone.as_str());
        *counts.replicas.entry(id).or_default() += 1;
        let reason = if partition.replicas.is_empty() {
            "initial placement".to_owned()
        } else {
            format!("partition has {} of {rf} replicas", replicas.len() - 1)
        };
        ops.push(Operation::AddReplica { partition: partition.id, node: id, reason });
    }
    replicas
}

/// Gives a leaderless partition the replica on an up worker that leads the
/// fewest partitions.
fn choose_leader(
    partition: &PartitionAssignment,
    replicas: &[NodeId],
    eligible: &[&NodeRecord],
    counts: &mut Counts,
    ops: &mut Vec<Operation>,
) {
    if partition.leader.is_some_and(|l| replicas.contains(&l)) {
        return;
    }
    let best = replicas
        .iter()
        .copied()
        .filter(|r| eligible.iter().any(|n| n.id() == *r))
        .min_by_key(|r| (counts.leaders(*r), *r));
    if let Some(to) = best {
        *counts.leaders.entry(to).or_default() += 1;
        ops.push(Operation::TransferLeader {
            partition: partition.id,
            to,
            reason: "partition has no leader".to_owned(),
        });
    }
}

#[cfg(test)]
mod tests;
