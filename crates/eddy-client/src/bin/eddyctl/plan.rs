//! `eddyctl plan`: what the planner would do now with the live models, as a
//! dry run that changes nothing, or what its latest round did; `eddyctl
//! policy get/set`: the placement mode and policy.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use eddy_client::ClusterClient;
use eddy_placement::{PlacementMode, PlacementSettings, Policy, PolicyName};
use serde_json::Value;

/// Changes to a placement policy, on top of the cluster's.
#[derive(Debug, Args)]
pub struct PolicyFlags {
    /// A policy file (TOML, the fields README lists); the flags override it.
    #[arg(long)]
    policy_file: Option<PathBuf>,
    /// adaptive, static, count or utilisation.
    #[arg(long)]
    policy: Option<String>,
    #[arg(long)]
    slo_p99_ms: Option<f64>,
    #[arg(long)]
    utilisation_ceiling: Option<f64>,
    #[arg(long)]
    max_operations: Option<usize>,
    /// Whether the planner drains nodes that are not needed.
    #[arg(long)]
    allow_scale_in: Option<bool>,
}

impl PolicyFlags {
    fn is_empty(&self) -> bool {
        self.policy_file.is_none()
            && self.policy.is_none()
            && self.slo_p99_ms.is_none()
            && self.utilisation_ceiling.is_none()
            && self.max_operations.is_none()
            && self.allow_scale_in.is_none()
    }

    /// `base` with the flags applied, checked here so that a bad policy is
    /// refused before it reaches the cluster.
    fn apply(&self, base: Policy) -> anyhow::Result<Policy> {
        let mut policy = match &self.policy_file {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
                toml::from_str(&text).with_context(|| format!("bad policy in {}", path.display()))?
            }
            None => base,
        };
        if let Some(name) = &self.policy {
            policy.name = PolicyName::ALL
                .into_iter()
                .find(|p| p.as_str() == name)
                .with_context(|| format!("unknown policy {name}: use adaptive, static, count or utilisation"))?;
        }
        policy.slo_p99_ms = self.slo_p99_ms.unwrap_or(policy.slo_p99_ms);
        policy.utilisation_ceiling = self.utilisation_ceiling.unwrap_or(policy.utilisation_ceiling);
        policy.max_operations_per_round = self.max_operations.unwrap_or(policy.max_operations_per_round);
        policy.allow_scale_in = self.allow_scale_in.unwrap_or(policy.allow_scale_in);
        policy.validate().map_err(|e| anyhow::anyhow!("bad policy: {e}"))?;
        Ok(policy)
    }
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    flags: PolicyFlags,
    /// Show the control loop's latest round instead of planning now.
    #[arg(long)]
    last: bool,
    /// The plan as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// The placement mode and policy.
    Get,
    /// Change the mode (auto, advise, off) and the policy; the next round
    /// of the planner uses them.
    Set {
        #[arg(long)]
        mode: Option<String>,
        #[command(flatten)]
        flags: PolicyFlags,
    },
}

async fn current(client: &ClusterClient) -> anyhow::Result<PlacementSettings> {
    let text = client.placement().await.context("cannot read the placement policy")?;
    toml::from_str(&text).context("the cluster answered a placement policy this eddyctl cannot read")
}

pub async fn plan(client: &ClusterClient, args: PlanArgs) -> anyhow::Result<()> {
    if args.last {
        let Some(round) = client.last_plan().await.context("cannot read the last round")? else {
            println!("no planner round yet on this controller leader (mode off, or just elected)");
            return Ok(());
        };
        if args.json {
            println!("{}", serde_json::to_string_pretty(&round)?);
        } else {
            let outcome = match (&round["committed_epoch"], &round["refused"]) {
                (serde_json::Value::Null, serde_json::Value::Null) => "nothing committed".to_owned(),
                (epoch, serde_json::Value::Null) => format!("committed at table epoch {epoch}"),
                (_, why) => format!("not committed: {why}"),
            };
            println!("round at {} ms, mode {}: {outcome}", round["at_ms"], round["mode"]);
            print_plan(&round["plan"]);
        }
        return Ok(());
    }
    let policy = if args.flags.is_empty() {
        String::new()
    } else {
        toml::to_string(&args.flags.apply(current(client).await?.policy)?)?
    };
    let plan = client.plan(&policy).await.context("cannot plan")?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&plan)?);
        return Ok(());
    }
    print_plan(&plan);
    Ok(())
}

pub async fn policy(client: &ClusterClient, command: PolicyCommand) -> anyhow::Result<()> {
    match command {
        PolicyCommand::Get => print!("{}", client.placement().await.context("cannot read the placement policy")?),
        PolicyCommand::Set { mode, flags } => {
            let mut placement = current(client).await?;
            if let Some(mode) = mode {
                placement.mode = PlacementMode::ALL
                    .into_iter()
                    .find(|m| m.as_str() == mode)
                    .with_context(|| format!("unknown mode {mode}: use auto, advise or off"))?;
            }
            placement.policy = flags.apply(placement.policy)?;
            let set = client.set_placement(&toml::to_string(&placement)?).await.context("policy refused")?;
            print!("{set}");
        }
    }
    Ok(())
}

fn print_plan(plan: &Value) {
    println!("policy {} (dry run: nothing changes)", plan["policy"].as_str().unwrap_or("?"));
    println!("before: {}", metrics(&plan["before"]));
    println!("after:  {}", metrics(&plan["after"]));
    let operations = plan["operations"].as_array().cloned().unwrap_or_default();
    if operations.is_empty() {
        println!("\nno operations: the placement is where the policy wants it");
    } else {
        println!("\n{} operations:", operations.len());
    }
    for op in &operations {
        println!("  {}: {}", describe(op), op["reason"].as_str().unwrap_or(""));
    }
    if plan["budget_exhausted"].as_bool() == Some(true) {
        println!("  (the round's budget is spent; more follow in later rounds)");
    }
    print_advice(plan);
}

/// Predicted cluster metrics in one line.
pub fn metrics(m: &Value) -> String {
    format!(
        "p99 mean {:.1} ms, worst {:.1} ms; {:.1}% of events within the SLO; busiest node {:.0}%; {} nodes in use at {:.2}/h",
        num(&m["p99_ms_mean"]),
        num(&m["p99_ms_max"]),
        num(&m["slo_attainment"]) * 100.0,
        num(&m["utilisation_max"]) * 100.0,
        m["nodes_in_use"].as_u64().unwrap_or(0),
        num(&m["price_per_hour"])
    )
}

/// One planned operation in words.
pub fn describe(op: &Value) -> String {
    match op["kind"].as_str().unwrap_or("") {
        "transfer_leader" => format!("transfer leader of partition {} to node {}", op["partition"], op["to"]),
        "move_replica" => {
            format!("move replica of partition {} from node {} to node {}", op["partition"], op["from"], op["to"])
        }
        "add_replica" => format!("add replica of partition {} on node {}", op["partition"], op["node"]),
        "remove_replica" => format!("remove replica of partition {} from node {}", op["partition"], op["node"]),
        other => format!("{other} {op}"),
    }
}

/// The plan's capacity advice and unmet constraints; answers whether there were any.
pub fn print_advice(plan: &Value) -> bool {
    let mut any = false;
    for advice in plan["advice"].as_array().into_iter().flatten() {
        any = true;
        match advice["kind"].as_str() {
            Some("scale_out") => println!(
                "advice: add {} nodes like node {} ({} cores, {}/h): {}",
                advice["count"], advice["like"], advice["capacity_cores"], advice["price_per_hour"], advice["reason"]
            ),
            Some("drain") => println!(
                "advice: drain node {} (saves {:.2}/h): {}",
                advice["node"],
                num(&advice["saving_per_hour"]),
                advice["reason"]
            ),
            _ => println!("advice: {advice}"),
        }
    }
    for unmet in plan["unmet"].as_array().into_iter().flatten() {
        any = true;
        println!("cannot meet: {}", unmet.as_str().unwrap_or(""));
    }
    any
}

pub fn num(value: &Value) -> f64 {
    value.as_f64().unwrap_or(0.0)
}
