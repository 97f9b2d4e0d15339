//! `eddy-sim compare`: every placement policy on the same scenario and
//! seed, so that the differences are the policies' alone.

use eddy_core::PolicyName;

use crate::report::Summary;
use crate::scenario::Scenario;

/// One summary per policy, in the order of [`PolicyName::ALL`];
/// `progress` hears each policy's name and share done.
pub fn compare(s: &Scenario, mut progress: impl FnMut(PolicyName, f64)) -> Vec<Summary> {
    PolicyName::ALL
        .iter()
        .map(|name| {
            let mut variant = s.clone();
            variant.placement.policy.name = *name;
            crate::fast::run(&variant, |done| progress(*name, done)).summary
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped(name: &str) -> Scenario {
        let path = format!("{}/scenarios/{name}.toml", env!("CARGO_MANIFEST_DIR"));
        Scenario::load(std::path::Path::new(&path)).unwrap_or_else(|e| panic!("{e}"))
    }

    fn by_policy<'a>(rows: &'a [Summary], policy: &str) -> &'a Summary {
        rows.iter().find(|r| r.policy == policy).unwrap_or_else(|| panic!("no row for {policy}"))
    }

    /// Adaptive wins on p99 or on cost, without giving up SLO attainment
    /// (a tenth of a percentage point at most).
    fn adaptive_beats(rows: &[Summary], other: &str) -> bool {
        let (a, o) = (by_policy(rows, "adaptive"), by_policy(rows, other));
        let equal_attainment = a.slo_attainment >= o.slo_attainment - 0.001;
        equal_attainment && (a.p99_ms < o.p99_ms || a.cost < o.cost)
    }

    #[test]
    fn adaptive_beats_static_and_count_on_the_shipped_skewed_scenario() {
        let rows = compare(&shipped("skewed"), |_, _| {});
        assert!(adaptive_beats(&rows, "static") && adaptive_beats(&rows, "count"), "{rows:#?}");
        // Skewed is about response time: the win is on p99 at equal cost.
        let (a, s) = (by_policy(&rows, "adaptive"), by_policy(&rows, "static"));
        assert!(a.p99_ms < 0.6 * s.p99_ms, "{} against {}", a.p99_ms, s.p99_ms);
    }

    #[test]
    fn adaptive_beats_static_and_count_on_the_shipped_daily_scenario() {
        let rows = compare(&shipped("daily"), |_, _| {});
        assert!(adaptive_beats(&rows, "static") && adaptive_beats(&rows, "count"), "{rows:#?}");
        // Daily is about cost: the quiet hours need a fraction of the nodes.
        let (a, s) = (by_policy(&rows, "adaptive"), by_policy(&rows, "static"));
        assert!(a.cost < 0.5 * s.cost, "{} against {}", a.cost, s.cost);
    }
}
