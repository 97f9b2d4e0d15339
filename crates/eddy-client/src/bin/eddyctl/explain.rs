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

/// Every move of a partition the controller leader has seen committed,
/// newest first, whoever started it (the planner, an operator, a repair, a
/// drain), each with its reason and its outcome as the executor tracks it
/// from the groups' reports.
pub async fn ops(client: &ClusterClient, limit: usize, json: bool) -> anyhow::Result<()> {
    let Some(round) = client.last_plan().await.context("cannot read the planner's rounds")? else {
        println!("no moves yet on this controller leader (just elected)");
        return Ok(());
    };
    let rows: Vec<Value> = round["recent"]
        .as_array()
        .into_iter()
        .flatten()
        .rev()
        .take(limit)
        .map(|op| {
            let mut op = op.clone();
            op["outcome"] = Value::from(outcome(&op["outcome"]));
            op
        })
        .collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    if rows.is_empty() {
        println!("no moves committed since this controller leader was elected (mode {})", round["mode"]);
    }
    if let Some(deferred) = round["deferred"].as_array().filter(|d| !d.is_empty()) {
        println!("waiting for busy nodes (max_copies_per_node): partitions {}", Value::from(deferred.clone()));
    }
    for op in rows {
        let took = match (op["finished_ms"].as_u64(), op["at_ms"].as_u64()) {
            (Some(end), Some(start)) => format!(" after {} ms", end.saturating_sub(start)),
            _ => String::new(),
        };
        println!(
            "{} (epoch {}, at {} ms): {}{took}; {}",
            describe(&op),
            op["epoch"],
            op["at_ms"],
            op["outcome"].as_str().unwrap_or("?"),
            op["reason"]
        );
    }
    Ok(())
}

/// The executor's outcome in words.
fn outcome(outcome: &Value) -> &'static str {
    match (outcome["state"].as_str(), outcome["undone"].as_bool()) {
        (Some("in_flight"), _) => "in progress",
        (Some("completed"), _) => "done",
        (Some("timed_out"), Some(true)) => "timed out: undone, the table is back to the group's voters",
        (Some("timed_out"), _) => "timed out",
        (Some("superseded"), _) => "superseded by a later change of the table",
        _ => "unknown",
    }
}
