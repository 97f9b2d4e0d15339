//! The simulator's two engines on shipped scenarios, as `eddy-sim run`
//! runs them: the fast engine on `large` (24 hours of 100 nodes and
//! 10,000 partitions, the real planner every 60 s, a zone loss), and the
//! exact engine on `mmc4` (an hour of one 4-core node at 80%, 11.5
//! million events, one by one), reported in events per second.

use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use eddy_sim::Scenario;

fn scenario(name: &str) -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("sim/scenarios").join(format!("{name}.toml"));
    Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn fast_day_of_a_large_cluster(c: &mut Criterion) {
    let large = scenario("large");
    let mut group = c.benchmark_group("sim_fast");
    group.sample_size(10);
    group.bench_function("large_24h_100_nodes_10000_partitions", |b| {
        b.iter(|| {
            let run = eddy_sim::fast::run(&large, |_| {});
            assert!(run.summary.planner_calls >= 720);
            run
        });
    });
    group.finish();
}

fn exact_events(c: &mut Criterion) {
    let mmc4 = scenario("mmc4");
    let events = eddy_sim::exact::run(&mmc4, |_| {}).unwrap_or_else(|e| panic!("{e}")).summary.events;
    let mut group = c.benchmark_group("sim_exact");
    group.sample_size(10);
    group.throughput(Throughput::Elements(events as u64));
    group.bench_function("mmc4_1h_4_cores", |b| {
        b.iter(|| eddy_sim::exact::run(&mmc4, |_| {}).unwrap_or_else(|e| panic!("{e}")));
    });
    group.finish();
}

criterion_group!(benches, fast_day_of_a_large_cluster, exact_events);
criterion_main!(benches);
