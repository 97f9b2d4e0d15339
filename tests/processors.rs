//! Processors run on each partition's leader, checkpoint through Raft, and
//! after leader changes and restarts reach exactly the state a replay of
//! the partition's log from offset 0 gives.

use std::time::Duration;

use bytes::Bytes;
use eddy_client::events::{EventClient, RetryPolicy};
use eddy_core::{Event, EventUid, Hlc, StoredEvent};
use eddy_proto::v1;
use eddy_testkit::checker::read_all;
use eddy_testkit::workload::Workload;
use eddy_testkit::{ClusterSpec, TestCluster, bins, healthy};
use eddy_worker::processors::{ProcessorsConfig, digest, processors};

const SETTLE: Duration = Duration::from_secs(60);

fn to_core(event: &v1::StoredEvent) -> StoredEvent {
    let body = event.event.clone().unwrap_or_default();
    let uid = u128::from_be_bytes(event.uid.as_slice().try_into().unwrap_or([0; 16]));
    StoredEvent {
        partition: event.partition,
        offset: event.offset,
        uid: EventUid(uid),
        hlc: Hlc(event.hlc),
        event: Event {
            key: Bytes::from(body.key.to_vec()),
            event_type: body.r#type,
            payload: body.payload,
            attributes: body.attributes,
        },
    }
}

async fn load(workload: &Workload, more: usize) {
    let target = workload.acked() + more;
    while workload.acked() < target {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processor_state_after_failover_and_restart_equals_a_replay_from_zero() -> anyhow::Result<()> {
    let spec = ClusterSpec {
        extra_manifest: "[processors]\ncheckpoint_every_events = 100\ncheckpoint_every_ms = 500\n".into(),
        ..ClusterSpec::default()
    };
    let mut cluster = TestCluster::start(bins!(), spec)?;
    cluster.wait_until(1, "a healthy cluster", SETTLE, |s| healthy(s, 3)).await?;
    let workload = Workload::start(&cluster.endpoints(), 24, Duration::from_millis(5)).await?;
    load(&workload, 600).await;
    // A leader change: the new leaders restore the latest checkpoint.
    let status = cluster.client_of(1)?.leader_status().await?;
    let victim = status.partitions.iter().filter_map(|p| p.leader).max().unwrap_or(1);
    cluster.kill(victim)?;
    load(&workload, 600).await;
    cluster.start_node(victim)?;
    cluster.wait_until(victim, "the node back", SETTLE, |s| healthy(s, 3)).await?;
    load(&workload, 300).await;
    workload.stop().await;
    // A full restart: every replica restores from what it stored.
    for id in cluster.ids() {
        cluster.stop(id)?;
    }
    for id in cluster.ids() {
        cluster.start_node(id)?;
    }
    cluster.wait_until(1, "the restarted cluster healthy", SETTLE, |s| healthy(s, 3)).await?;

    let client = EventClient::connect(&cluster.endpoints(), Duration::from_secs(5), RetryPolicy::default()).await?;
    let stored = read_all(&client).await?;
    let mut checked = 0;
    let mut restored = 0;
    for (partition, events) in &stored {
        let end = events.last().map_or(0, |e| e.offset + 1);
        let deadline = tokio::time::Instant::now() + SETTLE;
        let live = loop {
            let live = client.processor_digest(*partition).await?;
            if live.offset >= end || tokio::time::Instant::now() > deadline {
                break live;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(live.offset, end, "partition {partition}: processors did not catch up");
        if live.restored_from > 0 {
            restored += 1;
        }
        let mut replayed = processors(*partition, &ProcessorsConfig::default(), &[]);
        for event in events {
            let event = to_core(event);
            for p in replayed.iter_mut() {
                p.apply(&event);
            }
        }
        assert_eq!(live.digest, digest(&replayed), "partition {partition}: live state differs from a replay from 0");
        checked += events.len();
    }
    assert!(checked >= 1500, "{checked} events checked");
    assert!(restored > 0, "after the restart, leaders restore checkpoints instead of replaying from 0");
    Ok(())
}
