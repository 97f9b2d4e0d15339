use std::collections::{BTreeMap, BTreeSet};

use eddy_core::{ClusterMap, ClusterSettings, NodeId, NodeRecord, NodeSpec, NodeState, PartitionTable, Role};
use proptest::prelude::*;

use super::*;

fn node(id: NodeId, zone: usize, state: NodeState, roles: Vec<Role>) -> NodeRecord {
    NodeRecord {
        spec: NodeSpec {
            id,
            addr: format!("127.0.0.1:{}", 7000 + id),
            zone: format!("zone-{zone}"),
            capacity_cores: 4.0,
            price_per_hour: 0.2,
            roles,
        },
        state,
        state_since_ms: 0,
    }
}

fn cluster(nodes: Vec<NodeRecord>, partitions: u32, rf: u32) -> ClusterMap {
    ClusterMap {
        cluster_id: Some("test".into()),
        settings: Some(ClusterSettings { partition_count: partitions, replication_factor: rf }),
        nodes_version: nodes.len() as u64,
        nodes: nodes.into_iter().map(|n| (n.id(), n)).collect(),
        table: PartitionTable::unassigned(partitions),
        placement: Default::default(),
        history: Default::default(),
    }
}

fn place(map: &mut ClusterMap) -> Plan {
    let plan = InitialPlacer.plan(&Snapshot { map });
    map.apply_operations(&plan.operations).expect("the placer's own operations apply");
    plan
}

fn spread(counts: impl Iterator<Item = usize>) -> usize {
    let counts: Vec<usize> = counts.collect();
    counts.iter().max().unwrap_or(&0) - counts.iter().min().unwrap_or(&0)
}

#[test]
fn three_nodes_three_zones_get_one_replica_of_everything_and_a_third_of_leaders() {
    let nodes = (1..=3).map(|id| node(id, id as usize, NodeState::Up, vec![Role::Worker])).collect();
    let mut map = cluster(nodes, 16, 3);
    place(&mut map);
    for p in &map.table.partitions {
        assert_eq!(p.replicas.len(), 3);
        assert!(p.leader.is_some());
    }
    let mut leaders = BTreeMap::<NodeId, usize>::new();
    for p in &map.table.partitions {
        *leaders.entry(p.leader.unwrap()).or_default() += 1;
    }
    assert_eq!(spread(leaders.values().copied()), 1, "{leaders:?}");
}

#[test]
fn a_fresh_table_waits_for_enough_workers() {
    let nodes = vec![node(1, 1, NodeState::Up, vec![Role::Worker])];
    let map = cluster(nodes, 4, 3);
    let plan = InitialPlacer.plan(&Snapshot { map: &map });
    assert!(plan.operations.is_empty());
    assert!(plan.unmet[0].contains("waiting for 3 up workers"), "{:?}", plan.unmet);
}

#[test]
fn a_new_worker_tops_up_under_replicated_partitions_only() {
    let nodes = (1..=2).map(|id| node(id, id as usize, NodeState::Up, vec![Role::Worker])).collect();
    let mut map = cluster(nodes, 4, 2);
    place(&mut map);
    let placed = map.table.clone();
    map.nodes.insert(3, node(3, 3, NodeState::Up, vec![Role::Worker]));
    let plan = InitialPlacer.plan(&Snapshot { map: &map });
    assert!(plan.is_empty(), "fully replicated partitions must not move: {plan:?}");
    assert_eq!(map.table, placed);
}

#[test]
fn controllers_without_the_worker_role_and_down_nodes_get_nothing() {
    let nodes = vec![
        node(1, 1, NodeState::Up, vec![Role::Controller]),
        node(2, 2, NodeState::Down, vec![Role::Worker]),
        node(3, 3, NodeState::Up, vec![Role::Worker, Role::Controller]),
    ];
    let mut map = cluster(nodes, 8, 1);
    place(&mut map);
    for p in &map.table.partitions {
        assert_eq!(p.replicas, vec![3]);
        assert_eq!(p.leader, Some(3));
    }
}

fn arb_cluster() -> impl Strategy<Value = ClusterMap> {
    (1usize..10, 1usize..5, 1u32..5, 1u32..80, prop::collection::vec(0u8..10, 10)).prop_map(
        |(node_count, zone_count, rf, partitions, kinds)| {
            let nodes = (0..node_count)
                .map(|i| {
                    let (state, roles) = match kinds[i] {
                        0 => (NodeState::Down, vec![Role::Worker]),
                        1 => (NodeState::Up, vec![Role::Controller]),
                        2 => (NodeState::Draining, vec![Role::Worker]),
                        _ => (NodeState::Up, vec![Role::Worker]),
                    };
                    node(i as NodeId + 1, i % zone_count, state, roles)
                })
                .collect();
            cluster(nodes, partitions, rf)
        },
    )
}

proptest! {
    #[test]
    fn placement_holds_its_constraints(mut map in arb_cluster()) {
        let rf = map.settings.unwrap().replication_factor as usize;
        let eligible: BTreeMap<NodeId, String> = map
            .nodes
            .values()
            .filter(|n| n.accepts_replicas())
            .map(|n| (n.id(), n.spec.zone.clone()))
            .collect();
        let zones: BTreeSet<&String> = eligible.values().collect();
        place(&mut map);
        for p in &map.table.partitions {
            if eligible.len() < rf {
                prop_assert!(p.replicas.is_empty());
                continue;
            }
            // Every partition placed, on distinct eligible nodes.
            prop_assert_eq!(p.replicas.len(), rf);
            let distinct: BTreeSet<_> = p.replicas.iter().collect();
            prop_assert_eq!(distinct.len(), rf);
            prop_assert!(p.replicas.iter().all(|r| eligible.contains_key(r)));
            // Spread over as many zones as there are.
            let used: BTreeSet<&String> = p.replicas.iter().map(|r| &eligible[r]).collect();
            prop_assert_eq!(used.len(), rf.min(zones.len()));
            prop_assert!(p.leader.is_some_and(|l| p.replicas.contains(&l)));
        }
    }

    #[test]
    fn planning_its_own_output_proposes_nothing(mut map in arb_cluster()) {
        place(&mut map);
        let again = InitialPlacer.plan(&Snapshot { map: &map });
        prop_assert!(again.operations.is_empty(), "{:?}", again.operations);
    }

    #[test]
    fn the_same_input_gives_the_same_plan(map in arb_cluster()) {
        let a = InitialPlacer.plan(&Snapshot { map: &map });
        let b = InitialPlacer.plan(&Snapshot { map: &map });
        prop_assert_eq!(a, b);
    }

    #[test]
    fn counts_are_balanced_when_zones_are_even(
        zones in 1usize..4, per_zone in 1usize..4, rf in 1u32..4, partitions in 1u32..100,
    ) {
        let nodes: Vec<NodeRecord> = (0..zones * per_zone)
            .map(|i| node(i as NodeId + 1, i % zones, NodeState::Up, vec![Role::Worker]))
            .collect();
        prop_assume!(nodes.len() >= rf as usize);
        let mut map = cluster(nodes, partitions, rf);
        place(&mut map);
        let mut replicas = BTreeMap::<NodeId, usize>::new();
        let mut leaders = BTreeMap::<NodeId, usize>::new();
        for id in map.nodes.keys() {
            replicas.insert(*id, 0);
            leaders.insert(*id, 0);
        }
        for p in &map.table.partitions {
            for r in &p.replicas {
                *replicas.get_mut(r).unwrap() += 1;
            }
            *leaders.get_mut(&p.leader.unwrap()).unwrap() += 1;
        }
        prop_assert!(spread(replicas.values().copied()) <= 1, "replicas {:?}", replicas);
        prop_assert!(spread(leaders.values().copied()) <= 1, "leaders {:?}", leaders);
    }
}
