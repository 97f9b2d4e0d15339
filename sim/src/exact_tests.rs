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
    let mut crash = s.clone();
    crash.failures = vec![crate::scenario::Failure::Crash { node: 1, at_s: 1.0, for_s: 1.0 }];
    assert!(crate::exact::run(&crash, |_| {}).map(|_| ()).unwrap_err().to_string().contains("failures"));
    let mut planned = s;
    planned.placement.mode = eddy_core::PlacementMode::Auto;
    assert!(crate::exact::run(&planned, |_| {}).map(|_| ()).unwrap_err().to_string().contains("placement.mode"));
}
