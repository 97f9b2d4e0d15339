//! `eddyctl advise` and `eddyctl explain`: the planner's view put in words,
//! from a dry run under the cluster's policy, the status and the models.

use anyhow::Context;
use eddy_client::ClusterClient;
use serde_json::Value;

use crate::plan::{describe, metrics, num, print_advice};

/// Capacity advice: nodes to add or drain, and what cannot be met.
pub async fn advise(client: &ClusterClient, json: bool) -> anyhow::Result<()> {
    let plan = client.plan("").await.context("cannot plan")?;
    if json {
        let advice = serde_json::json!({ "advice": plan["advice"], "unmet": plan["unmet"], "after": plan["after"] });
        println!("{}", serde_json::to_string_pretty(&advice)?);
        return Ok(());
    }
    if !print_advice(&plan) {
        println!("no advice: the cluster meets the policy's targets with the nodes it uses");
    }
    println!("predicted after the planner's next moves: {}", metrics(&plan["after"]));
    Ok(())
}

/// Why a partition is where it is, and what the planner would do with it.
pub async fn explain(client: &ClusterClient, partition: u32) -> anyhow::Result<()> {
    let status = client.leader_status().await.context("cannot read the status")?;
    let placed =
        status.partitions.iter().find(|p| p.id == partition).with_context(|| {
            format!("partition {partition} does not exist ({} partitions)", status.partitions.len())
        })?;
    let models = client.models().await.context("cannot read the models")?;
    let plan = client.plan("").await.context("cannot plan")?;
    let leader = placed.leader.map_or("none".to_owned(), |l| l.to_string());
    println!("partition {partition}: replicas {:?}, leader {leader}", placed.replicas);
    let load = models["partitions"].as_array().into_iter().flatten().find(|p| p["partition"] == partition);
    match load {
        Some(p) => println!(
            "load: {:.1} events/s now, {:.1} forecast; {:.3} ms CPU per event; {:.3} cores on its leader ahead",
            num(&p["events_per_s"]),
            num(&p["events_per_s_forecast"]),
            num(&p["cpu_ms_per_event"]),
            num(&p["cpu_cores_forecast"])
        ),
        None => println!("load: no telemetry yet (counts as idle)"),
    }
    for node in &placed.replicas {
        let Some(n) = models["nodes"].as_array().into_iter().flatten().find(|n| n["node"] == *node) else {
            println!("  node {node}: no telemetry yet");
            continue;
        };
        println!(
            "  node {node}: {:.0}% busy, p99 {:.1} ms measured, {:.1} ms predicted ({} curve)",
            num(&n["utilisation"]) * 100.0,
            num(&n["measured_p99_ms"]),
            num(&n["predicted_p99_ms"]),
            n["curve"].as_str().unwrap_or("?")
        );
    }
    let planned: Vec<&Value> =
        plan["operations"].as_array().into_iter().flatten().filter(|op| op["partition"] == partition).collect();
    if planned.is_empty() {
        println!(
            "the planner ({} policy) leaves it: no move of it gains enough under the policy now",
            plan["policy"].as_str().unwrap_or("?")
        );
    }
    for op in planned {
        println!("the planner would {}: {}", describe(op), op["reason"].as_str().unwrap_or(""));
    }
    Ok(())
}

/// The operations the control loop committed, newest first, each with its
/// outcome as the partition's replicas report it.
pub async fn ops(client: &ClusterClient, limit: usize, json: bool) -> anyhow::Result<()> {
    let Some(round) = client.last_plan().await.context("cannot read the planner's rounds")? else {
        println!("no planner round yet on this controller leader (mode off, or just elected)");
        return Ok(());
    };
    let status = client.leader_status().await.context("cannot read the status")?;
    let mut rows = Vec::new();
    for op in round["recent"].as_array().into_iter().flatten().rev().take(limit) {
        rows.push((op.clone(), outcome(client, &status, op).await));
    }
    if json {
        let out: Vec<Value> = rows
            .into_iter()
            .map(|(mut op, outcome)| {
                op["outcome"] = Value::from(outcome);
                op
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    if rows.is_empty() {
        println!("no operations committed by this controller leader (mode {})", round["mode"]);
    }
    for (op, outcome) in rows {
        println!("{} (epoch {}, at {} ms): {outcome}; {}", describe(&op), op["epoch"], op["at_ms"], op["reason"]);
    }
    Ok(())
}

/// done, in progress, or why it cannot be told: asked of the replica the
/// operation targets, since only the partition's group knows.
async fn outcome(client: &ClusterClient, status: &eddy_client::view::StatusView, op: &Value) -> String {
    let partition = op["partition"].as_u64().unwrap_or(0) as u32;
    let target = op["to"].as_u64().or_else(|| op["node"].as_u64()).unwrap_or(0);
    let Some(addr) = status.nodes.iter().find(|n| n.id == target).map(|n| n.addr.clone()) else {
        return format!("unknown: node {target} is not registered");
    };
    let members = match client.members(&addr, partition).await {
        Ok(members) => members,
        Err(err) if op["kind"] == "remove_replica" && err.to_string().contains("holds no replica") => {
            return "done".to_owned();
        }
        Err(err) => return format!("unknown: {err}"),
    };
    let from = op["from"].as_u64();
    let done = match op["kind"].as_str() {
        Some("transfer_leader") => members.leader,
        Some("move_replica") => members.voters.contains(&target) && from.is_none_or(|f| !members.voters.contains(&f)),
        Some("add_replica") => members.voters.contains(&target),
        Some("remove_replica") => !members.voters.contains(&target),
        _ => false,
    };
    if done {
        "done".to_owned()
    } else if members.learners.contains(&target) {
        "in progress: catching up".to_owned()
    } else {
        "in progress".to_owned()
    }
}
