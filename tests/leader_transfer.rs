//! A partition's leadership moves on the controller's word: `eddyctl
//! transfer-leader` records the new leader in the table, the current
//! leader hands over, and the table then shows the new leader elected in a
//! later term. Events submitted all the while are each stored once.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use bytes::Bytes;
use eddy_client::events::{EventClient, RetryPolicy};
use eddy_proto::v1::{self, SubmitRequest};
use eddy_testkit::{ClusterSpec, TestCluster, bins, healthy};

const SETTLE: Duration = Duration::from_secs(60);

/// Submits one event at a time until `until`; answers the acknowledged payloads.
async fn submit_until(client: &EventClient, partition: u32, until: Instant) -> anyhow::Result<Vec<String>> {
    let mut acked = Vec::new();
    let mut i = 0;
    while Instant::now() < until {
        let payload = format!("{{\"value\": {i}}}");
        let event = v1::Event {
            key: Bytes::from_static(b"lead-me"),
            r#type: "t".into(),
            payload: Bytes::from(payload.clone()),
            attributes: Default::default(),
        };
        client
            // An idempotent producer: a retry after a lost answer is stored once.
            .submit(SubmitRequest {
                partition: Some(partition),
                events: vec![event],
                producer: Some(v1::Producer { id: 7, sequence: i }),
                request_id: 0,
                ..Default::default()
            })
            .await?;
        acked.push(payload);
        i += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(acked)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leadership_moves_where_the_table_says_and_no_event_is_lost() -> anyhow::Result<()> {
    let cluster = TestCluster::start(bins!(), ClusterSpec::default())?;
    cluster.wait_until(1, "a healthy cluster", SETTLE, |s| healthy(s, 3)).await?;
    let client = EventClient::connect(&cluster.endpoints(), Duration::from_secs(5), RetryPolicy::default()).await?;
    let partition = client.partition_for_key(b"lead-me");
    // The placer names leaders before the groups elect theirs; heartbeats
    // bring the elected ones into the table within a second or two.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let status = cluster.client_of(1)?.leader_status().await?;
    let before = &status.partitions[partition as usize];
    let leader = before.leader.ok_or_else(|| anyhow::anyhow!("partition {partition} has no leader"))?;
    let to = *before.replicas.iter().find(|r| **r != leader).ok_or_else(|| anyhow::anyhow!("one replica"))?;

    let until = Instant::now() + Duration::from_secs(6);
    let load = submit_until(&client, partition, until);
    let transfer = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let out = cluster.eddyctl(1, &["transfer-leader", &partition.to_string(), "--to", &to.to_string()])?;
        anyhow::ensure!(out.status.success(), "transfer-leader: {}", String::from_utf8_lossy(&out.stderr));
        Ok(())
    };
    let (acked, transferred) = tokio::join!(load, transfer);
    transferred?;
    let acked = acked?;

    cluster
        .wait_until(1, "the new leader elected and recorded", SETTLE, |s| {
            s.partitions[partition as usize].leader == Some(to)
        })
        .await?;
    let old_log = cluster.log(leader)?;
    assert!(
        old_log.contains("transferring partition leadership"),
        "the old leader handed over: {}",
        old_log.lines().filter(|l| l.contains("transfer") || l.contains("leadership")).collect::<Vec<_>>().join("\n")
    );

    // The old leader checkpointed its processors before handing over, so
    // the new leader's processors started from that state: within this
    // test's seconds no periodic checkpoint (every 30 s) is due.
    assert!(old_log.contains("processor checkpoint committed before hand-over"), "no hand-over checkpoint");
    let deadline = Instant::now() + Duration::from_secs(20);
    let digest = loop {
        match client.processor_digest(partition).await {
            Ok(digest) if digest.offset > 0 => break digest,
            other => anyhow::ensure!(Instant::now() < deadline, "no processors on the new leader: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(digest.restored_from > 0, "the new leader replayed from offset 0: {digest:?}");

    let stored = client.read(partition, 0, 0, 100_000).await?.events;
    let payloads: Vec<String> = stored
        .iter()
        .map(|e| e.event.as_ref().map_or_else(String::new, |e| String::from_utf8_lossy(&e.payload).into_owned()))
        .collect();
    let unique: BTreeSet<&String> = payloads.iter().collect();
    assert_eq!(unique.len(), payloads.len(), "an event was stored twice");
    for payload in &acked {
        assert!(unique.contains(payload), "acknowledged event {payload} is missing");
    }
    let offsets: Vec<u64> = stored.iter().map(|e| e.offset).collect();
    assert_eq!(offsets, (0..stored.len() as u64).collect::<Vec<_>>(), "offsets are dense");
    Ok(())
}
