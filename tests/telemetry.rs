//! Telemetry on a live three-node cluster: workers report to the controller
//! leader, which learns what each partition's events cost, and exports the
//! recorded history as a trace that loads back and adds up.

use std::time::{Duration, Instant};

use bytes::Bytes;
use eddy_client::events::{EventClient, RetryPolicy};
use eddy_proto::v1::{self, SubmitRequest};
use eddy_testkit::{ClusterSpec, TestCluster, bins, healthy};

const SETTLE: Duration = Duration::from_secs(60);
const LIGHT_US: u64 = 1000;
const HEAVY_US: u64 = 4000;

/// Two keys of different partitions.
fn two_keys(client: &EventClient) -> ((String, u32), (String, u32)) {
    let first = ("key-0".to_owned(), client.partition_for_key(b"key-0"));
    let second = (1..)
        .map(|i| format!("key-{i}"))
        .map(|k| {
            let p = client.partition_for_key(k.as_bytes());
            (k, p)
        })
        .find(|(_, p)| *p != first.1)
        .unwrap_or_else(|| unreachable!("16 partitions"));
    (first, second)
}

async fn submit(client: &EventClient, key: &str, partition: u32, kind: &str, count: usize) -> anyhow::Result<u64> {
    let events = (0..count)
        .map(|_| v1::Event {
            key: Bytes::from(key.to_owned()),
            r#type: kind.into(),
            payload: Bytes::from_static(b"{\"v\": 1}"),
            attributes: Default::default(),
        })
        .collect();
    let response = client
        .submit(SubmitRequest {
            partition: Some(partition),
            events,
            producer: None,
            request_id: 0,
            ..Default::default()
        })
        .await?;
    Ok(u64::from(response.count))
}

fn models(cluster: &TestCluster, ask: u64) -> anyhow::Result<serde_json::Value> {
    let out = cluster.eddyctl(ask, &["models", "--json"])?;
    anyhow::ensure!(out.status.success(), "eddyctl models: {}", String::from_utf8_lossy(&out.stderr));
    Ok(serde_json::from_slice(&out.stdout)?)
}

fn cost_of(models: &serde_json::Value, partition: u32) -> Option<f64> {
    models["partitions"].as_array()?.iter().find(|p| p["partition"] == partition)?["cpu_ms_per_event"].as_f64()
}

/// Waits (up to 30 s) for the leader's cost estimates of the two partitions
/// to come within 25% of the configured costs; answers the last seen.
async fn learned_costs(cluster: &TestCluster, ask: u64, light: u32, heavy: u32) -> anyhow::Result<(f64, f64)> {
    let close =
        |c: Option<f64>, us: u64| c.is_some_and(|c| (c - us as f64 / 1000.0).abs() <= 0.25 * us as f64 / 1000.0);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let models = models(cluster, ask)?;
        let costs = (cost_of(&models, light), cost_of(&models, heavy));
        if (close(costs.0, LIGHT_US) && close(costs.1, HEAVY_US)) || Instant::now() > deadline {
            println!(
                "estimated cost per event: light {:?} ms (configured 1.0), heavy {:?} ms (configured 4.0)",
                costs.0, costs.1
            );
            return Ok((costs.0.unwrap_or(f64::NAN), costs.1.unwrap_or(f64::NAN)));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Light and heavy events for `seconds`; answers how many were acknowledged.
async fn load(client: &EventClient, keys: &((String, u32), (String, u32)), seconds: u64) -> anyhow::Result<u64> {
    let ((light_key, light), (heavy_key, heavy)) = keys;
    let mut acked = 0;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(seconds) {
        acked += submit(client, light_key, *light, "light", 10).await?;
        acked += submit(client, heavy_key, *heavy, "heavy", 5).await?;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(acked)
}

fn spec() -> ClusterSpec {
    ClusterSpec {
        extra_manifest: format!("[processors.synthetic_cost_us]\nlight = {LIGHT_US}\nheavy = {HEAVY_US}\n"),
        ..ClusterSpec::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_learns_partition_costs_and_exports_the_history() -> anyhow::Result<()> {
    let cluster = TestCluster::start(bins!(), spec())?;
    cluster.wait_until(1, "a healthy cluster", SETTLE, |s| healthy(s, 3)).await?;
    let client = EventClient::connect(&cluster.endpoints(), Duration::from_secs(5), RetryPolicy::default()).await?;
    let keys = two_keys(&client);
    let ((_, light), (_, heavy)) = keys.clone();

    // About 100 light and 50 heavy events a second for eight seconds:
    // 0.1 + 0.2 cores of processor work, well inside the nodes' capacity.
    let acked = load(&client, &keys, 8).await?;
    let (light_ms, heavy_ms) = learned_costs(&cluster, 1, light, heavy).await?;
    assert!((light_ms - 1.0).abs() <= 0.25, "light partition estimated at {light_ms} ms per event");
    assert!((heavy_ms - 4.0).abs() <= 1.0, "heavy partition estimated at {heavy_ms} ms per event");

    // `top` draws the same telemetry: every node, and both loaded partitions.
    let top = cluster.eddyctl(2, &["top", "--once"])?;
    anyhow::ensure!(top.status.success(), "eddyctl top: {}", String::from_utf8_lossy(&top.stderr));
    let frame = String::from_utf8(top.stdout)?;
    assert!(frame.starts_with("eddy top: 3 nodes, 16 partitions"), "{frame}");
    let row_ids: Vec<u64> = frame.lines().filter_map(|l| l.split_whitespace().next()?.parse().ok()).collect();
    for id in [1, 2, 3, u64::from(light), u64::from(heavy)] {
        assert!(row_ids.contains(&id), "no row for {id} in\n{frame}");
    }

    // Every acknowledged event is in the exported history once.
    let deadline = Instant::now() + Duration::from_secs(15);
    let trace = loop {
        let trace = cluster.export_trace(1)?;
        let recorded: u64 = trace.partitions.iter().flat_map(|p| &p.samples).map(|s| s.events).sum();
        if recorded == acked || Instant::now() > deadline {
            assert_eq!(recorded, acked, "events in the trace against events acknowledged");
            break trace;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(trace.nodes.len(), 3, "every worker reported");
    for node in &trace.nodes {
        assert_eq!(node.capacity_cores, 2.0, "node {} capacity", node.node);
        assert!(!node.samples.is_empty());
    }
    let recorded_partitions: Vec<u32> =
        trace.partitions.iter().filter(|p| p.samples.iter().any(|s| s.events > 0)).map(|p| p.partition).collect();
    let mut expected = vec![light, heavy];
    expected.sort_unstable();
    assert_eq!(recorded_partitions, expected, "partitions with events");
    let heavy_costs: Vec<f64> = trace
        .partitions
        .iter()
        .filter(|p| p.partition == heavy)
        .flat_map(|p| &p.samples)
        .filter_map(|s| s.cpu_ms_per_event)
        .collect();
    assert!(!heavy_costs.is_empty(), "the heavy partition's costs were recorded");
    Ok(())
}

/// A new controller leader rebuilds the models from the reports the
/// workers kept and resend: the history from before the change is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_controller_leader_rebuilds_the_models() -> anyhow::Result<()> {
    let mut cluster = TestCluster::start(bins!(), spec())?;
    cluster.wait_until(1, "a healthy cluster", SETTLE, |s| healthy(s, 3)).await?;
    let client = EventClient::connect(&cluster.endpoints(), Duration::from_secs(5), RetryPolicy::default()).await?;
    let keys = two_keys(&client);
    let ((_, light), (_, heavy)) = keys.clone();
    load(&client, &keys, 6).await?;
    learned_costs(&cluster, 1, light, heavy).await?;

    let old_leader = cluster.status_of(1).await?.leader.ok_or_else(|| anyhow::anyhow!("no controller leader"))?;
    let killed_at_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as u64;
    cluster.kill(old_leader)?;
    let survivor = cluster.ids().into_iter().find(|id| *id != old_leader).unwrap_or(1);
    cluster
        .wait_until(survivor, "a new controller leader", SETTLE, |s| s.leader.is_some_and(|l| l != old_leader))
        .await?;
    // Load goes on: partitions the killed node led move to the others.
    load(&client, &keys, 6).await?;
    let (light_ms, heavy_ms) = learned_costs(&cluster, survivor, light, heavy).await?;
    assert!((light_ms - 1.0).abs() <= 0.25, "light partition estimated at {light_ms} ms per event");
    assert!((heavy_ms - 4.0).abs() <= 1.0, "heavy partition estimated at {heavy_ms} ms per event");

    let trace = cluster.export_trace(survivor)?;
    let survivors: Vec<u64> = cluster.ids().into_iter().filter(|id| *id != old_leader).collect();
    let reported: Vec<u64> = trace.nodes.iter().map(|n| n.node).filter(|n| survivors.contains(n)).collect();
    assert_eq!(reported, survivors, "the surviving workers' histories");
    for node in trace.nodes.iter().filter(|n| survivors.contains(&n.node)) {
        let first = node.samples.first().map_or(u64::MAX, |s| s.at_ms);
        assert!(
            first + 5_000 < killed_at_ms,
            "node {}: the new leader's history starts at {first}, only {} ms before the change",
            node.node,
            killed_at_ms.saturating_sub(first)
        );
    }
    Ok(())
}

/// A node given half a core processes at half a core, even on a host with
/// more: offered twice what it can fold, its processor utilisation stays
/// at its capacity and a backlog builds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_saturates_at_its_configured_capacity() -> anyhow::Result<()> {
    let spec = ClusterSpec {
        replication_factor: 1,
        capacity_cores: 0.5,
        extra_manifest: "[processors.synthetic_cost_us]\nwork = 1000\n".into(),
        ..ClusterSpec::default()
    };
    let cluster = TestCluster::start(bins!(), spec)?;
    cluster.wait_until(1, "a healthy cluster", SETTLE, |s| healthy(s, 3)).await?;
    let client = EventClient::connect(&cluster.endpoints(), Duration::from_secs(5), RetryPolicy::default()).await?;
    let partition = client.partition_for_key(b"busy");

    // 1 ms of CPU per event on half a core: at most 500 events a second.
    // Offer about 1000 a second for 8 seconds.
    let mut acked = 0;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(8) {
        acked += submit(&client, "busy", partition, "work", 50).await?;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    let trace = cluster.export_trace(1)?;
    let leader = trace
        .partitions
        .iter()
        .find(|p| p.partition == partition)
        .and_then(|p| p.samples.iter().find(|s| s.events > 0))
        .map(|s| s.leader)
        .ok_or_else(|| anyhow::anyhow!("no samples of partition {partition}"))?;
    let node = trace.nodes.iter().find(|n| n.node == leader).ok_or_else(|| anyhow::anyhow!("no node {leader}"))?;
    let busiest = node.samples.iter().map(|s| s.utilisation).fold(0.0, f64::max);
    let processed: u64 = node.samples.iter().map(|s| s.processed_events).sum();
    println!("offered {acked} events; node {leader} processed {processed}, busiest second at {busiest:.2} of capacity");
    // The budget lets a second run over by at most its 50 ms of credit.
    assert!(busiest <= 1.15, "utilisation {busiest} above the node's capacity");
    assert!(busiest >= 0.25, "the node hardly worked: {busiest}");
    assert!(processed < acked, "processed {processed} of {acked}: no backlog at twice the capacity");
    Ok(())
}
