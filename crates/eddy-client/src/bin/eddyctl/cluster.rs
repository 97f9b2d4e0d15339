//! Cluster commands: status, nodes, partitions, wait.

use std::time::Duration;

use eddy_client::ClusterClient;
use eddy_client::view::{NodeView, PartitionView, StatusView};
use serde::Serialize;

/// What still keeps the cluster from being healthy, or `None` when it is.
pub fn unhealthy(status: &StatusView, up: usize) -> Option<String> {
    let nodes_up = status.nodes.iter().filter(|n| n.state == "up").count();
    let live = status.nodes.iter().filter(|n| n.state != "removed" && n.state != "draining").count();
    let led = status.partitions.iter().filter(|p| p.leader.is_some()).count();
    let healthy = status.cluster_id.is_some()
        && status.confirmed_leader
        && nodes_up >= up
        && nodes_up == live
        && status.settings.is_some()
        && led == status.partitions.len();
    let leader = match status.leader {
        Some(l) if status.confirmed_leader => l.to_string(),
        Some(l) => format!("{l} (not confirmed yet)"),
        None => "none".to_owned(),
    };
    (!healthy).then(|| {
        format!(
            "leader {leader}, {nodes_up}/{} nodes up, {led}/{} partitions led",
            live.max(up),
            status.partitions.len()
        )
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
