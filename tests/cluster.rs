//! A three-node cluster over real gRPC on loopback: formation, placement,
//! requests sent to followers, a joining worker, and bootstrap that happens
//! exactly once.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::Context;
use eddy_client::view::StatusView;
use eddy_proto::meta;
use eddy_proto::v1::HeartbeatRequest;
use eddy_testkit::{ClusterSpec, TestCluster, bins, controller_client, placement, re_registration};
use tonic::metadata::MetadataValue;

const SETTLE: Duration = Duration::from_secs(60);

fn healthy(status: &StatusView, nodes: usize) -> bool {
    eddy_testkit::healthy(status, nodes) && status.partitions.len() == 16
}

async fn formed() -> anyhow::Result<(TestCluster, StatusView)> {
    let cluster = TestCluster::start(bins!(), ClusterSpec::default())?;
    let status = cluster.wait_until(1, "3 nodes up, every partition led", SETTLE, |s| healthy(s, 3)).await?;
    Ok((cluster, status))
}

#[tokio::test]
async fn three_nodes_form_a_cluster_and_spread_replicas_over_zones() -> anyhow::Result<()> {
    let (cluster, status) = formed().await?;
    assert_eq!(status.voters, vec![1, 2, 3]);
    let settings = status.settings.expect("settings after bootstrap");
    assert_eq!((settings.partition_count, settings.replication_factor), (16, 3));
    for p in &status.partitions {
        let replicas: BTreeSet<u64> = p.replicas.iter().copied().collect();
        assert_eq!(replicas, BTreeSet::from([1, 2, 3]), "partition {} replicas", p.id);
        assert!(p.leader.is_some_and(|l| replicas.contains(&l)));
    }
    let mut leaders = [0usize; 3];
    for p in &status.partitions {
        leaders[(p.leader.unwrap_or(1) - 1) as usize] += 1;
    }
    assert!(leaders.iter().max().unwrap() - leaders.iter().min().unwrap() <= 1, "leaders {leaders:?}");
    // Every node serves the same view.
    for id in cluster.ids() {
        let seen = cluster
            .wait_until(id, "the same placement on every node", SETTLE, |s| placement(s) == placement(&status))
            .await?;
        assert_eq!(seen.leader, status.leader);
        assert_eq!(seen.cluster_id, status.cluster_id);
    }
    Ok(())
}

#[tokio::test]
async fn a_request_sent_to_a_follower_is_forwarded_or_answered_with_the_leader() -> anyhow::Result<()> {
    let (cluster, _) = formed().await?;
    // Leadership may move while the test runs on a busy machine; then the
    // node picked as a follower may lead, and the round is tried again.
    for _ in 0..5 {
        let status = cluster.client_of(1)?.leader_status().await?;
        if let Some(leader) = status.leader.filter(|_| status.confirmed_leader)
            && ask_a_follower(&cluster, &status, leader).await?
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    anyhow::bail!("the controller leader kept moving")
}

/// Returns false when leadership moved during the round.
async fn ask_a_follower(cluster: &TestCluster, status: &StatusView, leader: u64) -> anyhow::Result<bool> {
    let leader_addr = cluster.endpoint(leader)?;
    let follower = cluster.ids().into_iter().find(|id| *id != leader).context("no follower")?;
    // Status from a follower names the leader.
    let seen =
        cluster.wait_until(follower, "the follower knows the leader", SETTLE, |s| s.leader == Some(leader)).await?;
    assert_eq!(seen.leader_addr.as_deref(), Some(leader_addr.as_str()));
    assert_eq!(seen.served_by, follower);
    assert!(!seen.confirmed_leader);

    let mut client = controller_client(&cluster.endpoint(follower)?).await?;
    // A write sent to a follower is forwarded to the leader and answered.
    let me = status.node(follower).context("the follower is not registered")?;
    let answer = client.register_node(re_registration(me)).await?.into_inner();
    assert_eq!(Some(answer.cluster_id), status.cluster_id);
    // A call that may not be forwarded again is answered "not leader" with the leader.
    let mut request =
        tonic::Request::new(HeartbeatRequest { node_id: follower, cluster_id: String::new(), ..Default::default() });
    request.metadata_mut().insert(meta::FORWARDED, MetadataValue::from_static("1"));
    let refused = match client.heartbeat(request).await {
        Err(refused) => refused,
        Ok(_) => return Ok(false),
    };
    let named_id = refused.metadata().get(meta::LEADER_ID).and_then(|v| v.to_str().ok());
    if named_id != Some(leader.to_string().as_str()) {
        return Ok(false);
    }
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition, "{refused:?}");
    let named = refused.metadata().get(meta::LEADER_ADDR).and_then(|v| v.to_str().ok());
    assert_eq!(named, Some(leader_addr.as_str()));
    Ok(true)
}

#[tokio::test]
async fn a_joining_worker_is_registered_with_its_zone_and_price() -> anyhow::Result<()> {
    let (mut cluster, before) = formed().await?;
    let mut watch = cluster.client_of(2)?.watch_partition_map(0).await?;
    let first = watch.message().await?.expect("the stream starts with the current map");
    // Node 2 may still be applying the last registrations; it has a map.
    assert!(first.settings.is_some());
    assert!(first.nodes.iter().all(|n| n.id != 4));
    cluster.add_worker(4, "zone-d", 0.42)?;
    // The watcher hears of the new node without asking again.
    let heard = tokio::time::timeout(SETTLE, async {
        while let Some(map) = watch.message().await? {
            if map.nodes.iter().any(|n| n.id == 4) {
                return anyhow::Ok(map);
            }
        }
        anyhow::bail!("the watch stream ended")
    })
    .await??;
    assert!(heard.nodes_version > first.nodes_version);
    let joined = |s: &StatusView| {
        s.node(4).is_some_and(|n| n.state == "up" && n.zone == "zone-d" && (n.price_per_hour - 0.42).abs() < 1e-9)
    };
    cluster.wait_until(1, "node 4 registered and up", SETTLE, joined).await?;
    // Give the placer more than its settle time to react to the new worker.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let status = cluster.client_of(1)?.leader_status().await?;
    let node = status.node(4).expect("node 4");
    assert_eq!(node.roles, vec!["worker".to_owned()]);
    assert_eq!(node.addr, cluster.endpoint(4)?);
    // Fully replicated partitions stay where they are when a worker joins.
    assert_eq!(placement(&status), placement(&before));
    // The worker-only node serves the cluster API too.
    let via_worker = cluster.wait_until(4, "node 4 sees itself", SETTLE, joined).await?;
    assert_eq!(via_worker.leader, status.leader);
    let map = cluster.client_of(4)?.partition_map().await?;
    assert_eq!(map.partitions.len(), 16);
    assert!(map.nodes.iter().any(|n| n.id == 4));
    Ok(())
}

#[tokio::test]
async fn a_second_bootstrap_is_refused_and_changes_nothing() -> anyhow::Result<()> {
    let (cluster, before) = formed().await?;
    for id in cluster.ids() {
        let out = cluster.eddyctl(id, &["bootstrap"])?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "bootstrap on node {id} must fail");
        assert!(stderr.contains("already bootstrapped"), "node {id}: {stderr}");
    }
    let after = cluster.status_of(before.leader.expect("leader")).await?;
    assert_eq!(after.cluster_id, before.cluster_id);
    assert_eq!(after.voters, before.voters);
    assert_eq!(placement(&after), placement(&before));
    Ok(())
}

#[tokio::test]
async fn without_auto_bootstrap_the_operator_bootstraps_exactly_once() -> anyhow::Result<()> {
    let cluster = TestCluster::start(bins!(), ClusterSpec { auto_bootstrap: false, ..ClusterSpec::default() })?;
    // Nodes answer, but no cluster exists until someone bootstraps it, not
    // even after the lowest-id member had time to bootstrap on its own.
    for id in cluster.ids() {
        cluster.wait_until(id, "node answering", SETTLE, |_| true).await?;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let waiting = cluster.status_of(1).await?;
    assert_eq!(waiting.cluster_id, None);
    assert!(waiting.voters.is_empty());
    let out = cluster.eddyctl(2, &["bootstrap"])?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let status = cluster.wait_until(1, "3 nodes up, every partition led", SETTLE, |s| healthy(s, 3)).await?;
    let again = cluster.eddyctl(3, &["bootstrap"])?;
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already bootstrapped"));
    let after = cluster.status_of(1).await?;
    assert_eq!(after.cluster_id, status.cluster_id);
    assert_eq!(placement(&after), placement(&status));
    Ok(())
}
