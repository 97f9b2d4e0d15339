//! `eddyctl`: the operator's command-line client.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use eddy_client::view::MapView;
use eddy_client::{ClusterClient, DEFAULT_ENDPOINT, parse_endpoints};

mod bench;
mod cluster;
mod events;
mod explain;
mod models;
mod plan;
mod query;

use cluster::{join, print_json, print_nodes, print_partitions, print_status, wait_healthy};

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
    /// Move a partition's replica to another node; the new replica catches
    /// up before the old one leaves.
    MoveReplica {
        partition: u32,
        #[arg(long)]
        from: u64,
        #[arg(long)]
        to: u64,
    },
    /// Mark a worker draining: it takes no new replicas, and in mode auto
    /// the planner moves its replicas and leaderships away.
    Drain {
        node: u64,
        /// Make a draining node up again.
        #[arg(long)]
        undo: bool,
    },
    /// Hand a partition's leadership to another of its replicas.
    TransferLeader {
        partition: u32,
        #[arg(long)]
        to: u64,
    },
    /// Create the cluster from the first endpoint's initial members (for
    /// clusters started with controller.auto_bootstrap = false).
    Bootstrap,
    /// Submit events: one with --payload, else one per line of standard input.
    Submit(events::SubmitArgs),
    /// Print events of every partition (or of --partition ones).
    Tail(events::TailArgs),
    /// Load the cluster and measure it: throughput, submit latency, fsyncs.
    Bench(bench::BenchArgs),
    /// Ask the processors, or read a key's events.
    #[command(subcommand)]
    Query(query::QueryCommand),
    /// The controller leader's models: load forecasts per partition,
    /// latency curve per node, costs, and how far each can be trusted.
    Models {
        #[arg(long)]
        json: bool,
    },
    /// Live load per node and per partition, from the workers' telemetry.
    Top {
        /// Print one frame and exit.
        #[arg(long)]
        once: bool,
        #[arg(long, default_value_t = 1000)]
        interval_ms: u64,
        /// Partitions shown, busiest first.
        #[arg(long, default_value_t = 20)]
        rows: usize,
    },
    /// The recorded load history.
    #[command(subcommand)]
    Trace(models::TraceCommand),
    /// What the planner would do now with the live models (a dry run):
    /// operations with reasons, predicted metrics before and after, advice.
    Plan(plan::PlanArgs),
    /// Capacity advice from the planner: nodes to add or drain, and what
    /// cannot be met.
    Advise {
        #[arg(long)]
        json: bool,
    },
    /// Why a partition is where it is: its load, its nodes, and what the
    /// planner would do with it.
    Explain { partition: u32 },
    /// Every move of a partition, newest first, whoever started it (the
    /// planner, an operator, a repair, a drain), with its reason and outcome
    /// (done, in progress, superseded, timed out).
    Ops {
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// The placement mode (auto, advise, off) and policy.
    #[command(subcommand)]
    Policy(plan::PolicyCommand),
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
        Command::Submit(args) => {
            let timeout = Duration::from_millis(cli.timeout_ms);
            events::submit(events::connect(client.endpoints(), timeout).await?, args).await
        }
        Command::Tail(args) => {
            let timeout = Duration::from_millis(cli.timeout_ms);
            events::tail(events::connect(client.endpoints(), timeout).await?, args).await
        }
        Command::Bench(args) => {
            let timeout = Duration::from_millis(cli.timeout_ms);
            bench::run(events::connect(client.endpoints(), timeout).await?, args).await
        }
        Command::Query(command) => {
            let timeout = Duration::from_millis(cli.timeout_ms);
            query::run(events::connect(client.endpoints(), timeout).await?, command).await
        }
        Command::Models { json } => models::models(&client, json).await,
        Command::Trace(command) => models::trace(&client, command).await,
        Command::Plan(args) => plan::plan(&client, args).await,
        Command::Policy(command) => plan::policy(&client, command).await,
        Command::Advise { json } => explain::advise(&client, json).await,
        Command::Ops { limit, json } => explain::ops(&client, limit, json).await,
        Command::Explain { partition } => explain::explain(&client, partition).await,
        Command::Top { once, interval_ms, rows } => {
            models::top(&client, once, Duration::from_millis(interval_ms.max(100)), rows).await
        }
        Command::Wait { up, timeout_secs } => wait_healthy(&client, up, Duration::from_secs(timeout_secs)).await,
        Command::MoveReplica { partition, from, to } => {
            let moved = client.move_replica(partition, from, to).await.context("move refused")?;
            println!(
                "partition {partition}: replica moving from node {from} to node {to} (table epoch {})",
                moved.epoch
            );
            Ok(())
        }
        Command::Drain { node, undo } => {
            let state = client.drain(node, undo).await.context("drain refused")?;
            println!("node {node} is {state}");
            if state == "draining" {
                println!("in mode auto the planner moves its replicas away; `eddyctl partitions` shows progress");
            }
            Ok(())
        }
        Command::TransferLeader { partition, to } => {
            let done = client.transfer_leader(partition, to).await.context("transfer refused")?;
            println!("partition {partition}: leadership moving to node {to} (table epoch {})", done.epoch);
            Ok(())
        }
        Command::Bootstrap => {
            let done = client.bootstrap().await.context("bootstrap refused")?;
            println!("bootstrapped the controller with voters {}", join(&done.voters));
            Ok(())
        }
    }
}
