use eddy_core::{LeaderReport, NodeState, Operation};

use super::*;

const LIVENESS: LivenessConfig = LivenessConfig { suspect_after_ms: 1000, down_after_ms: 3000 };
const SETTINGS: ClusterSettings = ClusterSettings { partition_count: 4, replication_factor: 1 };

static NO_BROKEN: BrokenReplicas = BrokenReplicas::new();

fn map_with(nodes: &[(NodeId, NodeState)]) -> ClusterMap {
    crate::test_maps::cluster(nodes, SETTINGS.partition_count, SETTINGS.replication_factor)
}

fn observe<'a>(map: &'a ClusterMap, silence: &'a BTreeMap<NodeId, Silence>, settled: bool) -> Observations<'a> {
    Observations {
        map,
        silence,
        workers_settled: settled,
        now_ms: 42,
        bootstrap_settings: SETTINGS,
        fresh_cluster_id: "fresh",
        leader_reports: &[],
        broken: &NO_BROKEN,
    }
}

#[test]
fn an_uninitialized_cluster_is_initialized_first_and_only() {
    let map = ClusterMap::default();
    let silence = BTreeMap::new();
    let decision = decide(&observe(&map, &silence, true), LIVENESS);
    assert_eq!(decision.commands, vec![Command::InitCluster { cluster_id: "fresh".into(), settings: SETTINGS }]);
}

#[test]
fn placement_waits_for_workers_to_settle() {
    let map = map_with(&[(1, NodeState::Up)]);
    let silence = BTreeMap::from([(1, Silence::Heard(10))]);
    assert!(decide(&observe(&map, &silence, false), LIVENESS).commands.is_empty());
    let decision = decide(&observe(&map, &silence, true), LIVENESS);
    match decision.commands.as_slice() {
        [Command::ApplyOperations { expected_epoch: 0, operations }] => {
            assert_eq!(operations.len(), 8, "one replica and one leader per partition: {operations:?}");
        }
        other => panic!("unexpected commands {other:?}"),
    }
}

#[test]
fn silent_nodes_are_proposed_suspect_with_compare_and_set() {
    let mut map = map_with(&[(1, NodeState::Up), (2, NodeState::Up)]);
    map.table.partitions.iter_mut().for_each(|p| {
        p.replicas = vec![1];
        p.leader = Some(1);
    });
    let silence = BTreeMap::from([(1, Silence::Heard(10)), (2, Silence::Heard(1500))]);
    let decision = decide(&observe(&map, &silence, true), LIVENESS);
    assert_eq!(
        decision.commands,
        vec![Command::SetNodeState { node: 2, from: NodeState::Up, to: NodeState::Suspect, at_ms: 42 }]
    );
}

#[test]
fn newer_leader_reports_are_recorded_and_stale_ones_dropped() {
    let mut map = map_with(&[(1, NodeState::Up), (2, NodeState::Up)]);
    map.table.partitions.iter_mut().for_each(|p| {
        p.replicas = vec![1, 2];
        p.leader = Some(1);
        p.leader_term = 3;
    });
    let silence = BTreeMap::from([(1, Silence::Heard(10)), (2, Silence::Heard(10))]);
    let reports = [
        LeaderReport { partition: 0, node: 2, term: 4 },
        LeaderReport { partition: 1, node: 2, term: 2 },
        LeaderReport { partition: 2, node: 1, term: 3 },
        LeaderReport { partition: 3, node: 9, term: 8 },
    ];
    let obs = Observations { leader_reports: &reports, ..observe(&map, &silence, true) };
    let decision = decide(&obs, LIVENESS);
    assert_eq!(
        decision.commands,
        vec![Command::ObserveLeaders { reports: vec![LeaderReport { partition: 0, node: 2, term: 4 }] }]
    );
}

#[test]
fn a_broken_replica_is_taken_off_its_node_and_not_placed_back_there() {
    let mut map = crate::test_maps::cluster(&crate::test_maps::up(3), 2, 3);
    for p in &mut map.table.partitions {
        p.replicas = vec![1, 2, 3];
        p.leader = Some(1);
        p.leader_term = 2;
    }
    // Partition 1 already lost its replica on node 3: the placer would fill it there.
    map.table.partitions[1].replicas = vec![1, 2];
    let silence = BTreeMap::new();
    let mut broken = BrokenReplicas::default();
    broken.hear(3, vec![(0, "cannot open".into()), (1, "cannot open".into())]);
    let obs = Observations { broken: &broken, ..observe(&map, &silence, true) };
    let decision = decide(&obs, LIVENESS);
    let [Command::ApplyOperations { operations, .. }] = decision.commands.as_slice() else {
        panic!("{:?}", decision.commands)
    };
    assert!(
        matches!(operations.as_slice(), [Operation::RemoveReplica { partition: 0, node: 3, .. }]),
        "{operations:?}"
    );
}
