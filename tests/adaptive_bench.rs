//! The planner's reason to exist, measured the way a client sees it: three
//! nodes of half a core, the partitions that get expensive events all led
//! by one node, as hash placement left them. `eddyctl bench`, answered once
//! events are processed, measures p99 under policy `static`; the policy is
//! then switched to `adaptive` in mode `auto`, a bench runs through the
//! moves, and once the hot leaderships are spread the same bench measures
//! again. The adaptive p99 must be at least 2x lower, and every event any
//! bench saw acknowledged must be stored.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use eddy_testkit::{ClusterSpec, TestCluster, acked_events as acks, bins, healthy, hot_spot};

const SETTLE: Duration = Duration::from_secs(60);
/// Few costly events rather than many cheap ones: on two shared cores the
/// event path's own CPU would otherwise weigh as much as the processing
/// the placement is about.
const HEAVY_US: u64 = 10_000;
/// 46 events/s of 10 ms: 0.46 cores, 92% of a node of half a core when one
/// node leads every hot partition; 31% per node once spread. Near its rate
/// on purpose: a node of half a core runs a burst at a whole core until
/// its 50 ms of CPU credit is spent, so at 84% (42 events/s) the hot node
/// still answered most bursts as a whole core would, and the two p99
/// figures were 1.2x to 2.3x apart from run to run.
const RATE: &str = "46";
const MEASURE_SECS: &str = "30";

/// One `eddyctl bench` on the hot partitions, answered after processing;
/// answers its JSON summary.
fn bench(cluster: &TestCluster, partitions: &str, secs: &str, ack_log: &Path) -> anyhow::Result<serde_json::Value> {
    let ack_log = ack_log.display().to_string();
    let args = [
        "bench",
        "--partitions",
        partitions,
        "--type",
        "heavy",
        "--ack",
        "processed",
        "--rate",
        RATE,
        // Independent clients: evenly spaced requests would not queue
        // below saturation, and no real workload is that regular.
        "--arrivals",
        "poisson",
        "--concurrency",
        "32",
        "--keys",
        "60",
        "--event-size",
        "64",
        "--duration-secs",
        secs,
        "--json",
        "--ack-log",
        &ack_log,
    ];
    let out = cluster.eddyctl(1, &args)?;
    anyhow::ensure!(out.status.success(), "bench: {}", String::from_utf8_lossy(&out.stderr));
    Ok(serde_json::from_slice(&out.stdout)?)
}

fn policy_set(cluster: &TestCluster, args: &[&str]) -> anyhow::Result<()> {
    let mut all = vec!["policy", "set"];
    all.extend_from_slice(args);
    let out = cluster.eddyctl(1, &all)?;
    anyhow::ensure!(out.status.success(), "policy set: {}", String::from_utf8_lossy(&out.stderr));
    Ok(())
}

async fn leaders(cluster: &TestCluster) -> anyhow::Result<Vec<Option<u64>>> {
    Ok(cluster.client_of(1)?.leader_status().await?.partitions.iter().map(|p| p.leader).collect())
}

fn p99_ms(summary: &serde_json::Value) -> f64 {
    summary["latency_us"]["p99"].as_f64().unwrap_or(f64::NAN) / 1000.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_placement_cuts_the_bench_p99_at_least_in_half_against_static() -> anyhow::Result<()> {
    let spec = ClusterSpec {
        capacity_cores: 0.5,
        extra_manifest: format!("[processors.synthetic_cost_us]\nheavy = {HEAVY_US}\n"),
        ..ClusterSpec::default()
    };
    let cluster = TestCluster::start(bins!(), spec)?;
    cluster.wait_until(1, "a healthy cluster", SETTLE, |s| healthy(s, 3)).await?;
    // Heartbeats bring the elected leaders into the table within a second or two.
    tokio::time::sleep(Duration::from_secs(3)).await;
    policy_set(&cluster, &["--mode", "auto", "--policy", "static"])?;
    let before = leaders(&cluster).await?;
    let (busiest, hot) = hot_spot(&before, 3)?;
    let partitions = hot.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
    let dir = tempfile::tempdir()?;
    let logs = [dir.path().join("static.log"), dir.path().join("auto.log")];

    // A warm-up first, so that neither figure pays for connections and
    // the models' first samples.
    bench(&cluster, &partitions, "5", &dir.path().join("warm-up.log"))?;
    let under_static = bench(&cluster, &partitions, MEASURE_SECS, &logs[0])?;
    let still = leaders(&cluster).await?;
    anyhow::ensure!(hot.iter().all(|p| still[*p as usize] == Some(busiest)), "static moved a leader: {still:?}");

    // Auto with the adaptive policy; short benches keep the load on while
    // the planner moves, and their acknowledgements are checked too.
    policy_set(&cluster, &["--mode", "auto", "--policy", "adaptive", "--slo-p99-ms", "25"])?;
    let moves_log = dir.path().join("moves");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut through_moves = Vec::new();
    loop {
        through_moves.push(bench(
            &cluster,
            &partitions,
            "5",
            &moves_log.with_extension(through_moves.len().to_string()),
        )?);
        let now = leaders(&cluster).await?;
        let spread: BTreeSet<Option<u64>> = hot.iter().map(|p| now[*p as usize]).collect();
        if spread.len() == hot.len() && !spread.contains(&None) {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "the hot leaderships are not spread after 60 s: {now:?}");
    }
    // The new leaders replay their partitions' events since the last
    // processor checkpoint; the measurement is of the placement, after that.
    let settle = moves_log.with_extension(through_moves.len().to_string());
    through_moves.push(bench(&cluster, &partitions, "10", &settle)?);
    let placed = leaders(&cluster).await?;
    let under_auto = bench(&cluster, &partitions, MEASURE_SECS, &logs[1])?;
    let ops = cluster.eddyctl(1, &["ops"])?;
    println!("{}", String::from_utf8_lossy(&ops.stdout));
    // No oscillation: the planner leaves its placement alone.
    assert_eq!(leaders(&cluster).await?, placed, "leaders moved again while the load held steady");

    let (static_p99, auto_p99) = (p99_ms(&under_static), p99_ms(&under_auto));
    println!("p99 under static: {static_p99:.1} ms\np99 under auto:   {auto_p99:.1} ms");
    println!("static: {under_static}\nauto:   {under_auto}");
    for summary in [&under_static, &under_auto] {
        assert_eq!(summary["errors"], 0, "{summary}");
        assert_eq!(summary["not_processed"], 0, "{summary}");
    }
    assert!(auto_p99 * 2.0 <= static_p99, "p99 {auto_p99:.1} ms under auto, {static_p99:.1} ms under static");

    // No acknowledged event lost, through the moves included.
    let read = cluster.stored_events(1)?;
    let mut acked = acks(&dir.path().join("warm-up.log"))?;
    acked.extend(acks(&logs[0])?);
    acked.extend(acks(&logs[1])?);
    for i in 0..through_moves.len() {
        acked.extend(acks(&moves_log.with_extension(i.to_string()))?);
    }
    let lost: Vec<_> = acked.difference(&read).take(5).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged events are not stored, e.g. {lost:?}",
        acked.len() - acked.intersection(&read).count(),
        acked.len()
    );
    Ok(())
}
