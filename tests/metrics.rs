//! Every node serves Prometheus metrics at the URL `eddyctl status --json`
//! lists for it; a scrape parses and counts what the node did.

use std::time::Duration;

use bytes::Bytes;
use eddy_client::events::{EventClient, RetryPolicy};
use eddy_proto::v1::{self, SubmitRequest};
use eddy_testkit::scrape::{http_get, sum};
use eddy_testkit::{ClusterSpec, TestCluster, bins, healthy};

const SETTLE: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_parses_and_counts_what_the_node_did() -> anyhow::Result<()> {
    let spec = ClusterSpec { voters: 1, replication_factor: 1, ..ClusterSpec::default() };
    let cluster = TestCluster::start(bins!(), spec)?;
    cluster.wait_until(1, "a healthy node", SETTLE, |s| healthy(s, 1)).await?;
    let client = EventClient::connect(&cluster.endpoints(), Duration::from_secs(5), RetryPolicy::default()).await?;

    let batches = 20u64;
    let per_batch = 5u64;
    for b in 0..batches {
        // One key per batch: a batch's events share a partition.
        let key = format!("key-{b}");
        let events = (0..per_batch)
            .map(|_| v1::Event {
                key: Bytes::from(key.clone()),
                r#type: "metric-test".into(),
                payload: Bytes::from_static(b"{}"),
                attributes: Default::default(),
            })
            .collect();
        let partition = Some(client.partition_for_key(key.as_bytes()));
        client.submit(SubmitRequest { partition, events, producer: None, request_id: 0, ..Default::default() }).await?;
    }

    let status = cluster.eddyctl(1, &["status", "--json"])?;
    anyhow::ensure!(status.status.success(), "status failed: {}", String::from_utf8_lossy(&status.stderr));
    let status: serde_json::Value = serde_json::from_slice(&status.stdout)?;
    let url = status["nodes"][0]["metrics_url"].as_str().ok_or_else(|| anyhow::anyhow!("no metrics_url"))?;
    anyhow::ensure!(url == format!("http://{}/metrics", cluster.endpoint(1)?), "metrics_url {url}");

    let body = http_get(url).await?;
    let scrape = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_owned())))?;
    anyhow::ensure!(!scrape.samples.is_empty(), "an empty scrape");

    let stored = (batches * per_batch) as f64;
    assert_eq!(sum(&scrape, "eddy_worker_submit_events_total"), stored, "events stored by the leader");
    assert_eq!(sum(&scrape, "eddy_worker_applied_events_total"), stored, "events applied to the log");
    assert!(sum(&scrape, "eddy_storage_fsyncs_total") >= 1.0, "no fsync counted");
    assert!(sum(&scrape, "eddy_storage_fsync_writes_total") >= sum(&scrape, "eddy_storage_fsyncs_total"));
    let submits: f64 = scrape
        .samples
        .iter()
        .filter(|s| s.metric == "eddy_worker_submits_total" && s.labels.get("outcome") == Some("stored"))
        .map(|s| if let prometheus_parse::Value::Counter(v) = s.value { v } else { 0.0 })
        .sum();
    assert_eq!(submits, batches as f64, "stored batches");
    // A summary's count parses as an untyped sample of its own.
    assert_eq!(sum(&scrape, "eddy_worker_commit_seconds_count"), batches as f64, "commit latencies recorded");
    let quantiles = scrape
        .samples
        .iter()
        .find_map(|s| match (&s.metric[..], &s.value) {
            ("eddy_worker_commit_seconds", prometheus_parse::Value::Summary(q)) => Some(q.clone()),
            _ => None,
        })
        .ok_or_else(|| anyhow::anyhow!("no commit latency summary"))?;
    assert!(quantiles.iter().any(|q| q.quantile == 0.99 && q.count > 0.0), "{quantiles:?}");
    assert_eq!(sum(&scrape, "eddy_node_capacity_cores"), status["nodes"][0]["capacity_cores"].as_f64().unwrap_or(-1.0));
    assert!(scrape.docs.contains_key("eddy_storage_fsyncs_total"), "help texts missing");
    Ok(())
}
