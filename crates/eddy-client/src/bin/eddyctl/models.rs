//! `eddyctl models` and `eddyctl trace export`: what the controller leader
//! has learned, and the load history it recorded.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use eddy_client::ClusterClient;
use eddy_model::trace::Trace;
use serde_json::Value;

#[derive(Debug, Subcommand)]
pub enum TraceCommand {
    /// Write the recorded per-partition rates and costs and the nodes'
    /// capacities and prices (format eddy-trace/1) to a file.
    Export {
        #[arg(long)]
        out: PathBuf,
    },
}

pub async fn models(client: &ClusterClient, json: bool) -> anyhow::Result<()> {
    let models = client.models().await.context("cannot read the models")?;
    if json {
        println!("{}", serde_json::to_string_pretty(&models)?);
        return Ok(());
    }
    println!(
        "{} reports learned; forecasts {} s ahead",
        models["reports"].as_u64().unwrap_or(0),
        models["horizon_ms"].as_u64().unwrap_or(0) / 1000
    );
    println!("\npartition leader  events/s  forecast  cpu ms/ev  cores ahead  error  trusted");
    for p in models["partitions"].as_array().into_iter().flatten() {
        println!(
            "{:>9} {:>6} {:>9.1} {:>9.1} {:>10.3} {:>12.3} {:>6} {:>8}",
            p["partition"].as_u64().unwrap_or(0),
            p["leader"].as_u64().unwrap_or(0),
            num(&p["events_per_s"]),
            num(&p["events_per_s_forecast"]),
            num(&p["cpu_ms_per_event"]),
            num(&p["cpu_cores_forecast"]),
            percent(&p["quality"]["error_mape"]),
            p["quality"]["trusted"].as_bool().unwrap_or(false),
        );
    }
    println!("\nnode  cores  util   p99 measured  p99 predicted  curve    error  trusted");
    for n in models["nodes"].as_array().into_iter().flatten() {
        println!(
            "{:>4} {:>6.2} {:>5.2} {:>11.1}ms {:>12.1}ms  {:<8} {:>6} {:>8}",
            n["node"].as_u64().unwrap_or(0),
            num(&n["capacity_cores"]),
            num(&n["utilisation"]),
            num(&n["measured_p99_ms"]),
            num(&n["predicted_p99_ms"]),
            n["curve"].as_str().unwrap_or("?"),
            percent(&n["quality"]["error_mape"]),
            n["quality"]["trusted"].as_bool().unwrap_or(false),
        );
    }
    let cost = &models["cost"];
    println!(
        "\nnodes in use cost {:.3}/hour; replica copies at {:.1} MiB/s",
        num(&cost["price_per_hour_in_use"]),
        num(&cost["move_copy_bytes_per_s"]) / (1024.0 * 1024.0)
    );
    Ok(())
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or(0.0)
}

fn percent(v: &Value) -> String {
    v.as_f64().map_or_else(|| "-".to_owned(), |e| format!("{:.0}%", e * 100.0))
}

pub async fn trace(client: &ClusterClient, command: TraceCommand) -> anyhow::Result<()> {
    match command {
        TraceCommand::Export { out } => {
            let json = client.trace_json().await.context("cannot export the trace")?;
            // Checked before writing: a file that will not load back is no use.
            let trace = Trace::from_json(&json).context("the controller sent a malformed trace")?;
            std::fs::write(&out, json).with_context(|| format!("cannot write {}", out.display()))?;
            let samples: usize = trace.partitions.iter().map(|p| p.samples.len()).sum();
            println!(
                "wrote {}: {} nodes, {} partitions, {} partition samples",
                out.display(),
                trace.nodes.len(),
                trace.partitions.len(),
                samples
            );
            Ok(())
        }
    }
}

/// `eddyctl top`: live per-node and per-partition load, redrawn every
/// `interval`; with `once`, one frame for scripts.
pub async fn top(client: &ClusterClient, once: bool, interval: std::time::Duration, rows: usize) -> anyhow::Result<()> {
    loop {
        let models = client.models().await.context("cannot read the controller's telemetry")?;
        let frame = top_frame(&models, rows);
        if once {
            print!("{frame}");
            return Ok(());
        }
        // Clear the screen and home the cursor, then draw.
        print!("\x1b[2J\x1b[H{frame}");
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

fn top_frame(models: &Value, rows: usize) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let nodes = models["nodes"].as_array().cloned().unwrap_or_default();
    let mut partitions = models["partitions"].as_array().cloned().unwrap_or_default();
    let _ = writeln!(
        out,
        "eddy top: {} nodes, {} partitions, {} reports",
        nodes.len(),
        partitions.len(),
        models["reports"].as_u64().unwrap_or(0)
    );
    let _ = writeln!(out, "\nnode  cores  util  resp p99  events/s  host cpu  eddyd cores  replicas  leading");
    for n in &nodes {
        let _ = writeln!(
            out,
            "{:>4} {:>6.2} {:>5.2} {:>7.1}ms {:>9} {:>8.0}% {:>12.2} {:>9} {:>8}",
            n["node"].as_u64().unwrap_or(0),
            num(&n["capacity_cores"]),
            num(&n["utilisation"]),
            num(&n["measured_p99_ms"]),
            n["processed_events"].as_u64().unwrap_or(0),
            num(&n["host_cpu_busy"]) * 100.0,
            num(&n["process_cpu_cores"]),
            n["replicas"].as_u64().unwrap_or(0),
            n["leading"].as_u64().unwrap_or(0),
        );
    }
    partitions.sort_by(|a, b| num(&b["last"]["events_per_s"]).total_cmp(&num(&a["last"]["events_per_s"])));
    let _ = writeln!(out, "\npartition leader  events/s   KiB/s  cpu ms/ev  commit p99  resp p99  queue  log MiB");
    for p in partitions.iter().take(rows) {
        let last = &p["last"];
        let _ = writeln!(
            out,
            "{:>9} {:>6} {:>9.1} {:>7.1} {:>10.3} {:>9.1}ms {:>7.1}ms {:>6} {:>8.1}",
            p["partition"].as_u64().unwrap_or(0),
            p["leader"].as_u64().unwrap_or(0),
            num(&last["events_per_s"]),
            num(&last["bytes_per_s"]) / 1024.0,
            num(&p["cpu_ms_per_event"]),
            num(&last["commit_p99_ms"]),
            num(&last["processed_p99_ms"]),
            last["queue_depth"].as_u64().unwrap_or(0),
            num(&last["log_bytes"]) / (1024.0 * 1024.0),
        );
    }
    if partitions.len() > rows {
        let _ = writeln!(out, "... {} more partitions (--rows)", partitions.len() - rows);
    }
    out
}
