use crate::scenario::Scenario;

/// `cores` cores at utilisation `rho`.
fn mmc(cores: u32, rho: f64, duration_s: u32) -> Scenario {
    crate::test_scenarios::one_node(cores, rho * f64::from(cores) * 1000.0, duration_s, 3)
}

fn exact(s: &Scenario) -> crate::report::Summary {
    crate::exact::run(s, |_| {}).unwrap_or_else(|e| panic!("{e}")).summary
}

#[test]
fn the_exact_engine_matches_the_mm1_formula() {
    for rho in [0.5, 0.8] {
        let summary = exact(&mmc(1, rho, 1800));
        let p99 = -(0.01f64).ln() / (1.0 - rho);
        assert!((summary.p99_ms / p99 - 1.0).abs() < 0.1, "rho {rho}: {} ms against {p99} ms", summary.p99_ms);
        assert!((summary.events / (rho * 1000.0 * 1800.0) - 1.0).abs() < 0.01);
    }
}

#[test]
fn fast_and_exact_agree_on_mmc_p99() {
    for (cores, rho) in [(1, 0.7), (4, 0.7), (4, 0.9), (8, 0.8)] {
        let s = mmc(cores, rho, 900);
        let fast = crate::fast::run(&s, |_| {}).summary.p99_ms;
        let exact = exact(&s).p99_ms;
        assert!((fast / exact - 1.0).abs() < 0.1, "{cores} cores at {rho}: fast {fast} ms, exact {exact} ms");
    }
}

#[test]
fn the_exact_engine_is_deterministic_and_refuses_what_it_cannot_run() {
    let s = mmc(2, 0.6, 60);
    assert_eq!(exact(&s), exact(&s));
    let mut other = s.clone();
    other.seed = 4;
    assert_ne!(exact(&other).p99_ms.to_bits(), 0, "runs with another seed");
    let mut planned = s;
    planned.placement.mode = eddy_core::PlacementMode::Auto;
    assert!(crate::exact::run(&planned, |_| {}).map(|_| ()).unwrap_err().to_string().contains("placement.mode"));
}

/// Six nodes, 64 partitions of three replicas, placement off, events of
/// an exponential 2 ms (the M/M/c case the engines agree on) at a rate
/// that five nodes carry too.
fn six_nodes() -> Scenario {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/skewed.toml");
    let mut s = Scenario::load(std::path::Path::new(path)).unwrap_or_else(|e| panic!("{e}"));
    s.duration_s = 300.0;
    s.placement.mode = eddy_core::PlacementMode::Off;
    s.workload.rate = Some(crate::scenario::RateCurve::Constant { events_per_s: 2000.0 });
    s.workload.costs.truncate(1);
    s.workload.costs[0].cpu_ms = 2.0;
    s.workload.costs[0].distribution = crate::scenario::CostDistribution::Exponential;
    s
}

#[test]
fn both_engines_lose_the_same_events_to_a_crash_and_slow_down_alike() {
    use crate::scenario::Failure;
    let mut s = six_nodes();
    s.failures = vec![Failure::Crash { node: 2, at_s: 100.0, for_s: 100.0 }];
    let (fast, exact_run) = (crate::fast::run(&s, |_| {}).summary, exact(&s));
    // Node 2's leaderships go unanswered for the two seconds of their election.
    let lost = |summary: &crate::report::Summary| 1.0 - summary.availability;
    assert!(lost(&fast) > 1e-4 && lost(&exact_run) > 1e-4, "{fast:?} {exact_run:?}");
    assert!((lost(&exact_run) / lost(&fast) - 1.0).abs() < 0.1, "{} against {}", lost(&exact_run), lost(&fast));
    // A node down for a third of the run is not paid for meanwhile.
    assert!((exact_run.cost - fast.cost).abs() < 1e-9, "{} against {}", exact_run.cost, fast.cost);
    assert!(exact_run.cost < 6.0 * 0.1 * 300.0 / 3600.0);
    s.failures = vec![Failure::Slow { node: 1, factor: 0.5, at_s: 0.0, for_s: 300.0 }];
    let (fast, exact_run) = (crate::fast::run(&s, |_| {}).summary, exact(&s));
    let calm = crate::fast::run(&six_nodes(), |_| {}).summary;
    assert!(fast.p99_ms > 1.2 * calm.p99_ms, "{} against {}", fast.p99_ms, calm.p99_ms);
    let (p99_exact, p99_fast) = (exact_run.p99_ms, fast.p99_ms);
    // A mixture of a slowed node's tail with five calm ones: looser than
    // the single-queue cases above.
    assert!((p99_exact / p99_fast - 1.0).abs() < 0.15, "{p99_exact} against {p99_fast}");
}
