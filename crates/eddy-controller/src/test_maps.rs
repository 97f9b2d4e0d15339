//! Cluster maps for the controller's unit tests.

use eddy_core::{ClusterMap, ClusterSettings, NodeId, NodeRecord, NodeSpec, NodeState, PartitionTable, Role};

/// A worker with one core at price 1 per hour, alone in its zone.
pub fn worker(id: NodeId, state: NodeState) -> (NodeId, NodeRecord) {
    let spec = NodeSpec {
        id,
        addr: format!("127.0.0.1:{}", 7000 + id),
        zone: format!("z{id}"),
        capacity_cores: 1.0,
        price_per_hour: 1.0,
        roles: vec![Role::Worker],
    };
    (id, NodeRecord { spec, state, state_since_ms: 0 })
}

/// An initialized cluster of `nodes` with `partitions` unassigned.
pub fn cluster(nodes: &[(NodeId, NodeState)], partitions: u32, replication_factor: u32) -> ClusterMap {
    ClusterMap {
        cluster_id: Some("c".into()),
        settings: Some(ClusterSettings { partition_count: partitions, replication_factor }),
        nodes: nodes.iter().map(|(id, state)| worker(*id, *state)).collect(),
        nodes_version: 1,
        table: PartitionTable::unassigned(partitions),
        placement: Default::default(),
        history: Default::default(),
    }
}

/// Four up workers and six partitions, each on nodes 1, 2 and 3, led by
/// node 1 in term 3; node 4 holds nothing.
pub fn three_of_four() -> ClusterMap {
    let mut map = cluster(&up(4), 6, 3);
    for p in &mut map.table.partitions {
        p.replicas = vec![1, 2, 3];
        p.leader = Some(1);
        p.leader_term = 3;
    }
    map
}

/// Workers 1..=count, all up.
pub fn up(count: NodeId) -> Vec<(NodeId, NodeState)> {
    (1..=count).map(|id| (id, NodeState::Up)).collect()
}
