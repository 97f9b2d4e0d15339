//! Placement of partition replicas and leaders on nodes.
//!
//! Everything here is a pure function of its input: no I/O, no clock, no
//! randomness, so the live controller and the simulator get the same plan
//! for the same input.
//!
//! - [`InitialPlacer`] fills an empty table when the cluster starts.
//! - [`plan`] is the planner: `plan(snapshot, models, policy) -> Plan`.
//!   Behind it, one search with four objectives ([`PolicyName`]): the
//!   adaptive one (predicted p99 against the SLO from each node's latency
//!   curve, the price of the nodes in use, and the time moves take) and the
//!   baselines `static`, `count` and `utilisation` for comparison.
//!
//! A plan repairs first (leaders and replicas on nodes that are not up,
//! missing replicas, zone spread), then improves greedily: the move with
//! the best gain per second of move time, leader transfers being the
//! cheapest, until no move gains at least the policy's `min_gain` or the
//! round's budget is spent. Planning again on a placement the planner left
//! (without running out of budget) therefore proposes nothing.

mod capacity;
pub mod curve;
mod initial;
pub mod keeper;
pub mod plan;
pub mod policy;
mod repair;
mod score;
mod search;
pub mod snapshot;
mod state;

pub use curve::LatencyCurve;
pub use initial::InitialPlacer;
pub use plan::{Advice, ClusterMetrics, Effect, Move, Plan, PlannedOperation};
pub use policy::{PlacementMode, PlacementSettings, Policy, PolicyName};
pub use snapshot::{ClusterSnapshot, Models, MoveTimes, NodeView, PartitionLoadView, PartitionView};

use eddy_core::ClusterMap;

/// What the initial placer sees of the cluster.
#[derive(Debug, Clone, Copy)]
pub struct Snapshot<'a> {
    pub map: &'a ClusterMap,
}

/// The initial placement policy: maps a snapshot to table operations.
///
/// Implementations must be deterministic, and planning again on a map to
/// which their own plan was applied must propose nothing.
pub trait Placer {
    fn name(&self) -> &'static str;
    fn plan(&self, snapshot: &Snapshot<'_>) -> eddy_core::Plan;
}

/// A planner: deterministic, and stable on its own output.
pub trait Planner {
    fn name(&self) -> &'static str;
    fn plan(&self, snapshot: &ClusterSnapshot, models: &Models, policy: &Policy) -> Plan;
}

/// The planner `policy.name` names.
pub fn planner(name: PolicyName) -> &'static dyn Planner {
    match name {
        PolicyName::Adaptive => &Adaptive,
        PolicyName::Static => &Static,
        PolicyName::Count => &Count,
        PolicyName::Utilisation => &Utilisation,
    }
}

/// Plans with the planner the policy names.
pub fn plan(snapshot: &ClusterSnapshot, models: &Models, policy: &Policy) -> Plan {
    planner(policy.name).plan(snapshot, models, policy)
}

/// Response time, availability and cost, with the learned models.
pub struct Adaptive;
/// Hash placement: repairs only, never balances.
pub struct Static;
/// Balances replica and leader counts.
pub struct Count;
/// Balances utilisation without the latency model.
pub struct Utilisation;

macro_rules! planner_named {
    ($type:ident, $name:expr, $policy:expr, $drains:expr) => {
        impl Planner for $type {
            fn name(&self) -> &'static str {
                $name.as_str()
            }

            fn plan(&self, snapshot: &ClusterSnapshot, models: &Models, policy: &Policy) -> Plan {
                let policy = Policy { name: $policy, ..policy.clone() };
                run(snapshot, models, &policy, $drains)
            }
        }
    };
}

planner_named!(Adaptive, PolicyName::Adaptive, PolicyName::Adaptive, true);
planner_named!(Static, PolicyName::Static, PolicyName::Static, false);
planner_named!(Count, PolicyName::Count, PolicyName::Count, false);
planner_named!(Utilisation, PolicyName::Utilisation, PolicyName::Utilisation, false);

fn run(snapshot: &ClusterSnapshot, models: &Models, policy: &Policy, drains: bool) -> Plan {
    let state = state::State::new(snapshot, models, policy);
    let score = score::Score::new(policy, &state);
    let before = capacity::metrics(&state, policy, &score);
    let mut search = search::Search::new(state, score, policy, models.move_times);
    search.repair();
    let mut advice = Vec::new();
    let draining = drains && policy.allow_scale_in;
    // Passes until one neither drains nor improves: that placement is what
    // planning it again starts from, so planning it again proposes nothing.
    // Each pass drains a node (nodes in use only decrease) or improves (the
    // objective only decreases); the guard is for safety.
    for _ in 0..search.state.nodes.len() * 4 + 16 {
        // The node to drain is chosen before improving, so that the
        // improvement does not move work onto it.
        let drain = if draining { search.drainable() } else { None };
        search.excluded = drain.as_ref().map(|d| d.node);
        search.use_empty = !draining || under_pressure(&search, policy);
        let before = search.operations.len();
        search.improve();
        if search.exhausted {
            break;
        }
        // The improvement may have shifted load: drain against the loads now.
        let Some(drain) = drain.and_then(|d| search.try_drain(d.node)) else {
            if search.operations.len() == before {
                break;
            }
            continue;
        };
        let node = search.state.nodes[drain.node].id;
        advice.push(drain_advice(node, drain.saving_per_hour));
        for change in drain.moves {
            if !search.room() {
                break;
            }
            let candidate = search.evaluate(change);
            search.record(candidate, format!("drains node {node}: not needed"));
        }
    }
    if drains
        && !draining
        && let Some(drain) = search.drainable()
    {
        advice.push(drain_advice(search.state.nodes[drain.node].id, drain.saving_per_hour));
    }
    let after = capacity::metrics(&search.state, policy, &search.score);
    let mut unmet = search.unmet;
    unmet.extend(capacity::headroom_unmet(&search.state, policy));
    advice.extend(capacity::scale_out(&search.state, policy, &after));
    Plan {
        policy: policy.name.as_str().to_owned(),
        operations: search.operations,
        before,
        after,
        advice,
        unmet,
        budget_exhausted: search.exhausted,
    }
}

fn drain_advice(node: eddy_core::NodeId, saving_per_hour: f64) -> Advice {
    Advice::Drain {
        node,
        saving_per_hour,
        reason: "the other nodes in use carry its load within the ceiling and the SLO".to_owned(),
    }
}

/// Some node above the ceiling or predicted to miss the SLO.
fn under_pressure(search: &search::Search<'_>, policy: &Policy) -> bool {
    search.state.nodes.iter().any(|n| {
        let u = n.utilisation(&n.load);
        u > policy.utilisation_ceiling || (n.load.leader_rate > 0.0 && n.curve.p99_ms(u) > policy.slo_p99_ms)
    })
}

#[cfg(test)]
mod planner_props;
#[cfg(test)]
mod planner_tests;
