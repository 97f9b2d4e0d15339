//! Capacity planning: the cheapest cluster for a scenario. Counts of the
//! scenario's node types are tried in order of price per hour, each
//! simulated with the scenario's workload and failures, until one meets
//! the targets (p99 within the SLO, availability at least the target);
//! since every cheaper count was simulated first, that one is the
//! cheapest in the searched range. The frontier is the simulated clusters
//! no other beats on price, p99 and availability at once.

use serde::Serialize;

use crate::report::Summary;
use crate::scenario::{Failure, Scenario};

/// What a cluster must achieve over the scenario.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Targets {
    pub slo_p99_ms: f64,
    /// Share of the offered events answered within the timeout.
    pub availability: f64,
}

/// A target no cluster can be searched for; the message names it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadTarget(pub String);

impl Targets {
    /// Names the bad target, if any.
    pub fn validate(&self) -> Result<(), BadTarget> {
        if !(self.slo_p99_ms.is_finite() && self.slo_p99_ms > 0.0) {
            return Err(BadTarget(format!("--slo-p99-ms must be above 0, not {}", self.slo_p99_ms)));
        }
        if !(self.availability > 0.0 && self.availability <= 1.0) {
            return Err(BadTarget(format!(
                "--availability is a share in (0, 1], such as 0.999, not {}",
                self.availability
            )));
        }
        Ok(())
    }

    pub fn met_by(&self, summary: &Summary) -> bool {
        summary.p99_ms <= self.slo_p99_ms && summary.availability >= self.availability
    }
}

/// One simulated cluster.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Candidate {
    /// Nodes of each of the scenario's types, in their order.
    pub counts: Vec<u32>,
    pub price_per_hour: f64,
    pub meets: bool,
    pub summary: Summary,
}

/// What the search found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Planned {
    pub targets: Targets,
    /// Names of the node types the counts are of.
    pub node_types: Vec<String>,
    /// Every cluster simulated, cheapest first.
    pub simulated: Vec<Candidate>,
    /// Clusters passed over without a run: fewer nodes than the
    /// replication factor, or less capacity than the mean load.
    pub skipped: usize,
    /// Cheapest first.
    pub frontier: Vec<Candidate>,
    pub recommended: Option<Candidate>,
}

/// The scenario with `counts` nodes of each type. Failures of a node the
/// smaller cluster does not have are left out.
pub fn with_counts(s: &Scenario, counts: &[u32]) -> Scenario {
    let mut variant = s.clone();
    for (t, count) in variant.node_types.iter_mut().zip(counts) {
        t.count = *count;
    }
    let nodes = variant.node_count();
    variant.failures.retain(|f| match f {
        Failure::Crash { node, .. } | Failure::Slow { node, .. } => *node <= nodes,
        Failure::ZoneLoss { .. } | Failure::RollingRestart { .. } => true,
    });
    variant
}

fn price_per_hour(s: &Scenario, counts: &[u32]) -> f64 {
    s.node_types.iter().zip(counts).map(|(t, c)| t.price_per_hour * f64::from(*c)).sum()
}

/// Every count vector with each type from 0 to `max_count`, cheapest
/// first (ties: fewer nodes first, then in order).
pub fn count_vectors(s: &Scenario, max_count: u32) -> Vec<Vec<u32>> {
    let mut all: Vec<Vec<u32>> = vec![Vec::new()];
    for _ in &s.node_types {
        all = all.into_iter().flat_map(|v| (0..=max_count).map(move |c| [v.clone(), vec![c]].concat())).collect();
    }
    all.sort_by(|a, b| {
        price_per_hour(s, a)
            .total_cmp(&price_per_hour(s, b))
            .then(a.iter().sum::<u32>().cmp(&b.iter().sum::<u32>()))
            .then(a.cmp(b))
    });
    all
}

/// Whether a cluster cannot hold the workload at all: fewer nodes than
/// replicas, or fewer cores than the mean load needs (without followers).
fn hopeless(s: &Scenario, counts: &[u32], mean_cores: f64) -> bool {
    let nodes: u32 = counts.iter().sum();
    let cores: f64 = s.node_types.iter().zip(counts).map(|(t, c)| t.cores * t.speed * f64::from(*c)).sum();
    nodes < s.replication_factor.max(1) || cores < mean_cores
}

/// The mean CPU the workload needs, in cores of speed 1, sampled over the run.
fn mean_cores(s: &Scenario) -> f64 {
    let demand = crate::workload::Demand::of(s);
    let samples = 1000;
    let total: f64 = (0..samples)
        .map(|i| {
            let t_s = s.duration_s * f64::from(i) / f64::from(samples);
            demand.rate_per_s(t_s) * demand.cost(t_s).mean_ms / 1000.0
        })
        .sum();
    total / f64::from(samples)
}

/// Searches counts of up to `max_count` nodes per type for the cheapest
/// cluster that meets `targets`; `progress` hears (simulated, of at most).
pub fn search(s: &Scenario, targets: Targets, max_count: u32, mut progress: impl FnMut(usize, usize)) -> Planned {
    let vectors = count_vectors(s, max_count);
    let need = mean_cores(s);
    let mut policy_scenario = s.clone();
    policy_scenario.placement.policy.slo_p99_ms = targets.slo_p99_ms;
    let mut simulated = Vec::new();
    let mut skipped = 0;
    let mut recommended = None;
    for (i, counts) in vectors.iter().enumerate() {
        progress(i, vectors.len());
        if hopeless(s, counts, need) {
            skipped += 1;
            continue;
        }
        let summary = crate::fast::run(&with_counts(&policy_scenario, counts), |_| {}).summary;
        let candidate = Candidate {
            counts: counts.clone(),
            price_per_hour: price_per_hour(s, counts),
            meets: targets.met_by(&summary),
            summary,
        };
        let done = candidate.meets;
        simulated.push(candidate.clone());
        if done {
            recommended = Some(candidate);
            break;
        }
    }
    progress(vectors.len(), vectors.len());
    Planned {
        targets,
        node_types: s.node_types.iter().map(|t| t.name.clone()).collect(),
        frontier: frontier(&simulated),
        simulated,
        skipped,
        recommended,
    }
}

/// The candidates no other is at least as good as on price, p99 and
/// availability, and better on one; cheapest first.
pub fn frontier(candidates: &[Candidate]) -> Vec<Candidate> {
    let dominates = |a: &Candidate, b: &Candidate| {
        let no_worse = a.price_per_hour <= b.price_per_hour
            && a.summary.p99_ms <= b.summary.p99_ms
            && a.summary.availability >= b.summary.availability;
        let better = a.price_per_hour < b.price_per_hour
            || a.summary.p99_ms < b.summary.p99_ms
            || a.summary.availability > b.summary.availability;
        no_worse && better
    };
    let mut kept: Vec<Candidate> =
        candidates.iter().filter(|c| !candidates.iter().any(|o| dominates(o, c))).cloned().collect();
    kept.sort_by(|a, b| a.price_per_hour.total_cmp(&b.price_per_hour));
    kept
}

/// The frontier and the recommendation for a terminal.
pub fn planned_text(p: &Planned) -> String {
    let describe = |counts: &[u32]| {
        let parts: Vec<String> =
            p.node_types.iter().zip(counts).filter(|(_, c)| **c > 0).map(|(t, c)| format!("{c} x {t}")).collect();
        parts.join(" + ")
    };
    let mut out = format!(
        "targets: p99 <= {} ms, availability >= {}%; {} clusters simulated, {} passed over\n\n",
        p.targets.slo_p99_ms,
        p.targets.availability * 100.0,
        p.simulated.len(),
        p.skipped
    );
    out.push_str("| cluster | price per hour | p99 ms | availability | meets |\n|---|---|---|---|---|\n");
    for c in &p.frontier {
        out.push_str(&format!(
            "| {} | {:.3} | {:.2} | {:.4}% | {} |\n",
            describe(&c.counts),
            c.price_per_hour,
            c.summary.p99_ms,
            c.summary.availability * 100.0,
            if c.meets { "yes" } else { "no" }
        ));
    }
    match &p.recommended {
        Some(c) => out.push_str(&format!(
            "\nrecommended: {} at {:.3} per hour (p99 {:.2} ms, availability {:.4}%, cost over the run {:.2})\n",
            describe(&c.counts),
            c.price_per_hour,
            c.summary.p99_ms,
            c.summary.availability * 100.0,
            c.summary.cost
        )),
        None => out.push_str(
            "\nno cluster in the searched range meets the targets: raise --max-count, add a node type, or relax the targets\n",
        ),
    }
    out
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
