//! The event path under faults: a three-node cluster with replication
//! factor 3 under continuous load loses a node (killed, or paused), which
//! then comes back. Every acknowledged event must then be readable exactly
//! once, at the offset it was acknowledged at, offsets must be dense, and
//! each key's events must be in the order they were sent.

use std::collections::BTreeMap;
use std::time::Duration;

use eddy_client::events::{EventClient, RetryPolicy};
use eddy_client::view::StatusView;
use eddy_testkit::checker::{check, read_all};
use eddy_testkit::workload::Workload;
use eddy_testkit::{ClusterSpec, Signal, TestCluster, bins, healthy};

const SETTLE: Duration = Duration::from_secs(60);
const FAULT: Duration = Duration::from_secs(6);

enum Fault {
    Kill,
    Pause,
    CutOff,
}

/// The node that leads the most partitions.
fn busiest_leader(status: &StatusView) -> u64 {
    let mut led = BTreeMap::<u64, usize>::new();
    for p in &status.partitions {
        if let Some(l) = p.leader {
            *led.entry(l).or_default() += 1;
        }
    }
    led.into_iter().max_by_key(|(id, n)| (*n, *id)).map_or(1, |(id, _)| id)
}

async fn survive(fault: Fault) -> anyhow::Result<()> {
    let mut cluster = TestCluster::start(bins!(), ClusterSpec::default())?;
    cluster.wait_until(1, "a healthy cluster", SETTLE, |s| healthy(s, 3)).await?;
    let client = EventClient::connect(&cluster.endpoints(), Duration::from_secs(5), RetryPolicy::default()).await?;
    for partition in 0..client.partition_count() {
        client.read(partition, 0, 0, 1).await?;
    }
    let workload = Workload::start(&cluster.endpoints(), 48, Duration::from_millis(2)).await?;
    while workload.acked() < 300 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = cluster.client_of(1)?.leader_status().await?;
    let victim = busiest_leader(&status);
    let fault_at = workload.elapsed();
    match fault {
        Fault::Kill => cluster.kill(victim)?,
        Fault::Pause => cluster.signal(victim, Signal::SIGSTOP)?,
        Fault::CutOff => cluster.cut_off(victim).await?,
    }
    tokio::time::sleep(FAULT).await;
    match fault {
        Fault::Kill => cluster.start_node(victim)?,
        Fault::Pause => cluster.signal(victim, Signal::SIGCONT)?,
        Fault::CutOff => cluster.heal().await?,
    }
    let survivor = cluster.ids().into_iter().find(|id| *id != victim).unwrap_or(1);
    cluster.wait_until(survivor, "the node back and up", SETTLE, |s| healthy(s, 3)).await?;
    let acked_before = workload.acked();
    while workload.acked() < acked_before + 300 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let healed_at = workload.elapsed();
    let history = workload.stop().await;
    if std::env::var_os("EDDY_TEST_SHOW_LOGS").is_some() {
        for id in cluster.ids() {
            println!("=== node {id}\n{}", cluster.log(id)?);
        }
    }

    println!("node {victim} faulted for {FAULT:?}; longest time without an acknowledgement, per partition:");
    for (partition, gap) in history.longest_gaps(fault_at, healed_at) {
        println!("  partition {partition:2}: {:.2} s", gap.as_secs_f64());
    }
    let client = EventClient::connect(&cluster.endpoints(), Duration::from_secs(5), RetryPolicy::default()).await?;
    let stored = read_all(&client).await?;
    let report = check(&history, &stored)?;
    println!(
        "{} events stored, {} acknowledged ones all found; {} without an answer, {} of them stored",
        report.stored,
        report.acked,
        report.unknown_stored + report.unknown_missing,
        report.unknown_stored
    );
    assert!(report.acked >= 600, "{report:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_busiest_leader_loses_no_acknowledged_event() -> anyhow::Result<()> {
    survive(Fault::Kill).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pausing_the_busiest_leader_loses_no_acknowledged_event() -> anyhow::Result<()> {
    survive(Fault::Pause).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cutting_off_the_busiest_leader_loses_no_acknowledged_event() -> anyhow::Result<()> {
    survive(Fault::CutOff).await
}
