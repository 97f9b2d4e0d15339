//! A replica its node cannot open is not silently absent: the node reports
//! it, the controller takes it off the node, the node deletes the damaged
//! data once the group no longer counts it, and a fresh replica is placed
//! there again and catches up from the others.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use eddy_client::events::{EventClient, RetryPolicy};
use eddy_proto::v1::{self, SubmitRequest};
use eddy_testkit::{ClusterSpec, TestCluster, bins, healthy};

const SETTLE: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_cannot_be_opened_is_reported_and_rebuilt() -> anyhow::Result<()> {
    let spec = ClusterSpec { partitions: 4, ..ClusterSpec::default() };
    let mut cluster = TestCluster::start(bins!(), spec)?;
    cluster.wait_until(1, "a healthy cluster", SETTLE, |s| healthy(s, 3)).await?;
    let client = EventClient::connect(&cluster.endpoints(), Duration::from_secs(5), RetryPolicy::default()).await?;
    let partition = 3;
    let key = (0..).map(|i| format!("k-{i}")).find(|k| client.partition_for_key(k.as_bytes()) == partition);
    let key = Bytes::from(key.unwrap_or_default());
    let mut acked = BTreeMap::new();
    for n in 0..100u32 {
        let payload = format!("{{\"value\": {n}}}").into_bytes();
        let event = v1::Event {
            key: key.clone(),
            r#type: "t".into(),
            payload: Bytes::from(payload.clone()),
            ..Default::default()
        };
        let request = SubmitRequest { partition: Some(partition), events: vec![event], ..Default::default() };
        acked.insert(client.submit(request).await?.first_offset, payload);
    }
    let status = cluster.client_of(1)?.leader_status().await?;
    let placed = &status.partitions[partition as usize];
    let broken = *placed.replicas.iter().find(|r| Some(**r) != placed.leader).expect("a follower");

    // Damage the follower's event log while it is down: a segment that
    // does not continue the others, as a lost file leaves it.
    cluster.stop(broken)?;
    let dir = cluster.data_dir(broken).join("partitions").join(partition.to_string());
    let generation = std::fs::read_to_string(dir.join("CURRENT"))?;
    std::fs::write(dir.join(generation.trim()).join(format!("{:020}.seg", 1_000_000_000u64)), b"")?;
    cluster.start_node(broken)?;

    // Reported, taken off the node for a rebuild, with the reason listed.
    let deadline = tokio::time::Instant::now() + SETTLE;
    loop {
        let ops = cluster.eddyctl_within(&["ops", "--json"], Duration::from_secs(30))?;
        let rows: serde_json::Value = serde_json::from_slice(&ops.stdout).unwrap_or_default();
        let repaired = rows.as_array().into_iter().flatten().any(|op| {
            op["kind"] == "remove_replica"
                && op["partition"] == partition
                && op["node"] == broken
                && op["reason"].as_str().is_some_and(|r| r.contains("cannot be opened"))
        });
        if repaired {
            break;
        }
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "no repair listed\n{}", cluster.log_tails());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(cluster.log(broken)?.contains("cannot open partition replica; reported to the controller"));

    // Rebuilt: back in the table, and holding every acknowledged event.
    let deadline = tokio::time::Instant::now() + SETTLE;
    loop {
        let status = cluster.client_of(1)?.leader_status().await?;
        let back = status.partitions[partition as usize].replicas.contains(&broken);
        if back
            && status.broken_replicas.is_empty()
            && cluster.replica_payloads(broken, partition).await.ok() == Some(acked.clone())
        {
            break;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "node {broken} did not get a rebuilt replica: {:?}\n{}",
            status.broken_replicas,
            cluster.log_tails()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(cluster.log(broken)?.contains("deleted the data of a partition this node no longer holds"));
    // Only the confirmed controller leader's answer is current; the others say so.
    for id in cluster.ids() {
        let status = cluster.status_of(id).await?;
        assert_eq!(status.map_may_be_stale, !status.confirmed_leader, "node {id}");
        if !status.confirmed_leader {
            assert!(status.broken_replicas.is_empty(), "only the leader knows the broken replicas");
        }
    }
    let wait = cluster.eddyctl_within(&["wait", "--up", "3", "--timeout-secs", "60"], SETTLE)?;
    anyhow::ensure!(wait.status.success(), "wait: {}", String::from_utf8_lossy(&wait.stderr));
    Ok(())
}
