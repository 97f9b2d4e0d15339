//! The whole cluster stops and starts again with its logs and processor
//! state; then a partition's replica moves to a node that joined later and
//! receives the partition's whole history.

use std::time::Duration;

use bytes::Bytes;
use eddy_client::events::{EventClient, RetryPolicy};
use eddy_proto::v1::event_service_client::EventServiceClient;
use eddy_proto::v1::{self, ReadRequest, SubmitRequest};
use eddy_testkit::{ClusterSpec, TestCluster, bins, healthy};

const SETTLE: Duration = Duration::from_secs(60);

async fn submit(client: &EventClient, partition: u32, range: std::ops::Range<u32>) -> anyhow::Result<()> {
    for i in range {
        let event = v1::Event {
            key: Bytes::from_static(b"move-me"),
            r#type: "t".into(),
            payload: Bytes::from(format!("{{\"value\": {i}}}")),
            attributes: Default::default(),
        };
        client
            .submit(SubmitRequest {
                partition: Some(partition),
                events: vec![event],
                producer: None,
                request_id: 0,
                ..Default::default()
            })
            .await?;
    }
    Ok(())
}

async fn everything(client: &EventClient, partition: u32) -> anyhow::Result<Vec<v1::StoredEvent>> {
    Ok(client.read(partition, 0, 0, 10_000).await?.events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_added_later_receives_the_whole_history() -> anyhow::Result<()> {
    // Frequent snapshots and a short log: the new replica cannot catch up
    // from the Raft log and must receive the event log as a snapshot.
    let spec = ClusterSpec {
        extra_manifest: "[worker]\nsnapshot_every_entries = 20\nkeep_entries_after_snapshot = 5\n".into(),
        ..ClusterSpec::default()
    };
    let mut cluster = TestCluster::start(bins!(), spec)?;
    // Node 4 joins after the partitions are placed: it holds nothing yet.
    cluster.wait_until(1, "a healthy cluster", SETTLE, |s| healthy(s, 3)).await?;
    cluster.add_worker(4, "zone-4", 0.2)?;
    cluster.wait_until(1, "four nodes up", SETTLE, |s| healthy(s, 4)).await?;
    let client = EventClient::connect(&cluster.endpoints(), Duration::from_secs(5), RetryPolicy::default()).await?;
    let partition = client.partition_for_key(b"move-me");
    submit(&client, partition, 0..200).await?;
    let before = everything(&client, partition).await?;
    assert_eq!(before.len(), 200);

    // Stop and start every node: the log comes back whole.
    for id in cluster.ids() {
        cluster.stop(id)?;
    }
    for id in cluster.ids() {
        cluster.start_node(id)?;
    }
    cluster.wait_until(1, "the restarted cluster healthy", SETTLE, |s| healthy(s, 4)).await?;
    let client = EventClient::connect(&cluster.endpoints(), Duration::from_secs(5), RetryPolicy::default()).await?;
    assert_eq!(everything(&client, partition).await?, before, "the log after a full restart");

    // Move the replica of the partition's leader to the late node.
    let status = cluster.client_of(1)?.leader_status().await?;
    let leader = status.partitions[partition as usize].leader.expect("a leader");
    let moved =
        cluster.eddyctl(1, &["move-replica", &partition.to_string(), "--from", &leader.to_string(), "--to", "4"])?;
    assert!(moved.status.success(), "{}", String::from_utf8_lossy(&moved.stderr));
    cluster
        .wait_until(1, "the table to place the partition on node 4", SETTLE, |s| {
            let p = &s.partitions[partition as usize];
            p.replicas.contains(&4) && !p.replicas.contains(&leader) && p.leader.is_some_and(|l| l != leader)
        })
        .await?;
    submit(&client, partition, 200..250).await?;
    let expected = everything(&client, partition).await?;
    assert_eq!(expected.len(), 250);

    // Node 4's own replica holds everything, history and new events alike.
    let channel =
        tonic::transport::Endpoint::from_shared(format!("http://{}", cluster.endpoint(4)?))?.connect().await?;
    let mut node4 = EventServiceClient::new(channel);
    let deadline = tokio::time::Instant::now() + SETTLE;
    loop {
        let read = node4
            .read(ReadRequest { partition, from_offset: 0, to_offset: 0, max_events: 10_000, any_replica: true })
            .await;
        if let Ok(ref read) = read
            && read.get_ref().events == expected
        {
            break;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "node 4 did not catch up: {:?}",
            read.map(|r| r.into_inner().events.len())
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(cluster.log(4)?.contains("partition snapshot installed"), "node 4 caught up through a snapshot");
    // The old replica leaves its node.
    let old = cluster.data_dir(leader).join("partitions").join(partition.to_string());
    let deadline = tokio::time::Instant::now() + SETTLE;
    while old.exists() {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "node {leader} kept the moved replica at {}\n{}",
            old.display(),
            cluster.log_tails()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}
