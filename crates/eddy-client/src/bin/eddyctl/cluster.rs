//! Cluster commands: status, nodes, partitions, wait.

use std::time::Duration;

use eddy_client::ClusterClient;
use eddy_client::view::{NodeView, PartitionView, StatusView};
use serde::Serialize;

/// What still keeps the cluster from being healthy, or `None` when it is.
/// A draining node counts as done once it holds no replica: draining it
/// is what was asked, and it is finished.
pub fn unhealthy(status: &StatusView, up: usize) -> Option<String> {
    let replicas_on = |id: u64| status.partitions.iter().filter(|p| p.replicas.contains(&id)).count();
    let nodes_up = status.nodes.iter().filter(|n| n.state == "up").count();
    let drained = status.nodes.iter().filter(|n| n.state == "draining" && replicas_on(n.id) == 0).count();
    let draining: Vec<String> = status
        .nodes
        .iter()
        .filter(|n| n.state == "draining" && replicas_on(n.id) > 0)
        .map(|n| format!("node {} draining: {} replicas left", n.id, replicas_on(n.id)))
        .collect();
    let live = status.nodes.iter().filter(|n| n.state != "removed").count();
    let done = nodes_up + drained;
    let led = status.partitions.iter().filter(|p| p.leader.is_some()).count();
    let healthy = status.cluster_id.is_some()
        && status.confirmed_leader
        && done >= up
        && done == live
        && status.settings.is_some()
        && led == status.partitions.len()
        && status.broken_replicas.is_empty();
    let leader = match status.leader {
        Some(l) if status.confirmed_leader => l.to_string(),
        Some(l) => format!("{l} (not confirmed yet)"),
        None => "none".to_owned(),
    };
    (!healthy).then(|| {
        let mut state = format!(
            "leader {leader}, {done}/{} nodes up{}, {led}/{} partitions led",
            live.max(up),
            if drained > 0 { format!(" ({drained} drained)") } else { String::new() },
            status.partitions.len()
        );
        for line in &draining {
            state.push_str(", ");
            state.push_str(line);
        }
        if !status.broken_replicas.is_empty() {
            state.push_str(&format!(", {} replicas being rebuilt", status.broken_replicas.len()));
        }
        state
    })
}

pub async fn wait_healthy(client: &ClusterClient, up: usize, timeout: Duration) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut shown = String::new();
    loop {
        let state = match client.leader_status().await {
            Ok(status) => match unhealthy(&status, up) {
                None => {
                    println!("healthy: leader {}, {} nodes up", status.leader.unwrap_or(0), status.nodes.len());
                    return Ok(());
                }
                Some(state) => state,
            },
            Err(err) => format!("no answer: {err}"),
        };
        if state != shown {
            eprintln!("waiting: {state}");
            shown = state;
        }
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!("the cluster did not become healthy within {timeout:?}; last seen: {shown}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

pub fn join(ids: &[u64]) -> String {
    ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
}

pub fn print_status(status: &StatusView) -> anyhow::Result<()> {
    let leader = match (status.leader, &status.leader_addr) {
        (Some(id), Some(addr)) => format!("{id} ({addr})"),
        (Some(id), None) => id.to_string(),
        _ => "none".to_owned(),
    };
    println!("cluster     {}", status.cluster_id.as_deref().unwrap_or("(not bootstrapped)"));
    println!("leader      {leader}   term {}   voters {}", status.term, join(&status.voters));
    let count = |state: &str| status.nodes.iter().filter(|n| n.state == state).count();
    println!(
        "nodes       {} up, {} suspect, {} down, {} draining",
        count("up"),
        count("suspect"),
        count("down"),
        count("draining")
    );
    let led = status.partitions.iter().filter(|p| p.leader.is_some()).count();
    match status.settings {
        Some(s) => println!(
            "partitions  {} (replication factor {}), {led} with a leader, epoch {}",
            s.partition_count, s.replication_factor, status.epoch
        ),
        None => println!("partitions  none yet"),
    }
    println!("served by   node {}", status.served_by);
    for broken in &status.broken_replicas {
        println!(
            "broken      partition {} on node {}: {} (the controller rebuilds it from the other replicas)",
            broken.partition, broken.node, broken.reason
        );
    }
    for panic in &status.processor_panics {
        println!("panicked    node {} at {} ms: {}", panic.node, panic.at_ms, panic.description);
    }
    if status.map_may_be_stale {
        let ask = status.leader_addr.as_deref().map_or_else(String::new, |a| format!("; ask the leader at {a}"));
        println!(
            "note        node {} is not the confirmed controller leader: its map (epoch {}) may be stale{ask}",
            status.served_by, status.epoch
        );
    }
    Ok(())
}

pub fn print_nodes(nodes: &[NodeView]) -> anyhow::Result<()> {
    println!("{:>4}  {:<22} {:<10} {:<9} {:>6} {:>8}  ROLES", "ID", "ADDRESS", "ZONE", "STATE", "CORES", "PRICE/H");
    for n in nodes {
        println!(
            "{:>4}  {:<22} {:<10} {:<9} {:>6.1} {:>8.3}  {}",
            n.id,
            n.addr,
            n.zone,
            n.state,
            n.capacity_cores,
            n.price_per_hour,
            n.roles.join(",")
        );
    }
    Ok(())
}

pub fn print_partitions(partitions: &[PartitionView]) -> anyhow::Result<()> {
    println!("{:>5}  {:>6}  {:>6}  REPLICAS", "ID", "LEADER", "EPOCH");
    for p in partitions {
        let leader = p.leader.map_or_else(|| "-".to_owned(), |l| l.to_string());
        println!("{:>5}  {:>6}  {:>6}  {}", p.id, leader, p.epoch, join(&p.replicas));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use eddy_client::view::{BrokenReplicaView, SettingsView};

    use super::*;

    fn node(id: u64, state: &str) -> NodeView {
        NodeView {
            id,
            addr: format!("127.0.0.1:{id}"),
            zone: "z".into(),
            state: state.into(),
            capacity_cores: 1.0,
            price_per_hour: 1.0,
            roles: vec!["worker".into()],
            state_since_ms: 0,
            metrics_url: String::new(),
        }
    }

    fn status(states: &[&str], replicas: &[&[u64]]) -> StatusView {
        StatusView {
            cluster_id: Some("c".into()),
            leader: Some(1),
            leader_addr: None,
            term: 2,
            voters: vec![1, 2, 3],
            served_by: 1,
            confirmed_leader: true,
            map_may_be_stale: false,
            broken_replicas: Vec::new(),
            processor_panics: Vec::new(),
            epoch: 5,
            nodes_version: 3,
            settings: Some(SettingsView { partition_count: replicas.len() as u32, replication_factor: 2 }),
            nodes: states.iter().enumerate().map(|(i, s)| node(i as u64 + 1, s)).collect(),
            partitions: replicas
                .iter()
                .enumerate()
                .map(|(id, r)| PartitionView { id: id as u32, leader: Some(r[0]), replicas: r.to_vec(), epoch: 1 })
                .collect(),
            controller_log: None,
        }
    }

    #[test]
    fn a_drained_node_counts_as_done_and_a_draining_one_is_waited_for() {
        let draining = status(&["up", "up", "draining"], &[&[1, 3], &[2, 1]]);
        let why = unhealthy(&draining, 3).expect("node 3 still holds a replica");
        assert!(why.contains("node 3 draining: 1 replicas left"), "{why}");
        let drained = status(&["up", "up", "draining"], &[&[1, 2], &[2, 1]]);
        assert_eq!(unhealthy(&drained, 3), None);
        assert_eq!(unhealthy(&drained, 4).map(|w| w.contains("3/4 nodes up (1 drained)")), Some(true));
    }

    #[test]
    fn a_broken_replica_or_a_stale_answer_is_not_healthy() {
        let mut broken = status(&["up", "up"], &[&[1, 2]]);
        broken.broken_replicas.push(BrokenReplicaView { node: 2, partition: 0, reason: "bad".into() });
        assert!(unhealthy(&broken, 2).is_some_and(|w| w.contains("1 replicas being rebuilt")));
        let mut stale = status(&["up", "up"], &[&[1, 2]]);
        stale.confirmed_leader = false;
        stale.map_may_be_stale = true;
        assert!(unhealthy(&stale, 2).is_some_and(|w| w.contains("not confirmed")));
    }
}
