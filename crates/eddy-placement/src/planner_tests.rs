//! The planner on small clusters whose right answer is known.

use eddy_core::NodeState;

use super::*;

pub(crate) fn node(id: u64, zone: &str, cores: f64, price: f64) -> NodeView {
    NodeView { id, zone: zone.into(), capacity_cores: cores, price_per_hour: price, state: NodeState::Up }
}

pub(crate) fn partition(id: u32, replicas: &[u64], events_per_s: f64, cpu_ms: f64) -> PartitionView {
    PartitionView {
        id,
        replicas: replicas.to_vec(),
        leader: replicas.first().copied(),
        events_per_s,
        cpu_ms_per_event: cpu_ms,
        size_bytes: 1 << 20,
    }
}

pub(crate) fn applied(snapshot: &ClusterSnapshot, plan: &Plan) -> ClusterSnapshot {
    let mut out = snapshot.clone();
    for op in &plan.operations {
        out.apply(&op.change);
    }
    out
}

/// Three one-core nodes leading three partitions each; the three
/// expensive ones all led by node 1.
fn skewed() -> ClusterSnapshot {
    let nodes = vec![node(1, "a", 1.0, 1.0), node(2, "b", 1.0, 1.0), node(3, "c", 1.0, 1.0)];
    let mut partitions = Vec::new();
    for id in 0..9u32 {
        let expensive = id < 3;
        let replicas: &[u64] = if expensive { &[1, 2, 3] } else { [&[2, 3, 1][..], &[3, 1, 2][..]][id as usize % 2] };
        partitions.push(partition(id, replicas, 100.0, if expensive { 3.0 } else { 0.2 }));
    }
    ClusterSnapshot { replication_factor: 3, nodes, partitions, in_flight: Default::default() }
}

fn policy(name: PolicyName) -> Policy {
    Policy { name, slo_p99_ms: 50.0, max_operations_per_round: 100, ..Policy::default() }
}

#[test]
fn hot_leaders_are_spread_by_leader_transfers_first() {
    let snapshot = skewed();
    // At the mean cost per event the prior predicts 10 ms at ~55% busy.
    let slo = Policy { slo_p99_ms: 10.0, ..policy(PolicyName::Adaptive) };
    let plan = plan(&snapshot, &Models::default(), &slo);
    assert!(plan.before.utilisation_max > 0.8 && plan.before.slo_attainment < 1.0, "{:?}", plan.before);
    assert!(!plan.operations.is_empty());
    assert!(plan.operations.iter().all(|op| matches!(op.change, Move::TransferLeader { .. })), "{plan:#?}");
    assert!(plan.after.utilisation_max < 0.5 && plan.after.slo_attainment == 1.0, "{plan:#?}");
    assert!(plan.operations.iter().all(|op| op.effect.gain > 0.0 && !op.reason.is_empty()));
    // Stable: on its own output it proposes nothing.
    let again = super::plan(&applied(&snapshot, &plan), &Models::default(), &slo);
    assert!(again.is_empty(), "{again:#?}");
}

#[test]
fn baselines_do_what_they_say() {
    let snapshot = skewed();
    // Static never balances; count sees even leader counts and stays put.
    assert!(plan(&snapshot, &Models::default(), &policy(PolicyName::Static)).is_empty());
    assert!(plan(&snapshot, &Models::default(), &policy(PolicyName::Count)).is_empty());
    let by_utilisation = plan(&snapshot, &Models::default(), &policy(PolicyName::Utilisation));
    assert!(by_utilisation.after.utilisation_max < by_utilisation.before.utilisation_max);
    // Count balances counts: nine leaders on one node get spread.
    let mut piled = skewed();
    for p in &mut piled.partitions {
        p.leader = Some(1);
    }
    let counted = plan(&piled, &Models::default(), &policy(PolicyName::Count));
    let after = applied(&piled, &counted);
    for n in 1..=3 {
        assert_eq!(after.partitions.iter().filter(|p| p.leader == Some(n)).count(), 3, "{counted:#?}");
    }
}

#[test]
fn a_draining_node_is_emptied_leaders_first() {
    let mut snapshot = skewed();
    snapshot.nodes.push(node(4, "d", 1.0, 1.0));
    snapshot.nodes[0].state = NodeState::Draining;
    let plan = plan(&snapshot, &Models::default(), &policy(PolicyName::Adaptive));
    let after = applied(&snapshot, &plan);
    assert!(after.partitions.iter().all(|p| !p.replicas.contains(&1) && p.leader != Some(1)), "{plan:#?}");
    assert!(after.partitions.iter().all(|p| p.replicas.len() == 3 && p.leader.is_some()));
    // Leadership goes to a replica that is caught up before the draining
    // replica leaves: no replica moves off node 1 while node 1 leads it.
    let mut replay = snapshot.clone();
    for op in &plan.operations {
        if let Move::MoveReplica { partition, from: 1, .. } = op.change {
            assert_ne!(replay.partitions[partition as usize].leader, Some(1), "{plan:#?}");
        }
        replay.apply(&op.change);
    }
}

#[test]
fn replicas_on_a_down_node_are_replaced_and_zones_spread() {
    let nodes = vec![node(1, "a", 2.0, 1.0), node(2, "a", 2.0, 1.0), node(3, "b", 2.0, 1.0), node(4, "c", 2.0, 1.0)];
    let mut snapshot = ClusterSnapshot {
        replication_factor: 3,
        nodes,
        partitions: vec![partition(0, &[1, 2, 3], 10.0, 1.0), partition(1, &[3, 4, 1], 10.0, 1.0)],
        in_flight: Default::default(),
    };
    snapshot.nodes[3].state = NodeState::Down;
    let plan = plan(&snapshot, &Models::default(), &policy(PolicyName::Static));
    let after = applied(&snapshot, &plan);
    // Partition 1 lost its replica on node 4; three up nodes are left in two zones.
    assert!(after.partitions.iter().all(|p| p.replicas.len() == 3 && !p.replicas.contains(&4)), "{plan:#?}");
    // With node 4 down only zones a and b have up nodes: two zones is the spread.
    let zone_of: std::collections::BTreeMap<u64, String> =
        snapshot.nodes.iter().map(|n| (n.id, n.zone.clone())).collect();
    let zones = |p: &PartitionView| {
        let mut z: Vec<&str> = p.replicas.iter().map(|r| zone_of[r].as_str()).collect();
        z.sort_unstable();
        z.dedup();
        z.len()
    };
    assert!(after.partitions.iter().all(|p| zones(p) == 2));
    // With zone c back, partition 0 spreads to three zones.
    snapshot.nodes[3].state = NodeState::Up;
    let plan = super::plan(&snapshot, &Models::default(), &policy(PolicyName::Static));
    let after = applied(&snapshot, &plan);
    assert!(after.partitions.iter().all(|p| zones(p) == 3), "{plan:#?}");
}

#[test]
fn an_unneeded_expensive_node_is_advised_and_drained_when_allowed() {
    let nodes = vec![node(1, "a", 4.0, 0.2), node(2, "b", 4.0, 0.2), node(3, "c", 4.0, 0.2), node(4, "a", 4.0, 3.0)];
    let partitions = (0..8u32)
        .map(|id| {
            let sets: [&[u64]; 4] = [&[1, 2, 3], &[4, 2, 3], &[2, 4, 1], &[3, 1, 4]];
            partition(id, sets[id as usize % 4], 20.0, 1.0)
        })
        .collect();
    let snapshot = ClusterSnapshot { replication_factor: 3, nodes, partitions, in_flight: Default::default() };
    let advise = plan(&snapshot, &Models::default(), &policy(PolicyName::Adaptive));
    assert!(advise.advice.iter().any(|a| matches!(a, Advice::Drain { node: 4, .. })), "{advise:#?}");
    assert!(applied(&snapshot, &advise).partitions.iter().any(|p| p.replicas.contains(&4)));

    let allowed = Policy { allow_scale_in: true, ..policy(PolicyName::Adaptive) };
    let drained = plan(&snapshot, &Models::default(), &allowed);
    let after = applied(&snapshot, &drained);
    assert!(after.partitions.iter().all(|p| !p.replicas.contains(&4) && p.replicas.len() == 3), "{drained:#?}");
    assert!(drained.after.price_per_hour < drained.before.price_per_hour);
    assert!(super::plan(&after, &Models::default(), &allowed).is_empty());
}

#[test]
fn too_little_capacity_is_reported_with_advice_to_scale_out() {
    let nodes = vec![node(1, "a", 1.0, 1.0), node(2, "b", 1.0, 1.0), node(3, "c", 1.0, 1.0)];
    let partitions = (0..6u32).map(|id| partition(id, &[1, 2, 3], 300.0, 1.0)).collect();
    let snapshot = ClusterSnapshot { replication_factor: 3, nodes, partitions, in_flight: Default::default() };
    let plan = plan(&snapshot, &Models::default(), &policy(PolicyName::Adaptive));
    assert!(plan.unmet.iter().any(|u| u.contains("ceiling")), "{plan:#?}");
    let scale_out = plan.advice.iter().find_map(|a| match a {
        Advice::ScaleOut { count, .. } => Some(*count),
        _ => None,
    });
    assert!(scale_out.is_some_and(|count| count >= 1), "{plan:#?}");
}

#[test]
fn the_round_budget_and_operations_in_flight_are_respected() {
    let mut snapshot = skewed();
    for p in &mut snapshot.partitions {
        p.leader = Some(1);
    }
    snapshot.in_flight.insert(0);
    let tight = Policy { max_operations_per_round: 3, ..policy(PolicyName::Count) };
    let plan = plan(&snapshot, &Models::default(), &tight);
    assert_eq!(plan.operations.len(), 2, "{plan:#?}");
    assert!(plan.operations.iter().all(|op| op.effect.gain > 0.0));
    assert!(plan.budget_exhausted);
    assert!(plan.operations.iter().all(|op| op.change.partition() != 0));
}
