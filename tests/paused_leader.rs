//! A client whose partition leader is paused (SIGSTOP: its connections
//! stay open, it answers nothing) waits no longer than a request's
//! deadline plus one leadership change, not for the whole pause; retried
//! requests are stored once.

use std::time::Duration;

use eddy_testkit::{ClusterSpec, Signal, TestCluster, acked_events, bins, healthy};

const SETTLE: Duration = Duration::from_secs(60);
/// The client's deadline for one attempt of a submit (RetryPolicy).
const ATTEMPT: Duration = Duration::from_secs(5);
/// A generous bound for electing a new leader and finding it.
const LEADERSHIP_CHANGE: Duration = Duration::from_secs(8);
const PAUSE: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_leader_holds_requests_for_a_deadline_not_for_the_pause() -> anyhow::Result<()> {
    let spec = ClusterSpec { partitions: 4, ..ClusterSpec::default() };
    let cluster = TestCluster::start(bins!(), spec)?;
    cluster.wait_until(1, "a healthy cluster", SETTLE, |s| healthy(s, 3)).await?;
    let partition = 2u32;
    let leader = cluster.client_of(1)?.leader_status().await?.partitions[partition as usize]
        .leader
        .ok_or_else(|| anyhow::anyhow!("no leader"))?;

    let dir = tempfile::tempdir()?;
    let ack_log = dir.path().join("acks.txt");
    let (bins, endpoints) = (cluster.bins().clone(), cluster.endpoints());
    let args: Vec<String> = [
        "bench",
        "--idempotent",
        "--partitions",
        &partition.to_string(),
        "--rate",
        "200",
        "--concurrency",
        "8",
        "--duration-secs",
        "40",
        "--json",
        "--ack-log",
        &ack_log.display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let bench = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        bins.eddyctl_within(&endpoints, &args, Duration::from_secs(120))
    });

    tokio::time::sleep(Duration::from_secs(5)).await;
    cluster.signal(leader, Signal::SIGSTOP)?;
    tokio::time::sleep(PAUSE).await;
    cluster.signal(leader, Signal::SIGCONT)?;
    let out = bench.await??;
    anyhow::ensure!(out.status.success(), "bench: {}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)?;

    eprintln!("bench report: {report}");
    assert_eq!(report["errors"], 0, "every request was answered in the end: {report}");
    let bound = (ATTEMPT + LEADERSHIP_CHANGE).as_millis() as u64;
    let max_ms = report["latency_us"]["max"].as_u64().unwrap_or(u64::MAX) / 1000;
    assert!(max_ms < bound, "a request waited {max_ms} ms, above {bound} ms (the pause is {PAUSE:?}): {report}");
    let stall_ms = report["longest_stall_ms"].as_u64().unwrap_or(u64::MAX);
    assert!(stall_ms < bound, "the clients stalled for {stall_ms} ms: {report}");

    // Every acknowledged event is stored once, where it was acknowledged,
    // and nothing else is stored: retries were not stored again.
    cluster.wait_until(1, "the cluster healthy again", SETTLE, |s| healthy(s, 3)).await?;
    let acked = acked_events(&ack_log)?;
    let stored: std::collections::BTreeSet<_> =
        cluster.stored_events(1)?.into_iter().filter(|e| e.0 == u64::from(partition)).collect();
    assert_eq!(acked.len() as u64, report["acked"].as_u64().unwrap_or(0), "ack log and report disagree");
    assert_eq!(stored, acked, "stored and acknowledged events differ");
    Ok(())
}
