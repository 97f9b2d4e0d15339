//! `eddyctl drain` on a four-node cluster, replication factor 3, under
//! load: in mode advise the round proposes moving the node's replicas and
//! nothing moves; in mode auto the node ends with no replica and no
//! leadership, and every acknowledged event is stored once.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use eddy_client::events::{EventClient, RetryPolicy};
use eddy_proto::v1::{self, SubmitRequest};
use eddy_testkit::{ClusterSpec, TestCluster, bins, healthy};

const SETTLE: Duration = Duration::from_secs(60);
const KEYS: usize = 6;

/// Submits one event per key every 50 ms until `stop` is set (at most two
/// minutes); answers the acknowledged payloads of each key.
async fn load(client: Arc<EventClient>, stop: Arc<AtomicBool>) -> anyhow::Result<Vec<Vec<String>>> {
    let until = Instant::now() + Duration::from_secs(120);
    let mut acked = vec![Vec::new(); KEYS];
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) && Instant::now() < until {
        for (k, acked) in acked.iter_mut().enumerate() {
            let payload = format!("{{\"key\": {k}, \"value\": {i}}}");
            let key = format!("drain-{k}");
            let partition = Some(client.partition_for_key(key.as_bytes()));
            let event = v1::Event {
                key: Bytes::from(key),
                r#type: "t".into(),
                payload: Bytes::from(payload.clone()),
                attributes: Default::default(),
            };
            // An idempotent producer per key: a retry after a lost answer
            // is stored once.
            let producer = Some(v1::Producer { id: 1000 + k as u64, sequence: i });
            client
                .submit(SubmitRequest { partition, events: vec![event], producer, request_id: 0, ..Default::default() })
                .await?;
            acked.push(payload);
        }
        i += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(acked)
}

fn eddyctl(cluster: &TestCluster, args: &[&str]) -> anyhow::Result<String> {
    let out = cluster.eddyctl(2, args)?;
    anyhow::ensure!(out.status.success(), "eddyctl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The latest round, once it proposes moving replicas off `node` (up to 30 s).
async fn round_draining(cluster: &TestCluster, node: u64) -> anyhow::Result<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(text) = eddyctl(cluster, &["plan", "--last", "--json"])
            && let Ok(round) = serde_json::from_str::<serde_json::Value>(&text)
            && round["plan"]["operations"]
                .as_array()
                .is_some_and(|ops| ops.iter().any(|op| op["kind"] == "move_replica" && op["from"] == node))
        {
            return Ok(round);
        }
        anyhow::ensure!(Instant::now() < deadline, "no round proposes draining node {node}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_node_is_emptied_under_load_and_nothing_is_lost() -> anyhow::Result<()> {
    let mut cluster = TestCluster::start(bins!(), ClusterSpec::default())?;
    cluster.wait_until(1, "a healthy cluster", SETTLE, |s| healthy(s, 3)).await?;
    cluster.add_worker(4, "zone-4", 0.1)?;
    cluster.wait_until(1, "four nodes up", SETTLE, |s| healthy(s, 4)).await?;
    let client =
        Arc::new(EventClient::connect(&cluster.endpoints(), Duration::from_secs(5), RetryPolicy::default()).await?);
    let stop = Arc::new(AtomicBool::new(false));
    let loader = tokio::spawn(load(client.clone(), stop.clone()));
    let holds = |s: &eddy_client::view::StatusView, node: u64| {
        s.partitions.iter().filter(|p| p.replicas.contains(&node) || p.leader == Some(node)).count()
    };

    // Advise (the default mode): the round proposes the moves, none happens.
    assert!(eddyctl(&cluster, &["drain", "1"])?.contains("node 1 is draining"));
    let advised = round_draining(&cluster, 1).await?;
    assert_eq!(advised["mode"], "advise", "{advised}");
    let status = cluster.client_of(2)?.leader_status().await?;
    assert_eq!(holds(&status, 1), status.partitions.len(), "advise moved something");

    // Auto: node 1 is emptied.
    eddyctl(&cluster, &["policy", "set", "--mode", "auto"])?;
    cluster.wait_until(2, "node 1 emptied", Duration::from_secs(120), |s| holds(s, 1) == 0).await?;
    cluster
        .wait_until(2, "every partition led with 3 replicas", SETTLE, |s| {
            s.partitions.iter().all(|p| p.replicas.len() == 3 && p.leader.is_some())
        })
        .await?;
    stop.store(true, Ordering::Relaxed);
    let acked = loader.await??;

    // eddyctl ops lists the moves off node 1; each completes.
    let deadline = Instant::now() + SETTLE;
    loop {
        let ops: serde_json::Value = serde_json::from_str(&eddyctl(&cluster, &["ops", "--limit", "100", "--json"])?)?;
        let moves: Vec<&serde_json::Value> =
            ops.as_array().into_iter().flatten().filter(|op| op["kind"] == "move_replica" && op["from"] == 1).collect();
        assert!(!moves.is_empty(), "no moves off node 1 in eddyctl ops: {ops}");
        if moves.iter().all(|op| op["outcome"] == "done") {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "moves not done: {ops}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Every acknowledged event is stored, once.
    for (k, acked) in acked.iter().enumerate() {
        let partition = client.partition_for_key(format!("drain-{k}").as_bytes());
        let stored = client.read(partition, 0, 0, 100_000).await?.events;
        let payloads: Vec<String> = stored
            .iter()
            .filter_map(|e| e.event.as_ref().map(|e| String::from_utf8_lossy(&e.payload).into_owned()))
            .filter(|p| p.contains(&format!("\"key\": {k},")))
            .collect();
        let unique: BTreeSet<&String> = payloads.iter().collect();
        assert_eq!(unique.len(), payloads.len(), "key {k}: an event was stored twice");
        for payload in acked {
            assert!(unique.contains(payload), "key {k}: acknowledged event {payload} is missing");
        }
    }
    Ok(())
}
