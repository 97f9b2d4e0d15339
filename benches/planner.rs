//! The planner on large clusters: 10,000 partitions on 100 nodes and
//! 100,000 partitions on 1,000 nodes, replication factor 3 over three
//! zones, placed by hash, with a skewed load (a few partitions many times
//! busier than the rest) that leaves some nodes hot. One iteration is one
//! whole `plan()` call with the default adaptive policy: building the
//! working state, the latency curves, repairs, the greedy search and the
//! capacity checks.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use eddy_core::NodeState;
use eddy_placement::{ClusterSnapshot, Models, NodeView, PartitionView, Policy, plan};

fn snapshot(nodes: usize, partitions: usize) -> ClusterSnapshot {
    let views = (0..nodes)
        .map(|i| NodeView {
            id: i as u64 + 1,
            zone: format!("zone-{}", i % 3),
            capacity_cores: 4.0,
            price_per_hour: if i % 10 == 0 { 0.4 } else { 0.2 },
            state: NodeState::Up,
        })
        .collect();
    // Zipf-like rates, scaled so that the cluster is about half busy.
    let weights: Vec<f64> = (0..partitions).map(|i| 1.0 / ((i % 997) as f64 + 1.0).powf(0.8)).collect();
    let total_weight: f64 = weights.iter().sum();
    let cpu_ms_per_event = 0.5;
    let total_events_per_s = 0.5 * 4.0 * nodes as f64 * 1000.0 / cpu_ms_per_event;
    let parts = (0..partitions)
        .map(|i| {
            // Hash placement: consecutive nodes, hence three zones.
            let first = (i * 7919) % nodes;
            let replicas: Vec<u64> = (0..3).map(|r| ((first + r) % nodes) as u64 + 1).collect();
            PartitionView {
                id: i as u32,
                leader: Some(replicas[0]),
                replicas,
                events_per_s: total_events_per_s * weights[i] / total_weight,
                cpu_ms_per_event,
                size_bytes: 64 << 20,
            }
        })
        .collect();
    ClusterSnapshot { replication_factor: 3, nodes: views, partitions: parts, in_flight: Default::default() }
}

/// One round (the default budget of 16 operations), and a full rebalance
/// (no budget: the search runs until no move gains enough).
fn planner(c: &mut Criterion) {
    let round = Policy { slo_p99_ms: 20.0, ..Policy::default() };
    let full = Policy { max_operations_per_round: usize::MAX, ..round };
    let models = Models::default();
    for (name, policy) in [("plan_round", round), ("plan_full", full)] {
        let mut group = c.benchmark_group(name);
        group.sample_size(10);
        for (nodes, partitions) in [(100, 10_000), (1_000, 100_000)] {
            let input = snapshot(nodes, partitions);
            let first = plan(&input, &models, &policy);
            assert!(!first.is_empty(), "the skewed cluster should give the planner work");
            eprintln!(
                "{name}: {partitions} partitions on {nodes} nodes: {} operations, busiest node {:.0}% -> {:.0}%, worst p99 {:.1} -> {:.1} ms",
                first.operations.len(),
                first.before.utilisation_max * 100.0,
                first.after.utilisation_max * 100.0,
                first.before.p99_ms_max,
                first.after.p99_ms_max
            );
            group.bench_with_input(
                BenchmarkId::from_parameter(format!("{partitions}_partitions_{nodes}_nodes")),
                &input,
                |b, input| b.iter(|| black_box(plan(input, &models, &policy))),
            );
        }
        group.finish();
    }
}

criterion_group!(benches, planner);
criterion_main!(benches);
