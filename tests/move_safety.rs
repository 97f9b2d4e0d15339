//! Replica moves under faults. A move's target paused right after the move
//! starts holds the membership back until it has the data, and then holds
//! every acknowledged event on its own; the move is listed in `eddyctl
//! ops` with the operator's reason. A node that was down while its replica
//! moved away deletes the replica's data when it comes back.
//!
//! A replica its node cannot open is reported and rebuilt: tests/broken_replica.rs.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bytes::Bytes;
use eddy_client::events::{EventClient, RetryPolicy};
use eddy_proto::v1::{self, SubmitRequest};
use eddy_testkit::{ClusterSpec, Signal, TestCluster, bins, healthy};

const SETTLE: Duration = Duration::from_secs(90);

/// Submits events `range` to `partition` one batch of 10 at a time;
/// answers the payload acknowledged at each offset.
async fn submit(
    client: &EventClient,
    partition: u32,
    range: std::ops::Range<u32>,
) -> anyhow::Result<BTreeMap<u64, Vec<u8>>> {
    let key = (0..).map(|i| format!("k-{i}")).find(|k| client.partition_for_key(k.as_bytes()) == partition);
    let key = Bytes::from(key.unwrap_or_default());
    let mut acked = BTreeMap::new();
    let numbers: Vec<u32> = range.collect();
    for batch in numbers.chunks(10) {
        let payloads: Vec<Vec<u8>> = batch.iter().map(|n| format!("{{\"value\": {n}}}").into_bytes()).collect();
        let events = payloads
            .iter()
            .map(|p| v1::Event {
                key: key.clone(),
                r#type: "t".into(),
                payload: Bytes::from(p.clone()),
                attributes: Default::default(),
            })
            .collect();
        let ack = client.submit(SubmitRequest { partition: Some(partition), events, ..Default::default() }).await?;
        for (i, payload) in payloads.into_iter().enumerate() {
            acked.insert(ack.first_offset + i as u64, payload);
        }
    }
    Ok(acked)
}

/// The group's voters as its leader on `leader` knows them.
async fn voters(cluster: &TestCluster, leader: u64, partition: u32) -> anyhow::Result<BTreeSet<u64>> {
    let reply = cluster.client_of(leader)?.members(&cluster.endpoint(leader)?, partition).await?;
    anyhow::ensure!(reply.leader, "node {leader} does not lead partition {partition}");
    Ok(reply.voters.into_iter().collect())
}

/// The partition's replicas and leader in the controller leader's table.
async fn placed(cluster: &TestCluster, partition: u32) -> anyhow::Result<(BTreeSet<u64>, u64)> {
    let status = eddy_client::ClusterClient::new(&cluster.endpoints(), Duration::from_secs(3))?.leader_status().await?;
    let p = &status.partitions[partition as usize];
    Ok((p.replicas.iter().copied().collect(), p.leader.ok_or_else(|| anyhow::anyhow!("no leader"))?))
}

async fn within<T>(what: &str, cluster: &TestCluster, mut check: impl AsyncFnMut() -> Option<T>) -> anyhow::Result<T> {
    let deadline = tokio::time::Instant::now() + SETTLE;
    loop {
        if let Some(found) = check().await {
            return Ok(found);
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}\n{}",
            cluster.log_tails()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Moves the partition's replica on `from` to `to`, as an operator does.
fn move_replica(cluster: &TestCluster, partition: u32, from: u64, to: u64) -> anyhow::Result<std::process::Output> {
    let args = ["move-replica", &partition.to_string(), "--from", &from.to_string(), "--to", &to.to_string()];
    cluster.eddyctl_within(&args, Duration::from_secs(30))
}

/// Waits until the table and the group's voters are `wanted`.
async fn settled(cluster: &TestCluster, partition: u32, wanted: &BTreeSet<u64>) -> anyhow::Result<()> {
    within("the group's voters to follow the table", cluster, async || {
        let (table, leader) = placed(cluster, partition).await.ok()?;
        (table == *wanted && voters(cluster, leader, partition).await.ok()? == *wanted).then_some(())
    })
    .await
}

/// Three nodes and a worker that joined later (it holds nothing), the
/// table of one partition, and a client.
async fn four_nodes() -> anyhow::Result<(TestCluster, EventClient)> {
    let spec = ClusterSpec { partitions: 4, ..ClusterSpec::default() };
    let mut cluster = TestCluster::start(bins!(), spec)?;
    cluster.wait_until(1, "a healthy cluster", SETTLE, |s| healthy(s, 3)).await?;
    cluster.add_worker(4, "zone-4", 0.2)?;
    cluster.wait_until(1, "four nodes up", SETTLE, |s| healthy(s, 4)).await?;
    let retry = RetryPolicy { deadline: Duration::from_secs(60), ..RetryPolicy::default() };
    let client = EventClient::connect(&cluster.endpoints(), Duration::from_secs(5), retry).await?;
    Ok((cluster, client))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_target_holds_the_membership_back_and_then_holds_everything() -> anyhow::Result<()> {
    let (mut cluster, client) = four_nodes().await?;
    let partition = 2;
    let (replicas, leader) = placed(&cluster, partition).await?;
    let from = *replicas.iter().find(|r| **r != leader).ok_or_else(|| anyhow::anyhow!("no follower"))?;
    let mut acked = submit(&client, partition, 0..300).await?;

    // Paused as the move starts: the controller still counts it up, and
    // it can take nothing in.
    cluster.signal(4, Signal::SIGSTOP)?;
    let moved = move_replica(&cluster, partition, from, 4)?;
    anyhow::ensure!(moved.status.success(), "move: {}", String::from_utf8_lossy(&moved.stderr));
    // The old replicas keep taking events; the membership stays as it was.
    acked.extend(submit(&client, partition, 300..400).await?);
    let paused_until = tokio::time::Instant::now() + Duration::from_secs(8);
    while tokio::time::Instant::now() < paused_until {
        let now = voters(&cluster, leader, partition).await?;
        assert_eq!(now, replicas, "the membership changed while the new replica could not have the data");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let old = cluster.data_dir(from).join("partitions").join(partition.to_string());
    assert!(old.exists(), "the old replica went before the new one had the data");

    cluster.signal(4, Signal::SIGCONT)?;
    let mut wanted = replicas.clone();
    wanted.remove(&from);
    wanted.insert(4);
    settled(&cluster, partition, &wanted).await?;

    // The operator's move is listed, with its reason, until it is done.
    within("eddyctl ops to list the move as done", &cluster, async || {
        let ops = cluster.eddyctl_within(&["ops", "--json"], Duration::from_secs(30)).ok()?;
        let rows: serde_json::Value = serde_json::from_slice(&ops.stdout).ok()?;
        rows.as_array()?
            .iter()
            .any(|op| {
                op["kind"] == "move_replica"
                    && op["partition"] == partition
                    && op["from"] == from
                    && op["to"] == 4
                    && op["reason"] == "moved by the operator"
                    && op["outcome"] == "done"
            })
            .then_some(())
    })
    .await?;

    // The new replica holds every acknowledged event, on its own: the old
    // replicas' nodes die and it is read alone.
    within("node 4 to hold every acknowledged event", &cluster, async || {
        (cluster.replica_payloads(4, partition).await.ok()? == acked).then_some(())
    })
    .await?;
    for node in wanted.iter().filter(|n| **n != 4) {
        cluster.kill(*node)?;
    }
    assert_eq!(cluster.replica_payloads(4, partition).await?, acked, "what node 4 holds alone");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_back_after_its_replica_moved_away_deletes_the_data() -> anyhow::Result<()> {
    let (mut cluster, client) = four_nodes().await?;
    let partition = 1;
    let (replicas, leader) = placed(&cluster, partition).await?;
    let from = *replicas.iter().find(|r| **r != leader).ok_or_else(|| anyhow::anyhow!("no follower"))?;
    submit(&client, partition, 0..100).await?;
    // First to node 4, which follows the controllers' map from outside:
    // when it comes back, it knows the current table before it opens
    // anything, so the replica that left meanwhile is a stray directory.
    let mut on_four = replicas.clone();
    on_four.remove(&from);
    on_four.insert(4);
    let moved = move_replica(&cluster, partition, from, 4)?;
    anyhow::ensure!(moved.status.success(), "move: {}", String::from_utf8_lossy(&moved.stderr));
    settled(&cluster, partition, &on_four).await?;
    let stray = cluster.data_dir(4).join("partitions").join(partition.to_string());
    assert!(stray.exists());

    cluster.stop(4)?;
    let moved = move_replica(&cluster, partition, 4, from)?;
    anyhow::ensure!(moved.status.success(), "move back: {}", String::from_utf8_lossy(&moved.stderr));
    settled(&cluster, partition, &replicas).await?;
    cluster.start_node(4)?;
    within("node 4 to delete the moved replica's data", &cluster, async || {
        let said = cluster.log(4).ok()?.contains("deleted the data of a partition this node no longer holds");
        (said && !stray.exists()).then_some(())
    })
    .await?;
    Ok(())
}
