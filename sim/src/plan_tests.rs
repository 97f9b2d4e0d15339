use super::*;

fn capacity() -> Scenario {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/capacity.toml");
    Scenario::load(std::path::Path::new(path)).unwrap_or_else(|e| panic!("{e}"))
}

const TARGETS: Targets = Targets { slo_p99_ms: 30.0, availability: 0.999 };

/// The scenario as `plan` runs a candidate: its counts, the SLO of the targets.
fn simulate_again(s: &Scenario, counts: &[u32]) -> Summary {
    let mut variant = with_counts(s, counts);
    variant.placement.policy.slo_p99_ms = TARGETS.slo_p99_ms;
    crate::fast::run(&variant, |_| {}).summary
}

#[test]
fn the_recommended_cluster_meets_the_targets_and_the_next_cheaper_frontier_point_does_not() {
    let s = capacity();
    let planned = search(&s, TARGETS, 8, |_, _| {});
    let recommended = planned.recommended.clone().unwrap_or_else(|| panic!("no recommendation: {planned:?}"));
    assert!(TARGETS.met_by(&simulate_again(&s, &recommended.counts)), "{recommended:?}");
    let at = planned.frontier.iter().position(|c| c.counts == recommended.counts);
    let at = at.unwrap_or_else(|| panic!("the recommendation is on the frontier: {planned:?}"));
    assert!(at > 0, "some cheaper cluster was simulated and is on the frontier");
    let cheaper = &planned.frontier[at - 1];
    assert!(cheaper.price_per_hour < recommended.price_per_hour);
    assert!(!TARGETS.met_by(&simulate_again(&s, &cheaper.counts)), "{cheaper:?}");
    // Cheapest in the range: every cluster simulated before it failed.
    for c in planned.simulated.iter().filter(|c| c.counts != recommended.counts) {
        assert!(c.price_per_hour <= recommended.price_per_hour && !c.meets, "{c:?}");
    }
}

#[test]
fn counts_come_cheapest_first_and_failures_of_missing_nodes_are_left_out() {
    let mut s = capacity();
    let vectors = count_vectors(&s, 3);
    assert_eq!(vectors.len(), 16);
    let prices: Vec<f64> = vectors.iter().map(|v| price_per_hour(&s, v)).collect();
    assert!(prices.windows(2).all(|w| w[0] <= w[1]), "{prices:?}");
    s.failures.push(Failure::Crash { node: 5, at_s: 0.0, for_s: 1.0 });
    assert_eq!(with_counts(&s, &[2, 2]).failures.len(), 1, "only the zone loss: node 5 does not exist");
    assert_eq!(with_counts(&s, &[3, 2]).failures.len(), 2);
    assert_eq!(with_counts(&s, &[3, 2]).node_count(), 5);
}

#[test]
fn the_frontier_keeps_what_nothing_beats_on_price_p99_and_availability() {
    let summary = crate::fast::run(&crate::test_scenarios::one_node(1, 100.0, 10, 0), |_| {}).summary;
    let candidate = |price: f64, p99_ms: f64, availability: f64| Candidate {
        counts: vec![],
        price_per_hour: price,
        meets: false,
        summary: Summary { p99_ms, availability, ..summary.clone() },
    };
    let all =
        [candidate(1.0, 50.0, 0.99), candidate(2.0, 60.0, 0.99), candidate(2.0, 40.0, 0.98), candidate(3.0, 10.0, 1.0)];
    let kept: Vec<f64> = frontier(&all).iter().map(|c| c.summary.p99_ms).collect();
    assert_eq!(kept, vec![50.0, 40.0, 10.0], "the dearer and slower one goes");
}

#[test]
fn targets_out_of_range_are_named() {
    let bad = Targets { slo_p99_ms: 30.0, availability: 99.9 };
    assert!(bad.validate().unwrap_err().to_string().contains("--availability"));
    let bad = Targets { slo_p99_ms: 0.0, availability: 0.99 };
    assert!(bad.validate().unwrap_err().to_string().contains("--slo-p99-ms"));
}
