//! Commits of controller changes on a three-voter cluster over gRPC on
//! loopback: the latency of one change at a time, and the throughput of many
//! changes in flight. Every commit is replicated to a quorum and fsynced.
//!
//! cargo bench --bench controller_commit

// A benchmark that cannot set up its cluster must stop, loudly.
#![allow(clippy::expect_used)]

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use eddy_core::{NodeSpec, Role};
use eddy_node::RunningNode;
use eddy_node::config::{Member, NodeConfig};
use futures::future::try_join_all;
use tokio::runtime::Runtime;

struct Cluster {
    nodes: Vec<RunningNode>,
    _dirs: Vec<tempfile::TempDir>,
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

async fn start_cluster() -> Cluster {
    let addrs: Vec<String> = (0..3).map(|_| format!("127.0.0.1:{}", free_port())).collect();
    let members: Vec<Member> =
        addrs.iter().enumerate().map(|(i, addr)| Member { id: i as u64 + 1, addr: addr.clone() }).collect();
    let mut nodes = Vec::new();
    let mut dirs = Vec::new();
    for (i, addr) in addrs.iter().enumerate() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = NodeConfig::default();
        config.node.id = i as u64 + 1;
        config.node.listen_addr = addr.clone();
        config.node.data_dir = dir.path().to_path_buf();
        config.node.zone = format!("zone-{i}");
        config.controller.initial_members = members.clone();
        // Fake nodes registered by the benchmark never send heartbeats.
        config.liveness.suspect_after_ms = 3_600_000;
        config.liveness.down_after_ms = 7_200_000;
        config.validate().expect("valid benchmark config");
        nodes.push(RunningNode::start(config).await.expect("node starts"));
        dirs.push(dir);
    }
    Cluster { nodes, _dirs: dirs }
}

impl Cluster {
    /// Waits for a leader that has initialized the cluster; returns its index.
    async fn leader(&self) -> usize {
        for _ in 0..600 {
            for (i, node) in self.nodes.iter().enumerate() {
                let Some(controller) = node.controller() else { continue };
                let status = controller.status();
                if status.leader.as_ref().is_some_and(|(id, _)| *id == i as u64 + 1) && status.map.cluster_id.is_some()
                {
                    return i;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no controller leader within 60 s");
    }
}

/// A change the registry must commit: a node whose zone flips each time.
fn change(id: u64, round: u64) -> NodeSpec {
    NodeSpec {
        id,
        addr: format!("127.0.0.1:{}", 20_000 + id),
        zone: format!("bench-zone-{}", round % 2),
        capacity_cores: 1.0,
        price_per_hour: 0.0,
        roles: vec![Role::Controller],
    }
}

fn bench(c: &mut Criterion) {
    let runtime = Runtime::new().expect("tokio runtime");
    let cluster = runtime.block_on(start_cluster());
    let leader = runtime.block_on(cluster.leader());
    let controller = cluster.nodes[leader].controller().expect("leader runs the controller").clone();

    let mut group = c.benchmark_group("controller_commit");
    group.sample_size(30).measurement_time(Duration::from_secs(10));
    let mut round = 0u64;
    group.throughput(Throughput::Elements(1));
    group.bench_function("one_at_a_time", |b| {
        b.to_async(&runtime).iter(|| {
            round += 1;
            let controller = controller.clone();
            let spec = change(1000, round);
            async move { controller.register(spec, "").await.expect("commit") }
        });
    });
    for in_flight in [16u64, 64] {
        group.throughput(Throughput::Elements(in_flight));
        group.bench_with_input(BenchmarkId::new("in_flight", in_flight), &in_flight, |b, &in_flight| {
            b.to_async(&runtime).iter(|| {
                round += 1;
                let controller = controller.clone();
                let writes = (0..in_flight).map(move |i| {
                    let controller = controller.clone();
                    async move { controller.register(change(2000 + i, round), "").await }
                });
                async move { try_join_all(writes).await.expect("commits") }
            });
        });
    }
    group.finish();
    runtime.block_on(async {
        for node in cluster.nodes {
            node.shutdown().await;
        }
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
