//! `eddyctl`: the operator's command-line client.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use eddy_client::view::{MapView, NodeView, PartitionView, StatusView};
use eddy_client::{ClusterClient, DEFAULT_ENDPOINT, parse_endpoints};
use serde::Serialize;

#[derive(Debug, Parser)]
#[command(name = "eddyctl", version, about = "Inspect and operate an Eddy cluster")]
struct Cli {
    /// Comma-separated node addresses (host:port); any node of the cluster will do.
    #[arg(long, global = true, env = "EDDY_ENDPOINTS", default_value = DEFAULT_ENDPOINT)]
    endpoints: String,
    /// Give up on a call after this many milliseconds.
    #[arg(long, global = true, default_value_t = 5000)]
    timeout_ms: u64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Controller leader, term, nodes and partitions.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// The node registry.
    Nodes {
        #[arg(long)]
        json: bool,
    },
    /// The partition table: replicas and leader of every partition.
    Partitions {
        #[arg(long)]
        json: bool,
    },
    /// Create the cluster from the first endpoint's initial members (for
    /// clusters started with controller.auto_bootstrap = false).
    Bootstrap,
    /// Wait until the cluster is healthy: a controller leader, every
    /// registered node up (at least --up of them), every partition led.
    Wait {
        /// Least number of nodes that must be up.
        #[arg(long, default_value_t = 1)]
        up: usize,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 60)]
        timeout_secs: u64,
    },
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let endpoints = parse_endpoints(&cli.endpoints)?;
    let client = ClusterClient::new(&endpoints, Duration::from_millis(cli.timeout_ms))?;
    match cli.command {
        Command::Status { json } => {
            let status = client.status().await?;
            if json { print_json(&status) } else { print_status(&status) }
        }
        Command::Nodes { json } => {
            let map = MapView::from_wire(client.partition_map().await?).map_err(anyhow::Error::msg)?;
            if json { print_json(&map.nodes) } else { print_nodes(&map.nodes) }
        }
        Command::Partitions { json } => {
            let map = MapView::from_wire(client.partition_map().await?).map_err(anyhow::Error::msg)?;
            if json { print_json(&map.partitions) } else { print_partitions(&map.partitions) }
        }
        Command::Wait { up, timeout_secs } => wait_healthy(&client, up, Duration::from_secs(timeout_secs)).await,
        Command::Bootstrap => {
            let done = client.bootstrap().await.context("bootstrap refused")?;
            println!("bootstrapped the controller with voters {}", join(&done.voters));
            Ok(())
        }
    }
}

/// What still keeps the cluster from being healthy, or `None` when it is.
fn unhealthy(status: &StatusView, up: usize) -> Option<String> {
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

async fn wait_healthy(client: &ClusterClient, up: usize, timeout: Duration) -> anyhow::Result<()> {
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

fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn join(ids: &[u64]) -> String {
    ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
}

fn print_status(status: &StatusView) -> anyhow::Result<()> {
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

fn print_nodes(nodes: &[NodeView]) -> anyhow::Result<()> {
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

fn print_partitions(partitions: &[PartitionView]) -> anyhow::Result<()> {
    println!("{:>5}  {:>6}  {:>6}  REPLICAS", "ID", "LEADER", "EPOCH");
    for p in partitions {
        let leader = p.leader.map_or_else(|| "-".to_owned(), |l| l.to_string());
        println!("{:>5}  {:>6}  {:>6}  {}", p.id, leader, p.epoch, join(&p.replicas));
    }
    Ok(())
}
