//! Replicas their nodes cannot open (a damaged event log or state file):
//! what the controller leader heard of them, and how it repairs them. Pure.
//!
//! A broken replica must not simply be wiped and refilled in place: while
//! its node is a voter of the group, a replica that forgot its log could
//! help elect a leader that lacks committed entries. So the table takes the
//! replica off its node; the group's leader changes the membership without
//! it; the node, no longer a member, deletes the damaged data; and only
//! then may the placer put a fresh replica there again, which catches up
//! as a learner like any new replica.

use std::collections::{BTreeMap, BTreeSet};

use eddy_core::{ClusterMap, NodeId, Operation, PartitionId};

/// The longest reason kept from a node's report.
const REASON_CHARS: usize = 300;

/// Broken replicas by node, each node's set as its latest heartbeat said.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BrokenReplicas {
    by_node: BTreeMap<NodeId, BTreeMap<PartitionId, String>>,
}

impl BrokenReplicas {
    pub const fn new() -> Self {
        BrokenReplicas { by_node: BTreeMap::new() }
    }

    /// Takes a node's report, replacing what it said before. Reasons are
    /// cut short: a report is input from the network.
    pub fn hear(&mut self, node: NodeId, broken: Vec<(PartitionId, String)>) {
        if broken.is_empty() {
            self.by_node.remove(&node);
            return;
        }
        let report = broken.into_iter().map(|(p, why)| (p, why.chars().take(REASON_CHARS).collect())).collect();
        self.by_node.insert(node, report);
    }

    pub fn is_empty(&self) -> bool {
        self.by_node.is_empty()
    }

    /// Whether `node` reports its replica of `partition` broken.
    pub fn contains(&self, node: NodeId, partition: PartitionId) -> bool {
        self.by_node.get(&node).is_some_and(|p| p.contains_key(&partition))
    }

    /// Partitions with a broken replica anywhere: the planner leaves them
    /// alone until the repair is done.
    pub fn partitions(&self) -> BTreeSet<PartitionId> {
        self.by_node.values().flat_map(|p| p.keys().copied()).collect()
    }

    /// Every broken replica: (node, partition, reason).
    pub fn list(&self) -> Vec<(NodeId, PartitionId, String)> {
        self.by_node
            .iter()
            .flat_map(|(node, parts)| parts.iter().map(move |(p, why)| (*node, *p, why.clone())))
            .collect()
    }

    /// The table operations that take broken replicas off their nodes, and
    /// the ones that cannot be repaired now, in words. A replica is taken
    /// off only while the table places it there, the node does not lead the
    /// partition in the table (it cannot, with its replica unopened: the
    /// table has not heard of the new leader yet), and another replica
    /// remains to rebuild it from.
    pub fn repairs(&self, map: &ClusterMap) -> (Vec<Operation>, Vec<String>) {
        let mut operations = Vec::new();
        let mut lost: BTreeMap<PartitionId, String> = BTreeMap::new();
        for (node, partition, why) in self.list() {
            let Some(assignment) = map.table.get(partition) else { continue };
            if !assignment.replicas.contains(&node) {
                continue;
            }
            let healthy = assignment.replicas.iter().filter(|r| !self.contains(**r, partition)).count();
            if healthy == 0 {
                lost.entry(partition).or_insert_with(|| format!("node {node}: {why}"));
                continue;
            }
            if assignment.leader == Some(node) {
                continue;
            }
            let reason = format!("replica on node {node} cannot be opened ({why}); it is rebuilt from the others");
            operations.push(Operation::RemoveReplica { partition, node, reason });
        }
        let unmet = lost
            .into_iter()
            .map(|(partition, example)| {
                format!(
                    "partition {partition}: no replica can be opened ({example}); restore the node's data, \
                     or remove the partition's directory to start it empty"
                )
            })
            .collect();
        (operations, unmet)
    }

    /// Drops, from a placer's operations, new replicas on nodes that still
    /// report the partition broken: they must delete the damaged data first.
    pub fn without_broken_targets(&self, operations: Vec<Operation>) -> Vec<Operation> {
        operations
            .into_iter()
            .filter(|op| match op {
                Operation::AddReplica { partition, node, .. } => !self.contains(*node, *partition),
                _ => true,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_maps::{cluster, up};

    /// Up workers 1..=nodes; partition i on `tables[i].0`, led by `tables[i].1`.
    fn map_with_table(nodes: NodeId, tables: &[(&[NodeId], NodeId)]) -> ClusterMap {
        let mut map = cluster(&up(nodes), tables.len() as u32, 3);
        for (p, (replicas, leader)) in map.table.partitions.iter_mut().zip(tables) {
            p.replicas = replicas.to_vec();
            p.leader = Some(*leader);
            p.leader_term = 2;
        }
        map
    }

    #[test]
    fn a_broken_follower_is_taken_off_and_not_placed_back_until_it_is_clean() {
        let map = map_with_table(3, &[(&[1, 2, 3], 1)]);
        let mut broken = BrokenReplicas::default();
        broken.hear(3, vec![(0, "offset 5 is not the log's next offset 9".into())]);
        let (ops, unmet) = broken.repairs(&map);
        assert!(unmet.is_empty());
        assert_eq!(ops.len(), 1);
        let Operation::RemoveReplica { partition: 0, node: 3, reason } = &ops[0] else { panic!("{ops:?}") };
        assert!(reason.contains("offset 5"), "{reason}");
        assert_eq!(broken.partitions(), BTreeSet::from([0]));
        let add = Operation::AddReplica { partition: 0, node: 3, reason: "fill".into() };
        let other = Operation::AddReplica { partition: 0, node: 4, reason: "fill".into() };
        assert_eq!(broken.without_broken_targets(vec![add.clone(), other.clone()]), vec![other]);
        // Once the node no longer reports it, the replica may come back.
        broken.hear(3, Vec::new());
        assert!(broken.is_empty());
        assert_eq!(broken.without_broken_targets(vec![add.clone()]), vec![add]);
    }

    #[test]
    fn the_last_good_replica_and_the_tables_leader_are_never_taken_off() {
        let map = map_with_table(2, &[(&[1, 2], 1), (&[2], 2)]);
        let mut broken = BrokenReplicas::default();
        broken.hear(1, vec![(0, "bad".into())]);
        broken.hear(2, vec![(0, "bad".into()), (1, "bad".into())]);
        let (ops, unmet) = broken.repairs(&map);
        assert!(ops.is_empty(), "{ops:?}");
        assert_eq!(unmet.len(), 2, "{unmet:?}");
        let long = "x".repeat(10_000);
        broken.hear(2, vec![(1, long)]);
        assert!(broken.list()[1].2.len() <= REASON_CHARS);
    }
}
