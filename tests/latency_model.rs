//! The latency model against a live node: one partition's events cost
//! 1 ms of CPU on nodes of half a core, at two load levels. The node's
//! predicted p99 response time must be within 30% of the measured one at
//! each level.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use eddy_client::events::{EventClient, RetryPolicy};
use eddy_model::trace::NodePoint;
use eddy_proto::v1::{self, SubmitRequest};
use eddy_testkit::{ClusterSpec, TestCluster, bins, healthy};

const SETTLE: Duration = Duration::from_secs(60);
const COST_US: u64 = 1000;
const CAPACITY_CORES: f64 = 0.5;
const LEVEL_SECS: u64 = 45;
/// Samples from the start of a level are left out of its measurement:
/// the backlog of the previous level drains then.
const WARMUP_MS: u64 = 8_000;

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Submits `rate` events a second in batches of 5 for `seconds`.
async fn level(client: &EventClient, key: &str, partition: u32, rate: u64, seconds: u64) -> anyhow::Result<()> {
    let batch = 5;
    let mut ticks = tokio::time::interval(Duration::from_micros(1_000_000 * batch / rate));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(seconds) {
        ticks.tick().await;
        let events = (0..batch)
            .map(|_| v1::Event {
                key: Bytes::from(key.to_owned()),
                r#type: "work".into(),
                payload: Bytes::from_static(b"{}"),
                attributes: Default::default(),
            })
            .collect();
        client
            .submit(SubmitRequest {
                partition: Some(partition),
                events,
                producer: None,
                request_id: 0,
                ..Default::default()
            })
            .await?;
    }
    Ok(())
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// The node's samples in [from, to) with enough events for a p99.
fn window(samples: &[NodePoint], from: u64, to: u64) -> Vec<NodePoint> {
    samples.iter().filter(|s| s.at_ms >= from && s.at_ms < to && s.processed_events >= 50).copied().collect()
}

/// The model's p99 at `utilisation`, interpolated (in log space) between
/// the points of the curve `eddyctl models` reports.
fn predicted(node: &serde_json::Value, utilisation: f64) -> f64 {
    let curve: Vec<(f64, f64)> = node["curve_p99_ms"]
        .as_array()
        .map(|c| {
            c.iter().map(|p| (p["utilisation"].as_f64().unwrap_or(0.0), p["p99_ms"].as_f64().unwrap_or(0.0))).collect()
        })
        .unwrap_or_default();
    let at = curve.partition_point(|(u, _)| *u <= utilisation).clamp(1, curve.len().saturating_sub(1).max(1));
    let ((u0, p0), (u1, p1)) = (curve[at - 1], curve[at.min(curve.len() - 1)]);
    if u1 <= u0 {
        return p0;
    }
    let t = (utilisation - u0) / (u1 - u0);
    (p0.ln() + t * (p1.ln() - p0.ln())).exp()
}

// Seen on the 2-core development machine: 0-7% off at both levels. The
// learned curve answers (held-out error 0.03-0.16 against a trust bound of
// 0.3); the prior, which knows nothing of the commit and of the processors'
// batching, is 0.47-0.56 off here and would fail this check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn predicted_p99_is_within_30_percent_at_two_load_levels() -> anyhow::Result<()> {
    let spec = ClusterSpec {
        replication_factor: 1,
        capacity_cores: CAPACITY_CORES,
        extra_manifest: format!("[processors.synthetic_cost_us]\nwork = {COST_US}\n"),
        ..ClusterSpec::default()
    };
    let cluster = TestCluster::start(bins!(), spec)?;
    cluster.wait_until(1, "a healthy cluster", SETTLE, |s| healthy(s, 3)).await?;
    let client = EventClient::connect(&cluster.endpoints(), Duration::from_secs(5), RetryPolicy::default()).await?;
    let key = "the-key";
    let partition = client.partition_for_key(key.as_bytes());

    // Each event costs 1 ms of CPU on half a core: the node serves at most
    // 500 events a second. 150/s is 30% busy, 350/s is 70%; each second's
    // p99 is then over a few hundred events.
    let mut levels = Vec::new();
    for rate in [150u64, 350] {
        let from = now_ms();
        level(&client, key, partition, rate, LEVEL_SECS).await?;
        levels.push((rate, from + WARMUP_MS, now_ms()));
    }
    // The last reports reach the controller within a couple of seconds.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let trace = cluster.export_trace(1)?;
    let leader = trace
        .partitions
        .iter()
        .find(|p| p.partition == partition)
        .and_then(|p| p.samples.iter().rev().find(|s| s.events > 0))
        .map(|s| s.leader)
        .ok_or_else(|| anyhow::anyhow!("no samples of partition {partition}"))?;
    let samples =
        &trace.nodes.iter().find(|n| n.node == leader).ok_or_else(|| anyhow::anyhow!("no node {leader}"))?.samples;

    let out = cluster.eddyctl(1, &["models", "--json"])?;
    anyhow::ensure!(out.status.success(), "models: {}", String::from_utf8_lossy(&out.stderr));
    let models: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let node = models["nodes"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["node"] == leader))
        .ok_or_else(|| anyhow::anyhow!("no model of node {leader}"))?;
    println!(
        "node {leader}: curve {}, prior error {}, learned error {}",
        node["curve"], node["prior_error"], node["learned_error"]
    );

    // What the node reported, for a failure's post-mortem.
    let reported: Vec<String> =
        samples.iter().map(|s| format!("{:.2}:{:.1}", s.utilisation, s.processed_p99_ms)).collect();
    println!("node {leader} samples (utilisation:p99 ms): {}", reported.join(" "));
    for (rate, from, to) in levels {
        let measured_window = window(samples, from, to);
        anyhow::ensure!(measured_window.len() >= 10, "only {} samples at {rate}/s", measured_window.len());
        let utilisation = median(measured_window.iter().map(|s| s.utilisation).collect());
        let measured = median(measured_window.iter().map(|s| s.processed_p99_ms).collect());
        let predicted = predicted(node, utilisation);
        println!(
            "{rate} events/s: utilisation {utilisation:.2}, p99 measured {measured:.1} ms, predicted {predicted:.1} ms"
        );
        assert!(
            (predicted - measured).abs() <= 0.3 * measured,
            "at {rate} events/s (utilisation {utilisation:.2}) the model predicts {predicted:.1} ms, measured {measured:.1} ms"
        );
    }
    Ok(())
}
