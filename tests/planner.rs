//! The planner on a live cluster: three nodes of half a core, the three
//! partitions given expensive events all led by one node. As a dry run
//! (`eddyctl plan`) and in mode `advise`, the planner proposes moving
//! leaderships off that node and nothing changes; in mode `auto` the
//! leaderships move, and every acknowledged event is stored once.

use std::time::{Duration, Instant};

use bytes::Bytes;
use eddy_client::events::{EventClient, RetryPolicy};
use eddy_proto::v1::{self, SubmitRequest};
use eddy_testkit::{ClusterSpec, TestCluster, bins, healthy, hot_spot};

const SETTLE: Duration = Duration::from_secs(60);
const HEAVY_US: u64 = 2000;

/// A key of each of `partitions`.
fn keys_of(client: &EventClient, partitions: &[u32]) -> Vec<(String, u32)> {
    partitions
        .iter()
        .filter_map(|p| {
            (0..100_000)
                .map(|i| format!("hot-{i}"))
                .find(|key| client.partition_for_key(key.as_bytes()) == *p)
                .map(|key| (key, *p))
        })
        .collect()
}

/// 50 expensive events a second on the key, in batches of 5, until
/// `until`; answers how many were acknowledged.
async fn load(client: std::sync::Arc<EventClient>, key: String, partition: u32, until: Instant) -> anyhow::Result<u64> {
    let mut acked = 0;
    let mut ticks = tokio::time::interval(Duration::from_millis(100));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while Instant::now() < until {
        ticks.tick().await;
        let events = (0..5)
            .map(|_| v1::Event {
                key: Bytes::from(key.clone()),
                r#type: "heavy".into(),
                payload: Bytes::from_static(b"{}"),
                attributes: Default::default(),
            })
            .collect();
        // An idempotent producer per partition: a retry after a lost answer
        // is stored once.
        let producer = Some(v1::Producer { id: 100 + u64::from(partition), sequence: acked });
        let answer = client
            .submit(SubmitRequest { partition: Some(partition), events, producer, request_id: 0, ..Default::default() })
            .await?;
        acked += u64::from(answer.count);
    }
    Ok(acked)
}

fn plan(cluster: &TestCluster, args: &[&str]) -> anyhow::Result<serde_json::Value> {
    let mut all = vec!["plan", "--json"];
    all.extend_from_slice(args);
    let out = cluster.eddyctl(1, &all)?;
    anyhow::ensure!(out.status.success(), "eddyctl plan: {}", String::from_utf8_lossy(&out.stderr));
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// The latest planner round, once it has operations (up to 30 s).
async fn round_with_operations(cluster: &TestCluster) -> anyhow::Result<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = cluster.eddyctl(1, &["plan", "--last", "--json"])?;
        if out.status.success()
            && let Ok(round) = serde_json::from_slice::<serde_json::Value>(&out.stdout)
            && round["plan"]["operations"].as_array().is_some_and(|ops| !ops.is_empty())
        {
            return Ok(round);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "no planner round with operations: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

struct Skewed {
    cluster: TestCluster,
    client: std::sync::Arc<EventClient>,
    busiest: u64,
    hot: Vec<(String, u32)>,
}

/// Three nodes of half a core; three partitions led by one node, whose
/// keys get 2 ms events.
async fn skewed() -> anyhow::Result<Skewed> {
    let spec = ClusterSpec {
        capacity_cores: 0.5,
        extra_manifest: format!("[processors.synthetic_cost_us]\nheavy = {HEAVY_US}\n"),
        ..ClusterSpec::default()
    };
    let cluster = TestCluster::start(bins!(), spec)?;
    cluster.wait_until(1, "a healthy cluster", SETTLE, |s| healthy(s, 3)).await?;
    // The placer names leaders before the groups elect theirs; heartbeats
    // bring the elected ones into the table within a second or two.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let client = EventClient::connect(&cluster.endpoints(), Duration::from_secs(5), RetryPolicy::default()).await?;
    let status = cluster.client_of(1)?.leader_status().await?;
    let leaders: Vec<Option<u64>> = status.partitions.iter().map(|p| p.leader).collect();
    let (busiest, partitions) = hot_spot(&leaders, 3)?;
    let hot = keys_of(&client, &partitions);
    anyhow::ensure!(hot.len() == 3, "no keys found for partitions {partitions:?}");
    Ok(Skewed { cluster, client: std::sync::Arc::new(client), busiest, hot })
}

async fn leaders_of(cluster: &TestCluster, partitions: &[u32]) -> anyhow::Result<Vec<Option<u64>>> {
    let status = cluster.client_of(1)?.leader_status().await?;
    Ok(partitions.iter().map(|p| status.partitions[*p as usize].leader).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_moves_hot_leaders_off_the_busy_node_and_changes_nothing() -> anyhow::Result<()> {
    let Skewed { cluster, client, busiest, hot } = skewed().await?;

    // Three partitions at 50 events/s of 2 ms each: 0.3 cores on a node of
    // 0.5, 60% busy, above a ceiling of 40%.
    let until = Instant::now() + Duration::from_secs(14);
    let loads: Vec<_> = hot.iter().map(|(key, p)| tokio::spawn(load(client.clone(), key.clone(), *p, until))).collect();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let adaptive = plan(&cluster, &["--utilisation-ceiling", "0.4"])?;
    let set = cluster.eddyctl(1, &["policy", "set", "--utilisation-ceiling", "0.4"])?;
    anyhow::ensure!(set.status.success(), "policy set: {}", String::from_utf8_lossy(&set.stderr));
    let explained = cluster.eddyctl(1, &["explain", &hot[0].1.to_string()])?;
    let explained = String::from_utf8_lossy(&explained.stdout).into_owned();
    let baseline = plan(&cluster, &["--policy", "static", "--utilisation-ceiling", "0.4"])?;
    for task in loads {
        task.await??;
    }
    println!("before {}\nafter {}", adaptive["before"], adaptive["after"]);

    let before = adaptive["before"]["utilisation_max"].as_f64().unwrap_or(0.0);
    let after = adaptive["after"]["utilisation_max"].as_f64().unwrap_or(1.0);
    anyhow::ensure!(before > 0.4, "the models do not see node {busiest} busy: {adaptive}");
    anyhow::ensure!(after < before && after <= 0.4, "the plan does not relieve node {busiest}: {adaptive}");
    let operations = adaptive["operations"].as_array().cloned().unwrap_or_default();
    let hot_partitions: Vec<u32> = hot.iter().map(|(_, p)| *p).collect();
    // The cheapest lever first: leader transfers of the hot partitions.
    let first = operations.first().ok_or_else(|| anyhow::anyhow!("no operations: {adaptive}"))?;
    assert_eq!(first["kind"], "transfer_leader", "{adaptive}");
    assert_eq!(first["from"], busiest, "{adaptive}");
    assert!(first["partition"].as_u64().is_some_and(|p| hot_partitions.contains(&(p as u32))), "{adaptive}");
    assert!(operations.iter().all(|op| op["reason"].as_str().is_some_and(|r| !r.is_empty())));
    // explain names the partition's nodes and what the planner would do.
    println!("{explained}");
    assert!(explained.contains(&format!("partition {}: replicas", hot[0].1)), "{explained}");
    assert!(explained.contains(&format!("  node {busiest}: ")), "{explained}");
    assert!(explained.contains("the planner would") || explained.contains("the planner (adaptive policy) leaves it"));
    // Static never balances.
    assert_eq!(baseline["operations"].as_array().map(Vec::len), Some(0), "{baseline}");

    // A dry run: the leaders are where they were.
    let now = cluster.client_of(1)?.leader_status().await?;
    for p in &hot_partitions {
        assert_eq!(now.partitions[*p as usize].leader, Some(busiest), "partition {p} moved in a dry run");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn advise_shows_the_plan_and_auto_carries_it_out_losing_nothing() -> anyhow::Result<()> {
    let Skewed { cluster, client, busiest, hot } = skewed().await?;
    let hot_partitions: Vec<u32> = hot.iter().map(|(_, p)| *p).collect();
    let until = Instant::now() + Duration::from_secs(40);
    let loads: Vec<_> = hot.iter().map(|(key, p)| tokio::spawn(load(client.clone(), key.clone(), *p, until))).collect();

    // The default mode is advise: a round proposes moves, nothing moves.
    let set = cluster.eddyctl(1, &["policy", "set", "--utilisation-ceiling", "0.4"])?;
    anyhow::ensure!(set.status.success(), "policy set: {}", String::from_utf8_lossy(&set.stderr));
    let advised = round_with_operations(&cluster).await?;
    assert_eq!(advised["mode"], "advise", "{advised}");
    assert!(advised["committed_epoch"].is_null(), "advise committed something: {advised}");
    assert!(leaders_of(&cluster, &hot_partitions).await?.iter().all(|l| *l == Some(busiest)), "advise moved a leader");

    // Auto: the leaders of the hot partitions leave the busy node.
    let set = cluster.eddyctl(1, &["policy", "set", "--mode", "auto"])?;
    anyhow::ensure!(set.status.success(), "policy set: {}", String::from_utf8_lossy(&set.stderr));
    assert!(
        String::from_utf8_lossy(&set.stdout).contains("mode = \"auto\""),
        "{}",
        String::from_utf8_lossy(&set.stdout)
    );
    let spread = |leaders: &[Option<u64>]| leaders.iter().filter(|l| **l == Some(busiest)).count() <= 1;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let leaders = leaders_of(&cluster, &hot_partitions).await?;
        if spread(&leaders) {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "hot leaders still on node {busiest}: {leaders:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let out = cluster.eddyctl(1, &["plan", "--last", "--json"])?;
    println!("last round: {}", String::from_utf8_lossy(&out.stdout));

    let mut acked = Vec::new();
    for task in loads {
        acked.push(task.await??);
    }
    // Every acknowledged event is stored, once.
    for ((_, partition), acked) in hot.iter().zip(acked) {
        let stored = client.read(*partition, 0, 0, 100_000).await?.events;
        let heavy = stored.iter().filter(|e| e.event.as_ref().is_some_and(|e| e.r#type == "heavy")).count() as u64;
        assert_eq!(heavy, acked, "partition {partition}: {heavy} stored, {acked} acknowledged");
        let offsets: Vec<u64> = stored.iter().map(|e| e.offset).collect();
        assert_eq!(offsets, (0..stored.len() as u64).collect::<Vec<_>>(), "partition {partition} offsets");
    }
    Ok(())
}
