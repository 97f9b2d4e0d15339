//! A processor checkpoint larger than any read (the processors read 1 MiB
//! at a time, clients 4 MiB, a replica rebuilding its state 8 MiB) stalls
//! no reader and no restart: the leader's processors reach the end, a full
//! tail ends, a restarted follower reopens its replica and, leading, its
//! processors restore the checkpoint; every acknowledged event is stored
//! exactly once.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use eddy_client::events::{EventClient, RetryPolicy};
use eddy_proto::v1::{self, SubmitRequest};
use eddy_testkit::scrape::{scrape, sum};
use eddy_testkit::{ClusterSpec, TestCluster, bins, healthy};

const SETTLE: Duration = Duration::from_secs(90);
const PAYLOAD_BYTES: usize = 4096;
const KEYS: usize = 300;

/// A payload of 4 KiB that names its event.
fn payload(n: usize) -> Bytes {
    let head = format!("{{\"value\": {n}, \"pad\": \"");
    let pad = "x".repeat(PAYLOAD_BYTES - head.len() - 2);
    Bytes::from(format!("{head}{pad}\"}}"))
}

/// Submits events `range` to `partition`, key `n % KEYS`, in batches of
/// 50; records where each was acknowledged.
async fn submit(
    client: &EventClient,
    partition: u32,
    keys: &[String],
    range: std::ops::Range<usize>,
    acked: &mut BTreeMap<u64, usize>,
) -> anyhow::Result<()> {
    let numbers: Vec<usize> = range.collect();
    for batch in numbers.chunks(50) {
        let events = batch
            .iter()
            .map(|n| v1::Event {
                key: Bytes::from(keys[n % keys.len()].clone()),
                r#type: "big".into(),
                payload: payload(*n),
                attributes: Default::default(),
            })
            .collect();
        let request = SubmitRequest { partition: Some(partition), events, ..Default::default() };
        let ack = client.submit(request).await?;
        anyhow::ensure!(!ack.duplicate && ack.count as usize == batch.len(), "unexpected ack {ack:?}");
        for (i, n) in batch.iter().enumerate() {
            acked.insert(ack.first_offset + i as u64, *n);
        }
    }
    Ok(())
}

/// The number each event of `node`'s own replica names, by offset.
async fn stored_on(cluster: &TestCluster, node: u64, partition: u32) -> anyhow::Result<BTreeMap<u64, usize>> {
    let mut stored = BTreeMap::new();
    for (offset, body) in cluster.replica_payloads(node, partition).await? {
        let json: serde_json::Value = serde_json::from_slice(&body)?;
        let n = json["value"].as_u64().ok_or_else(|| anyhow::anyhow!("no value at {offset}"))?;
        stored.insert(offset, n as usize);
    }
    Ok(stored)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_larger_than_a_read_stalls_no_reader_and_no_restart() -> anyhow::Result<()> {
    let spec = ClusterSpec {
        partitions: 4,
        extra_manifest: "[processors]\ncheckpoint_every_events = 3000\ncheckpoint_every_ms = 600000\n".into(),
        ..ClusterSpec::default()
    };
    let mut cluster = TestCluster::start(bins!(), spec)?;
    cluster.wait_until(1, "a healthy cluster", SETTLE, |s| healthy(s, 3)).await?;
    let retry = RetryPolicy { deadline: Duration::from_secs(60), ..RetryPolicy::default() };
    let client = EventClient::connect(&cluster.endpoints(), Duration::from_secs(10), retry).await?;
    let partition = 1;
    let keys: Vec<String> = (0..)
        .map(|i| format!("key-{i}"))
        .filter(|k| client.partition_for_key(k.as_bytes()) == partition)
        .take(KEYS)
        .collect();

    // `latest` keeps 10 events per key: 300 keys of 4 KiB events make a
    // checkpoint of about 12 MiB once 3000 events are in.
    let mut acked = BTreeMap::new();
    submit(&client, partition, &keys, 0..3500, &mut acked).await?;
    let leader = cluster.client_of(1)?.leader_status().await?.partitions[partition as usize]
        .leader
        .ok_or_else(|| anyhow::anyhow!("no leader"))?;
    let deadline = tokio::time::Instant::now() + SETTLE;
    let checkpoint_bytes = loop {
        let metrics = scrape(&cluster.endpoint(leader)?).await?;
        let bytes = metrics
            .samples
            .iter()
            .filter(|s| {
                s.metric == "eddy_worker_checkpoint_bytes" && s.labels.get("partition") == Some(&partition.to_string())
            })
            .map(|s| match s.value {
                prometheus_parse::Value::Gauge(v) => v,
                _ => 0.0,
            })
            .sum::<f64>();
        if bytes > 0.0 || tokio::time::Instant::now() > deadline {
            break bytes;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(checkpoint_bytes > 9.0 * 1024.0 * 1024.0, "checkpoint of {checkpoint_bytes} bytes, not above the reads");
    assert_eq!(sum(&scrape(&cluster.endpoint(leader)?).await?, "eddy_worker_checkpoints_skipped_total"), 0.0);
    submit(&client, partition, &keys, 3500..3700, &mut acked).await?;
    let end = 3700;

    // The leader's processors reach the end.
    let deadline = tokio::time::Instant::now() + SETTLE;
    loop {
        let digest = client.processor_digest(partition).await?;
        if digest.offset >= end {
            break;
        }
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "processors stalled at {}", digest.offset);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A full tail ends.
    let tail = cluster.eddyctl_within(
        &["tail", "--partition", &partition.to_string(), "--from", "earliest", "--until-latest", "--json"],
        SETTLE,
    )?;
    anyhow::ensure!(tail.status.success(), "tail: {}", String::from_utf8_lossy(&tail.stderr));
    assert_eq!(String::from_utf8_lossy(&tail.stdout).lines().count() as u64, end, "the tail read every event");

    // A restarted follower reopens its replica and catches up.
    let status = cluster.client_of(1)?.leader_status().await?;
    let follower = *status.partitions[partition as usize]
        .replicas
        .iter()
        .find(|r| **r != leader)
        .ok_or_else(|| anyhow::anyhow!("no follower"))?;
    cluster.stop(follower)?;
    cluster.start_node(follower)?;
    cluster.wait_until(1, "the follower back", SETTLE, |s| healthy(s, 3)).await?;
    let deadline = tokio::time::Instant::now() + SETTLE;
    let on_follower = loop {
        match stored_on(&cluster, follower, partition).await {
            Ok(stored) if stored.len() as u64 >= end => break stored,
            _ if tokio::time::Instant::now() > deadline => {
                anyhow::bail!("node {follower} did not reopen its replica\n{}", cluster.log_tails())
            }
            _ => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    };
    let log = cluster.log(follower)?;
    assert!(!log.contains("cannot open partition replica"), "node {follower} could not open a replica");

    // Leading, it restores the checkpoint from its own log. A transfer is
    // a request: on a loaded machine the election may go to another
    // replica, so it is asked again until the follower leads.
    let transfer = ["transfer-leader", &partition.to_string(), "--to", &follower.to_string()].map(str::to_owned);
    let deadline = tokio::time::Instant::now() + SETTLE;
    let mut asked_at: Option<tokio::time::Instant> = None;
    let digest = loop {
        let status = cluster.client_of(1)?.leader_status().await?;
        let now_led = status.partitions[partition as usize].leader == Some(follower);
        if !now_led && asked_at.is_none_or(|at| at.elapsed() > Duration::from_secs(15)) {
            let args: Vec<&str> = transfer.iter().map(String::as_str).collect();
            let moved = cluster.eddyctl_within(&args, Duration::from_secs(30))?;
            anyhow::ensure!(moved.status.success(), "transfer: {}", String::from_utf8_lossy(&moved.stderr));
            asked_at = Some(tokio::time::Instant::now());
        }
        let digest = client.processor_digest(partition).await?;
        if now_led && digest.offset >= end && digest.restored_from >= 3000 {
            break digest;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "no restore on node {follower}: {digest:?}, table {:?}\n{}",
            status.partitions[partition as usize],
            cluster.log_tails()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(digest.restored_from <= end, "{digest:?}");

    // Every acknowledged event is stored once, where it was acknowledged,
    // on the leader and on the restarted replica alike.
    assert_eq!(on_follower, acked);
    let read = client.read(partition, 0, 0, 10_000).await?;
    assert_eq!(read.end_offset, end);
    Ok(())
}
