use crate::scenario::Scenario;

/// One core at `events_per_s` for ten minutes.
fn mm1(events_per_s: f64) -> Scenario {
    crate::test_scenarios::one_node(1, events_per_s, 600, 0)
}

fn skewed() -> Scenario {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/skewed.toml");
    let mut s = Scenario::load(std::path::Path::new(path)).unwrap_or_else(|e| panic!("{e}"));
    s.duration_s = 300.0;
    s
}

#[test]
fn one_node_matches_the_exact_mm1_response_time() {
    for (rate, rho) in [(500.0, 0.5), (800.0, 0.8), (900.0, 0.9)] {
        let run = crate::fast::run(&mm1(rate), |_| {});
        // M/M/1: the response time is exponential with rate mu - lambda.
        let mu_minus_lambda = (1.0 - rho) / 1.0;
        let exact = |q: f64| -(1.0 - q).ln() / mu_minus_lambda;
        for (got, q) in [(run.summary.p50_ms, 0.5), (run.summary.p99_ms, 0.99), (run.summary.p999_ms, 0.999)] {
            assert!((got / exact(q) - 1.0).abs() < 0.05, "rho {rho} q {q}: {got} ms, exact {} ms", exact(q));
        }
        assert!((run.summary.events - rate * 600.0).abs() < 1e-6 * rate * 600.0);
        assert!(run.summary.availability > 1.0 - 1e-9, "{}", run.summary.availability);
        assert!((run.summary.cost - 600.0 / 3600.0).abs() < 1e-9, "one node at 1 per hour for 10 minutes");
    }
}

#[test]
fn the_same_seed_gives_the_same_run() {
    let a = crate::fast::run(&skewed(), |_| {});
    let b = crate::fast::run(&skewed(), |_| {});
    let json = |r: &crate::fast::Run| serde_json::to_string(&(&r.summary, &r.series)).unwrap_or_default();
    assert_eq!(json(&a), json(&b));
    assert!(a.summary.planner_calls > 0);
}

#[test]
fn a_crashed_node_costs_availability_only_for_the_election() {
    let mut s = skewed();
    s.failures = vec![crate::scenario::Failure::Crash { node: 1, at_s: 100.0, for_s: 100.0 }];
    let run = crate::fast::run(&s, |_| {});
    let availability = run.summary.availability;
    // Node 1 leads about a sixth of the events; they go unanswered for
    // the two seconds of the election out of 300.
    assert!(availability < 1.0 && availability > 1.0 - 3.0 / 300.0, "{availability}");
    let mut single = mm1(500.0);
    single.failures = vec![crate::scenario::Failure::Crash { node: 1, at_s: 100.0, for_s: 60.0 }];
    let lost = crate::fast::run(&single, |_| {}).summary.availability;
    assert!((lost - (1.0 - 60.0 / 600.0)).abs() < 0.01, "with one replica a minute is lost: {lost}");
}

#[test]
fn simulated_telemetry_teaches_every_node_its_latency_curve() {
    let mut s = skewed();
    s.duration_s = 3600.0;
    let taught = crate::fast::run(&s, |_| {}).summary;
    assert_eq!(taught.nodes_on_learned_curve, 6, "{taught:?}");
    // Without reports the models have nothing to learn from.
    s.controller.telemetry_interval_s = 1e9;
    assert_eq!(crate::fast::run(&s, |_| {}).summary.nodes_on_learned_curve, 0);
}
