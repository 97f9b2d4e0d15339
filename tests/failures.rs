//! Node failures on a three-node cluster: the controller leader killed, a
//! node paused and resumed, a voter that misses compacted log, and the
//! whole cluster stopped and started again.

use std::time::Duration;

use eddy_client::view::{ControllerLogView, NodeView, StatusView};
use eddy_testkit::{ClusterSpec, Signal, TestCluster, bins, controller_client, healthy, placement, re_registration};

const SETTLE: Duration = Duration::from_secs(60);

fn state_of(status: &StatusView, id: u64) -> &str {
    status.node(id).map_or("unregistered", |n| n.state.as_str())
}

/// What must survive failures: identity, settings, partition table, specs.
fn durable_part(status: &StatusView) -> impl PartialEq + std::fmt::Debug {
    let specs: Vec<(u64, String, String, u64, Vec<String>)> = status
        .nodes
        .iter()
        .map(|n: &NodeView| (n.id, n.addr.clone(), n.zone.clone(), (n.price_per_hour * 1000.0) as u64, n.roles.clone()))
        .collect();
    (status.cluster_id.clone(), status.settings, placement(status), specs)
}

#[tokio::test]
async fn killing_the_controller_leader_elects_another_and_keeps_the_map() -> anyhow::Result<()> {
    let mut cluster = TestCluster::start(bins!(), ClusterSpec::default())?;
    let before = cluster.wait_until(1, "a healthy cluster", SETTLE, |s| healthy(s, 3)).await?;
    let old_leader = before.leader.expect("leader");
    cluster.kill(old_leader)?;
    let witness = cluster.ids().into_iter().find(|id| *id != old_leader).expect("a survivor");
    let after = cluster
        .wait_until(witness, "a new controller leader", SETTLE, |s| {
            s.leader.is_some_and(|l| l != old_leader) && s.term > before.term
        })
        .await?;
    // Partition groups elect new leaders for what the killed node led; the
    // placement of replicas does not change.
    assert_eq!(placement(&after), placement(&before), "the placement must not change");
    assert_eq!(after.cluster_id, before.cluster_id);
    assert_eq!(after.settings, before.settings);
    // The old leader comes back as a follower with the same map.
    cluster.start_node(old_leader)?;
    // Its own vote names it leader of the old term until it hears of the new one.
    let back = cluster
        .wait_until(old_leader, "the old leader back and caught up", SETTLE, |s| healthy(s, 3) && s.term >= after.term)
        .await?;
    assert_eq!(placement(&back), placement(&before));
    Ok(())
}

#[tokio::test]
async fn a_paused_node_is_marked_down_and_up_again_when_resumed() -> anyhow::Result<()> {
    let cluster = TestCluster::start(bins!(), ClusterSpec::default())?;
    let before = cluster.wait_until(1, "a healthy cluster", SETTLE, |s| healthy(s, 3)).await?;
    let leader = before.leader.expect("leader");
    let paused = cluster.ids().into_iter().find(|id| *id != leader).expect("a follower");
    cluster.signal(paused, Signal::SIGSTOP)?;
    let suspected =
        cluster.wait_until(leader, "the paused node suspect or down", SETTLE, |s| state_of(s, paused) != "up").await;
    let down = cluster.wait_until(leader, "the paused node down", SETTLE, |s| state_of(s, paused) == "down").await;
    cluster.signal(paused, Signal::SIGCONT)?;
    suspected?;
    let down = down?;
    assert_eq!(placement(&down), placement(&before), "liveness alone does not move replicas");
    let up = cluster.wait_until(leader, "the resumed node up", SETTLE, |s| state_of(s, paused) == "up").await?;
    let record = up.node(paused).expect("registered");
    let down_since = down.node(paused).expect("registered").state_since_ms;
    assert!(record.state_since_ms >= down_since, "the up transition is committed after the down one");
    Ok(())
}

fn log_of(status: &StatusView) -> ControllerLogView {
    // Worker-only nodes report no controller log; these tests ask controllers.
    status.controller_log.unwrap_or(ControllerLogView {
        last_log_index: 0,
        last_applied_index: 0,
        snapshot_index: 0,
        purged_index: 0,
    })
}

async fn commit_entries(cluster: &TestCluster, via: u64, count: usize) -> anyhow::Result<()> {
    let status = cluster.status_of(via).await?;
    let me = status.node(via).ok_or_else(|| anyhow::anyhow!("node {via} is not registered"))?;
    let mut client = controller_client(&me.addr).await?;
    for _ in 0..count {
        // Re-registering an unchanged node still commits a log entry.
        client.register_node(re_registration(me)).await?;
    }
    Ok(())
}

#[tokio::test]
async fn a_voter_behind_compacted_log_catches_up_and_a_full_restart_recovers_everything() -> anyhow::Result<()> {
    let spec = ClusterSpec { snapshot_every_entries: 10, ..ClusterSpec::default() };
    let mut cluster = TestCluster::start(bins!(), spec)?;
    let formed = cluster.wait_until(1, "a healthy cluster", SETTLE, |s| healthy(s, 3)).await?;
    let leader = formed.leader.expect("leader");
    let behind = cluster.ids().into_iter().find(|id| *id != leader).expect("a follower");
    cluster.kill(behind)?;
    // The stopped voter holds at most what the leader had when it stopped.
    let log_when_stopped = log_of(&cluster.status_of(leader).await?).last_log_index;
    // Commit until the log the stopped voter misses is compacted away, so
    // that it must catch up by installing a snapshot. The leader purges
    // only while no replication to the stopped voter is in flight, so this
    // may take a few snapshots.
    let mut compacted = log_of(&cluster.status_of(leader).await?);
    for _ in 0..30 {
        if compacted.purged_index > log_when_stopped {
            break;
        }
        commit_entries(&cluster, leader, 20).await?;
        compacted = log_of(&cluster.status_of(leader).await?);
    }
    assert!(compacted.purged_index > log_when_stopped, "the leader compacted its log: {compacted:?}");
    cluster.start_node(behind)?;
    let caught_up = cluster
        .wait_until(behind, "the stopped voter caught up", SETTLE, |s| {
            healthy(s, 3) && log_of(s).last_applied_index >= compacted.last_log_index
        })
        .await?;
    assert!(
        cluster.log(behind)?.contains("controller snapshot installed"),
        "the voter caught up through a snapshot from the leader: {:?}",
        caught_up.controller_log
    );
    let before = cluster.wait_until(leader, "a healthy cluster", SETTLE, |s| healthy(s, 3)).await?;
    assert_eq!(placement(&caught_up), placement(&before));

    // Stop everything, gracefully and not, then start it all again.
    cluster.stop(1)?;
    cluster.kill(2)?;
    cluster.stop(3)?;
    for id in cluster.ids() {
        cluster.start_node(id)?;
    }
    for id in cluster.ids() {
        // A restarted node recalls the old leader from its vote; a new term
        // shows the cluster elected again.
        let after = cluster
            .wait_until(id, "the restarted cluster healthy", SETTLE, |s| healthy(s, 3) && s.term > before.term)
            .await?;
        assert_eq!(durable_part(&after), durable_part(&before), "node {id} after restart");
    }
    Ok(())
}
