//! `eddyctl bench` loads a cluster and reports as documented, its ack log
//! lists every acknowledged event, and `eddyctl tail --until-latest` reads
//! exactly those events back.

use std::time::Duration;

use eddy_testkit::{ClusterSpec, TestCluster, bins, healthy};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_reports_and_its_ack_log_matches_what_tail_reads() -> anyhow::Result<()> {
    let spec = ClusterSpec { voters: 1, replication_factor: 1, ..ClusterSpec::default() };
    let cluster = TestCluster::start(bins!(), spec)?;
    cluster.wait_until(1, "a healthy node", Duration::from_secs(60), |s| healthy(s, 1)).await?;
    let dir = tempfile::tempdir()?;
    let ack_log = dir.path().join("acks.log");
    let ack_arg = ack_log.display().to_string();
    let args = [
        "bench",
        "--events",
        "600",
        "--concurrency",
        "8",
        "--batch-size",
        "4",
        "--keys",
        "50",
        "--zipf",
        "1.1",
        "--json",
        "--ack-log",
        &ack_arg,
    ];
    let out = cluster.eddyctl(1, &args)?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(summary["acked"], 600, "{summary}");
    assert_eq!(summary["errors"], 0, "{summary}");
    assert!(summary["events_per_s"].as_f64().is_some_and(|r| r > 0.0), "{summary}");
    let p50 = summary["latency_us"]["p50"].as_u64().unwrap_or(0);
    let p99 = summary["latency_us"]["p99"].as_u64().unwrap_or(0);
    assert!(p50 > 0 && p99 >= p50, "{summary}");
    assert!(summary["fsyncs_per_s"].as_f64().is_some_and(|f| f > 0.0), "{summary}");

    let acked = eddy_testkit::acked_events(&ack_log)?;
    assert_eq!(acked.len(), 600);
    let read = cluster.stored_events(1)?;
    assert_eq!(read, acked, "tail reads exactly the acknowledged events");
    Ok(())
}
