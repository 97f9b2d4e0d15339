//! Cost: four nodes, one of them at 2.0/h against 0.1-0.3/h for the others
//! and holding a few replicas, at low load. The planner advises draining the
//! expensive node (mode advise: nothing moves); in mode auto with scale-in
//! allowed, its replicas move to the cheaper nodes.

use std::time::{Duration, Instant};

use eddy_testkit::{ClusterSpec, TestCluster, bins, healthy};

const SETTLE: Duration = Duration::from_secs(60);
const EXPENSIVE: u64 = 4;

fn eddyctl(cluster: &TestCluster, args: &[&str]) -> anyhow::Result<String> {
    let out = cluster.eddyctl(1, args)?;
    anyhow::ensure!(out.status.success(), "eddyctl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn drain_advice(plan: &serde_json::Value) -> Option<&serde_json::Value> {
    plan["advice"].as_array()?.iter().find(|a| a["kind"] == "drain" && a["node"] == EXPENSIVE)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expensive_node_is_advised_away_then_drained_when_allowed() -> anyhow::Result<()> {
    let mut cluster = TestCluster::start(bins!(), ClusterSpec::default())?;
    cluster.wait_until(1, "a healthy cluster", SETTLE, |s| healthy(s, 3)).await?;
    cluster.add_worker(EXPENSIVE, "zone-4", 2.0)?;
    cluster.wait_until(1, "four nodes up", SETTLE, |s| healthy(s, 4)).await?;

    // Give the expensive node a follower replica of four partitions.
    let status = cluster.client_of(1)?.leader_status().await?;
    let mut moved = Vec::new();
    for p in status.partitions.iter().take(4) {
        let from = *p.replicas.iter().find(|r| Some(**r) != p.leader).expect("a follower");
        eddyctl(&cluster, &["move-replica", &p.id.to_string(), "--from", &from.to_string(), "--to", "4"])?;
        moved.push(p.id);
    }
    // The replicas arrive on the node before anything else happens.
    let deadline = Instant::now() + SETTLE;
    while !moved.iter().all(|p| cluster.data_dir(EXPENSIVE).join("partitions").join(p.to_string()).exists()) {
        anyhow::ensure!(Instant::now() < deadline, "node {EXPENSIVE} did not receive its replicas");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Advise (the default mode): draining is advised, nothing moves.
    let deadline = Instant::now() + Duration::from_secs(30);
    let advised = loop {
        let round: serde_json::Value =
            serde_json::from_str(&eddyctl(&cluster, &["plan", "--last", "--json"])?).unwrap_or_default();
        if drain_advice(&round["plan"]).is_some() {
            break round;
        }
        anyhow::ensure!(Instant::now() < deadline, "no round advises draining node {EXPENSIVE}: {round}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    println!("advice: {}", advised["plan"]["advice"]);
    let advice = drain_advice(&advised["plan"]).cloned().unwrap_or_default();
    assert_eq!(advice["saving_per_hour"], 2.0, "{advice}");
    assert!(advised["plan"]["operations"].as_array().is_some_and(Vec::is_empty), "{advised}");
    let on_expensive =
        |s: &eddy_client::view::StatusView| s.partitions.iter().filter(|p| p.replicas.contains(&EXPENSIVE)).count();
    assert_eq!(on_expensive(&cluster.client_of(1)?.leader_status().await?), moved.len());
    let advice: serde_json::Value = serde_json::from_str(&eddyctl(&cluster, &["advise", "--json"])?)?;
    assert!(drain_advice(&advice).is_some(), "eddyctl advise: {advice}");
    assert!(eddyctl(&cluster, &["advise"])?.contains("advice: drain node 4"));

    // Auto with scale-in allowed: the node is emptied.
    eddyctl(&cluster, &["policy", "set", "--mode", "auto", "--allow-scale-in", "true"])?;
    cluster.wait_until(1, "the expensive node emptied", Duration::from_secs(90), |s| on_expensive(s) == 0).await?;
    cluster
        .wait_until(1, "every partition whole", SETTLE, |s| {
            s.partitions.iter().all(|p| p.replicas.len() == 3 && p.leader.is_some())
        })
        .await?;
    let last: serde_json::Value = serde_json::from_str(&eddyctl(&cluster, &["plan", "--last", "--json"])?)?;
    println!("last round: {}", last["plan"]["after"]);
    Ok(())
}
