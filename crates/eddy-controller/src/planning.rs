//! The planner's rounds on the controller leader: what a plan becomes in
//! the partition table, and the record of the latest round that `eddyctl
//! plan --last` and `eddyctl ops` show.
//! Pure functions; the control loop does the I/O.

use std::collections::BTreeMap;

use eddy_core::{ClusterMap, NodeId, Operation, PartitionId, PlacementMode};
use eddy_placement::{Move, Plan};
use serde::Serialize;

use crate::executor::OpRecord;

/// The latest round of the planner on this leader.
#[derive(Debug, Clone, Serialize)]
pub struct Round {
    pub at_ms: u64,
    pub mode: PlacementMode,
    pub plan: Plan,
    /// In `auto`: the table epoch the operations were committed at.
    pub committed_epoch: Option<u64>,
    /// In `auto`: why the operations were not committed.
    pub refused: Option<String>,
    /// In `auto`: partitions whose moves wait for a node with
    /// `max_copies_per_node` copies under way.
    pub deferred: Vec<PartitionId>,
    /// Operations this leader committed, finished ones (oldest first, at
    /// most [`crate::executor::FINISHED_KEPT`]) then those in flight.
    pub recent: Vec<OpRecord>,
}

/// The table operations that carry a plan out, in order. A replica move
/// of the partition's leader also names the new replica as leader.
pub fn table_operations(map: &ClusterMap, plan: &Plan) -> Vec<Operation> {
    let mut leaders: BTreeMap<PartitionId, Option<NodeId>> = BTreeMap::new();
    let mut out = Vec::new();
    for op in &plan.operations {
        let partition = op.change.partition();
        let leader = *leaders.entry(partition).or_insert_with(|| map.table.get(partition).and_then(|a| a.leader));
        out.extend(op.operations(leader));
        let after = match op.change {
            Move::TransferLeader { to, .. } => Some(to),
            Move::MoveReplica { from, to, .. } if leader == Some(from) => Some(to),
            Move::RemoveReplica { node, .. } if leader == Some(node) => None,
            _ => leader,
        };
        leaders.insert(partition, after);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use eddy_core::NodeState;
    use eddy_placement::{ClusterSnapshot, Models, PartitionLoadView, Policy, plan};

    use super::*;
    use crate::test_maps::three_of_four as map;

    #[test]
    fn the_table_ends_where_the_plan_does() {
        let mut map = map();
        if let Some(n) = map.nodes.get_mut(&3) {
            n.state = NodeState::Draining;
        }
        let loads: BTreeMap<PartitionId, PartitionLoadView> = (0..6)
            .map(|p| (p, PartitionLoadView { events_per_s: 100.0, cpu_ms_per_event: 2.0, size_bytes: 1 << 20 }))
            .collect();
        let snapshot = ClusterSnapshot::from_map(&map, &loads, Default::default());
        let policy = Policy { slo_p99_ms: 10.0, max_operations_per_round: 100, ..Policy::default() };
        let plan = plan(&snapshot, &Models::default(), &policy);
        assert!(plan.operations.iter().any(|op| matches!(op.change, Move::MoveReplica { from: 3, .. })));
        let mut expected = snapshot;
        for op in &plan.operations {
            expected.apply(&op.change);
        }
        map.apply_operations(&table_operations(&map, &plan)).expect("the operations fit the table");
        for (p, want) in map.table.partitions.iter().zip(&expected.partitions) {
            let (mut have, mut wanted) = (p.replicas.clone(), want.replicas.clone());
            have.sort_unstable();
            wanted.sort_unstable();
            assert_eq!(have, wanted, "partition {}", p.id);
            assert_eq!(p.leader, want.leader, "partition {}", p.id);
        }
    }
}
