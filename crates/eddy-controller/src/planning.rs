//! The planner's rounds on the controller leader: what a plan becomes in
//! the partition table, how long its partitions count as in flight, and
//! the record of the latest round that `eddyctl plan --last` shows.
//! Pure functions; the control loop does the I/O.

use std::collections::BTreeMap;
use std::time::Duration;

use eddy_core::{ClusterMap, NodeId, Operation, PartitionId, PlacementMode};
use eddy_placement::{Move, Plan};
use serde::Serialize;

/// How long a partition counts as in flight after a leader transfer.
const TRANSFER_SETTLE: Duration = Duration::from_secs(10);
/// ... and after a replica is added or moved (the copy, then the change).
const COPY_SETTLE: Duration = Duration::from_secs(60);

/// Committed operations kept for `eddyctl ops`.
pub const RECENT_OPERATIONS: usize = 100;

/// An operation the planner committed.
#[derive(Debug, Clone, Serialize)]
pub struct OpRecord {
    pub at_ms: u64,
    /// Table epoch of the commit.
    pub epoch: u64,
    #[serde(flatten)]
    pub change: Move,
    pub reason: String,
}

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
    /// Operations this leader committed, oldest first (at most
    /// [`RECENT_OPERATIONS`]).
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

/// How long after its commit a move's partition is left alone.
pub fn settle_time(change: &Move) -> Duration {
    match change {
        Move::TransferLeader { .. } | Move::RemoveReplica { .. } => TRANSFER_SETTLE,
        Move::AddReplica { .. } | Move::MoveReplica { .. } => COPY_SETTLE,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use eddy_core::{ClusterSettings, NodeRecord, NodeSpec, NodeState, PartitionTable, Role};
    use eddy_placement::{ClusterSnapshot, Models, PartitionLoadView, Policy, plan};

    use super::*;

    fn map() -> ClusterMap {
        let nodes = (1..=4u64)
            .map(|id| {
                let spec = NodeSpec {
                    id,
                    addr: format!("127.0.0.1:{}", 7000 + id),
                    zone: format!("z{id}"),
                    capacity_cores: 1.0,
                    price_per_hour: 1.0,
                    roles: vec![Role::Worker],
                };
                (id, NodeRecord { spec, state: NodeState::Up, state_since_ms: 0 })
            })
            .collect();
        let mut table = PartitionTable::unassigned(6);
        for p in &mut table.partitions {
            p.replicas = vec![1, 2, 3];
            p.leader = Some(1);
            p.leader_term = 3;
        }
        ClusterMap {
            cluster_id: Some("c".into()),
            settings: Some(ClusterSettings { partition_count: 6, replication_factor: 3 }),
            nodes,
            nodes_version: 4,
            table,
            placement: Default::default(),
        }
    }

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
