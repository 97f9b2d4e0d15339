//! Properties of every planner on random clusters: constraints hold after
//! its plan, the ceiling holds when that is easy, the same input gives the
//! same plan, its own output gives an empty plan, the budget holds.

use std::collections::BTreeSet;

use eddy_core::NodeState;
use proptest::prelude::*;

use super::planner_tests::{applied, node};
use super::*;

#[derive(Debug, Clone)]
struct Cluster {
    snapshot: ClusterSnapshot,
}

/// Up to 12 nodes in up to 4 zones, some of them down or draining; up to
/// 60 partitions placed at random (replicas on distinct nodes, possibly
/// too few); loads such that the up nodes could carry them at half the
/// ceiling, each partition small against the smallest node.
fn cluster() -> impl Strategy<Value = Cluster> {
    (3usize..12, 1usize..5, 1u32..4, 1usize..60, any::<u64>()).prop_map(|(nodes, zones, rf, partitions, seed)| {
        let mut rng = Lcg(seed | 1);
        let mut views: Vec<NodeView> = (0..nodes)
            .map(|i| {
                let cores = [0.5, 1.0, 2.0, 4.0][rng.below(4)];
                let price = [0.1, 0.2, 0.5, 2.0][rng.below(4)];
                node(i as u64 + 1, &format!("z{}", i % zones), cores, price)
            })
            .collect();
        // Keep at least rf nodes up so that every partition can be whole.
        for v in views.iter_mut().skip(rf as usize + 1) {
            v.state = [NodeState::Up, NodeState::Up, NodeState::Up, NodeState::Down, NodeState::Draining][rng.below(5)];
        }
        let up_capacity: f64 = views.iter().filter(|v| v.is_up()).map(|v| v.capacity_cores).sum();
        let budget_cores = 0.25 * 0.8 * up_capacity;
        let parts: Vec<PartitionView> = (0..partitions)
            .map(|id| {
                let count = 1 + rng.below(rf as usize);
                let mut replicas: Vec<u64> = Vec::new();
                while replicas.len() < count {
                    let candidate = rng.below(nodes) as u64 + 1;
                    if !replicas.contains(&candidate) {
                        replicas.push(candidate);
                    }
                }
                let skew = if id % 7 == 0 { 4.0 } else { 1.0 };
                let cores = (budget_cores / partitions as f64 * skew).min(0.05);
                let cpu_ms = [0.1, 0.5, 2.0][rng.below(3)];
                PartitionView {
                    id: id as u32,
                    leader: replicas.get(rng.below(replicas.len())).copied(),
                    replicas,
                    events_per_s: cores * 1000.0 / cpu_ms,
                    cpu_ms_per_event: cpu_ms,
                    size_bytes: rng.below(1 << 30) as u64,
                }
            })
            .collect();
        Cluster {
            snapshot: ClusterSnapshot {
                replication_factor: rf,
                nodes: views,
                partitions: parts,
                in_flight: BTreeSet::new(),
            },
        }
    })
}

/// A small seeded generator: the cases must not depend on anything else.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 33) % n.max(1) as u64) as usize
    }
}

fn any_policy() -> impl Strategy<Value = Policy> {
    (prop::sample::select(PolicyName::ALL.to_vec()), prop::bool::ANY, 5.0..200.0f64).prop_map(
        |(name, allow_scale_in, slo_p99_ms)| Policy {
            name,
            allow_scale_in,
            slo_p99_ms,
            max_operations_per_round: 100_000,
            ..Policy::default()
        },
    )
}

fn check_constraints(snapshot: &ClusterSnapshot) -> Result<(), TestCaseError> {
    let up: Vec<&NodeView> = snapshot.nodes.iter().filter(|n| n.is_up()).collect();
    let zones: BTreeSet<&str> = up.iter().map(|n| n.zone.as_str()).collect();
    let rf = snapshot.replication_factor as usize;
    for p in &snapshot.partitions {
        let distinct: BTreeSet<u64> = p.replicas.iter().copied().collect();
        prop_assert_eq!(distinct.len(), p.replicas.len(), "partition {} has a node twice", p.id);
        prop_assert_eq!(p.replicas.len(), rf.min(up.len()), "partition {} replicas {:?}", p.id, p.replicas);
        prop_assert!(p.replicas.iter().all(|r| up.iter().any(|n| n.id == *r)), "partition {} off up nodes", p.id);
        prop_assert!(p.leader.is_some_and(|l| p.replicas.contains(&l)), "partition {} leader", p.id);
        let used: BTreeSet<&str> =
            p.replicas.iter().filter_map(|r| up.iter().find(|n| n.id == *r)).map(|n| n.zone.as_str()).collect();
        prop_assert_eq!(used.len(), rf.min(zones.len()), "partition {} zones", p.id);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn every_partition_is_placed_and_constraints_hold(cluster in cluster(), policy in any_policy()) {
        let plan = plan(&cluster.snapshot, &Models::default(), &policy);
        prop_assert!(!plan.budget_exhausted);
        let after = applied(&cluster.snapshot, &plan);
        check_constraints(&after)?;
        // The load fits at a quarter of the ceiling and no partition is big:
        // the planners that look at load keep every node under the ceiling.
        if matches!(policy.name, PolicyName::Adaptive | PolicyName::Utilisation) {
            prop_assert!(plan.after.utilisation_max <= policy.utilisation_ceiling, "{:?}", plan.after);
        }
    }

    #[test]
    fn the_plan_is_a_function_of_its_input_and_stable_on_its_output(
        cluster in cluster(), policy in any_policy()
    ) {
        let first = plan(&cluster.snapshot, &Models::default(), &policy);
        let second = plan(&cluster.snapshot, &Models::default(), &policy);
        prop_assert_eq!(&first, &second);
        let after = applied(&cluster.snapshot, &first);
        let again = plan(&after, &Models::default(), &policy);
        prop_assert!(again.is_empty(), "first {:?}\nagain {:?}", first.operations.iter().map(|o| (o.change, o.reason.clone())).collect::<Vec<_>>(), again.operations.iter().map(|o| (o.change, o.reason.clone())).collect::<Vec<_>>());
    }

    #[test]
    fn the_budget_holds_and_rounds_converge(
        cluster in cluster(), policy in any_policy(), budget in 1usize..6, in_flight in 0u32..3
    ) {
        let policy = Policy { max_operations_per_round: budget, ..policy };
        let mut snapshot = cluster.snapshot;
        snapshot.in_flight = (0..in_flight).filter(|p| (*p as usize) < snapshot.partitions.len()).collect();
        for round in 0.. {
            let plan = plan(&snapshot, &Models::default(), &policy);
            prop_assert!(plan.operations.len() + snapshot.in_flight.len() <= budget.max(snapshot.in_flight.len()));
            prop_assert!(plan.operations.iter().all(|op| !snapshot.in_flight.contains(&op.change.partition())));
            if plan.is_empty() {
                break;
            }
            prop_assert!(round < 2000, "no convergence: {:#?}", plan.operations);
            snapshot = applied(&snapshot, &plan);
            // The moves in flight complete after the first round.
            snapshot.in_flight.clear();
        }
    }
}
