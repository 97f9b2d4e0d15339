use super::*;

fn report(
    node: NodeId,
    second: u64,
    partitions: Vec<PartitionReport>,
    processor_cores: f64,
    p99_ms: f64,
) -> NodeReport {
    let processed = partitions.iter().filter(|p| p.leader).map(|p| p.events).sum();
    NodeReport {
        node,
        at_ms: second * 1000,
        interval_ms: 1000,
        capacity_cores: 2.0,
        price_per_hour: 0.5,
        processor_cpu_cores: processor_cores,
        processed_events: processed,
        processed_p99_ms: p99_ms,
        partitions,
        ..NodeReport::default()
    }
}

fn led(partition: PartitionId, events: u64, cpu_ms: f64) -> PartitionReport {
    PartitionReport {
        partition,
        leader: true,
        events,
        events_per_s: events as f64,
        bytes_per_s: events as f64 * 256.0,
        cpu_ms_per_event: (events > 0).then_some(cpu_ms),
        ..PartitionReport::default()
    }
}

#[test]
fn partition_costs_and_rates_are_learned_and_recorded() {
    let mut keeper = ModelKeeper::new(KeeperConfig::default());
    for second in 1..=120 {
        let parts = vec![led(0, 200, 1.0), led(1, 50, 4.0), PartitionReport { partition: 2, ..Default::default() }];
        assert_eq!(keeper.observe(report(7, second, parts, 0.4, 5.0)), Observed::Learned);
    }
    let zero = keeper.load(0).map(|l| l.cpu_ms_per_event_at(120_000)).unwrap_or_default();
    let one = keeper.load(1).map(|l| l.cpu_ms_per_event_at(120_000)).unwrap_or_default();
    assert!((zero - 1.0).abs() < 1e-6 && (one - 4.0).abs() < 1e-6, "{zero} {one}");
    assert!(keeper.load(2).is_none(), "a follower's partition is not the node's load");
    // The prior serves the rate-weighted mean cost: (200*1 + 50*4) / 250.
    let prior = keeper.latency(7).map(|l| *l.prior()).unwrap_or(Queue::mmc(1, 0.0));
    assert!((prior.service_time_ms - 1.6).abs() < 0.01, "{prior:?}");

    let trace = keeper.trace();
    assert_eq!(trace.nodes.len(), 1);
    assert_eq!(trace.nodes[0].samples.len(), 120);
    let events: u64 = trace.partitions.iter().flat_map(|p| &p.samples).map(|s| s.events).sum();
    assert_eq!(events, 120 * 250);
    let described = keeper.describe();
    assert_eq!(described["partitions"].as_array().map(Vec::len), Some(2));
    assert_eq!(described["cost"]["price_per_hour_in_use"], 0.5);
}

#[test]
fn a_resent_backlog_is_not_learned_twice() {
    let mut keeper = ModelKeeper::new(KeeperConfig::default());
    for second in 1..=10 {
        keeper.observe(report(1, second, vec![led(0, 100, 1.0)], 0.1, 2.0));
    }
    for second in 1..=10 {
        assert_eq!(keeper.observe(report(1, second, vec![led(0, 100, 1.0)], 0.1, 2.0)), Observed::Stale);
    }
    assert_eq!(keeper.reports(), 10);
    assert_eq!(keeper.trace().partitions[0].samples.len(), 10);
}

#[test]
fn the_latency_model_learns_only_from_intervals_with_enough_events() {
    let mut keeper = ModelKeeper::new(KeeperConfig { min_events_for_latency: 50, ..KeeperConfig::default() });
    for second in 1..=20 {
        keeper.observe(report(1, second, vec![led(0, 10, 1.0)], 0.01, 2.0));
    }
    assert_eq!(keeper.latency(1).map(|l| l.quality().samples), Some(0));
    for second in 21..=40 {
        keeper.observe(report(1, second, vec![led(0, 100, 1.0)], 0.1, 2.0));
    }
    assert_eq!(keeper.latency(1).map(|l| l.quality().samples), Some(20));
}

#[test]
fn the_history_is_bounded_and_clear_forgets() {
    let mut keeper = ModelKeeper::new(KeeperConfig { history_samples: 30, ..KeeperConfig::default() });
    for second in 1..=100 {
        keeper.observe(report(1, second, vec![led(0, 100, 1.0)], 0.1, 2.0));
    }
    let trace = keeper.trace();
    assert_eq!(trace.nodes[0].samples.len(), 30);
    assert_eq!(trace.partitions[0].samples.first().map(|s| s.at_ms), Some(71_000));
    keeper.clear();
    assert_eq!(keeper.reports(), 0);
    assert!(keeper.trace().nodes.is_empty());
}

#[test]
fn the_planner_compares_nodes_at_the_clusters_cost_per_event() {
    // Node 1 leads a partition of 10 ms events, node 2 leads nothing: each
    // node's own prior is in the service time of what it serves (10 ms
    // against the 1 ms default). Read as they are, node 2 would look ten
    // times faster at any load, and the planner would pile work onto it.
    let mut keeper = ModelKeeper::new(KeeperConfig::default());
    for second in 1..=30 {
        keeper.observe(report(1, second, vec![led(0, 40, 10.0)], 0.4, 300.0));
        keeper.observe(report(2, second, vec![], 0.0, 0.0));
    }
    let own = |node| keeper.latency(node).map_or(0.0, |l| l.predict_p99_ms(0.3));
    assert!(own(1) > 5.0 * own(2), "the nodes' own curves differ: {} {}", own(1), own(2));
    let inputs = keeper.planner_inputs();
    let planned = |node| inputs.models.curves.get(&node).map_or(0.0, |c| c.p99_ms(0.3));
    let (one, two) = (planned(1), planned(2));
    assert!((one - two).abs() <= 0.05 * one, "equal nodes at equal load: {one} against {two}");
}
