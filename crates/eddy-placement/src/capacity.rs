//! The cluster's size: predicted metrics of a placement, headroom for the
//! loss of a node or zone, advice to add nodes, and draining nodes that
//! are not needed.

use crate::plan::{Advice, ClusterMetrics, Move};
use crate::policy::Policy;
use crate::score::Score;
use crate::search::Search;
use crate::state::{Load, State, utilisation};

/// Draining must leave this share of the ceiling and of the SLO free, so
/// that a small rise in load does not call the node straight back.
const DRAIN_MARGIN: f64 = 0.9;
/// Most expensive nodes tried for draining per step.
const DRAIN_CANDIDATES: usize = 3;

pub(crate) fn metrics(state: &State, policy: &Policy, score: &Score) -> ClusterMetrics {
    let mut out = ClusterMetrics::default();
    let (mut weighted, mut met) = (0.0, 0.0);
    for n in &state.nodes {
        if n.in_use() {
            out.nodes_in_use += 1;
            out.price_per_hour += n.price_per_hour;
        }
        if n.is_up() {
            out.utilisation_max = out.utilisation_max.max(n.utilisation(&n.load));
        }
        out.objective += score.node(n, &n.load);
        if n.load.leader_rate > 0.0 {
            let p99 = n.curve.p99_ms(n.utilisation(&n.load));
            weighted += n.load.leader_rate * p99;
            out.p99_ms_max = out.p99_ms_max.max(p99);
            if p99 <= policy.slo_p99_ms {
                met += n.load.leader_rate;
            }
        }
    }
    if state.total_rate > 0.0 {
        out.p99_ms_mean = weighted / state.total_rate;
        out.slo_attainment = met / state.total_rate;
    } else {
        out.slo_attainment = 1.0;
    }
    if state.up_price_per_hour > 0.0 {
        out.objective += policy.cost_weight * out.price_per_hour / state.up_price_per_hour;
    }
    out
}

/// Cores the cluster needs beyond what it has to keep every node under the
/// ceiling after losing its largest node (or zone), if any.
fn headroom_shortfall(state: &State, policy: &Policy, without: Option<usize>) -> Option<(f64, String)> {
    let up: Vec<_> =
        state.nodes.iter().enumerate().filter(|(at, n)| n.is_up() && Some(*at) != without).map(|(_, n)| n).collect();
    // Without replicas there is no failover to absorb a loss.
    if state.rf < 2 || up.is_empty() {
        return None;
    }
    let load: f64 = state.nodes.iter().map(|n| n.load.cores()).sum();
    let capacity: f64 = up.iter().map(|n| n.capacity_cores).sum();
    let (largest, what) = if policy.zone_headroom {
        let mut zones = vec![0.0; state.zones.len()];
        for n in &up {
            zones[n.zone] += n.capacity_cores;
        }
        (zones.iter().copied().fold(0.0, f64::max), "zone")
    } else {
        (up.iter().map(|n| n.capacity_cores).fold(0.0, f64::max), "node")
    };
    let needed = load / policy.utilisation_ceiling - (capacity - largest);
    (needed > 1e-9).then(|| {
        (
            needed,
            format!(
                "losing the largest {what} ({largest:.1} cores) would put {load:.2} cores of load on {:.1} cores, above the {:.0}% ceiling",
                capacity - largest,
                policy.utilisation_ceiling * 100.0
            ),
        )
    })
}

/// Advice to add nodes: when the headroom is short, or when the plan still
/// leaves a node above the ceiling or the SLO missed.
pub(crate) fn scale_out(state: &State, policy: &Policy, after: &ClusterMetrics) -> Option<Advice> {
    let like = state
        .nodes
        .iter()
        .filter(|n| n.is_up() && n.capacity_cores > 0.0)
        .min_by(|a, b| (a.price_per_hour / a.capacity_cores).total_cmp(&(b.price_per_hour / b.capacity_cores)))?;
    let load: f64 = state.nodes.iter().map(|n| n.load.cores()).sum();
    let capacity: f64 = state.nodes.iter().filter(|n| n.is_up()).map(|n| n.capacity_cores).sum();
    let (needed, reason) = if let Some(short) = headroom_shortfall(state, policy, None) {
        short
    } else if after.utilisation_max > policy.utilisation_ceiling || after.slo_attainment < 1.0 {
        let needed = (load / policy.utilisation_ceiling - capacity).max(like.capacity_cores * 0.5);
        let reason = format!(
            "predicted after this plan: busiest node at {:.0}%, {:.1}% of events within the {} ms SLO",
            after.utilisation_max * 100.0,
            after.slo_attainment * 100.0,
            policy.slo_p99_ms
        );
        (needed, reason)
    } else {
        return None;
    };
    Some(Advice::ScaleOut {
        count: (needed / like.capacity_cores).ceil().max(1.0) as usize,
        like: like.id,
        capacity_cores: like.capacity_cores,
        price_per_hour: like.price_per_hour,
        reason,
    })
}

pub(crate) fn headroom_unmet(state: &State, policy: &Policy) -> Option<String> {
    headroom_shortfall(state, policy, None).map(|(_, reason)| format!("{reason}; add capacity"))
}

/// A node that can be drained: the moves that empty it and the saving.
pub(crate) struct Drain {
    pub node: usize,
    pub moves: Vec<Move>,
    pub saving_per_hour: f64,
}

impl Search<'_> {
    /// The most expensive node in use whose replicas the other nodes in use
    /// can take with margin to the ceiling, the SLO and the headroom, when
    /// the saving outweighs the latency and the moves.
    pub fn drainable(&self) -> Option<Drain> {
        let mut candidates: Vec<usize> = (0..self.state.nodes.len())
            .filter(|at| {
                let n = &self.state.nodes[*at];
                n.is_up() && n.in_use() && n.price_per_hour > 0.0
            })
            .collect();
        candidates.sort_by(|a, b| {
            let (na, nb) = (&self.state.nodes[*a], &self.state.nodes[*b]);
            nb.price_per_hour.total_cmp(&na.price_per_hour).then(na.id.cmp(&nb.id))
        });
        candidates.into_iter().take(DRAIN_CANDIDATES).find_map(|at| self.try_drain(at))
    }

    pub fn try_drain(&self, node: usize) -> Option<Drain> {
        let state = &self.state;
        let mut loads: Vec<Load> = state.nodes.iter().map(|n| n.load).collect();
        let mut moves = Vec::new();
        let mut move_s = 0.0;
        for &part in &state.nodes[node].parts {
            let p = &state.parts[part];
            if p.frozen {
                return None;
            }
            let carried = p.load_of(p.leader == Some(node));
            let zones = state.zone_count(part, None, None);
            // The zones the other replicas keep; a target keeps the spread
            // if it brings back the zone the drained node leaves (this is
            // zone_count with the target, without one count per candidate).
            let kept: Vec<usize> = p.replicas.iter().filter(|r| **r != node).map(|r| state.nodes[*r].zone).collect();
            let kept_zones = state.zone_count(part, Some(node), None);
            let keeps_spread = |t: usize| kept_zones + usize::from(!kept.contains(&state.nodes[t].zone)) >= zones;
            let target = (0..state.nodes.len())
                .filter(|t| {
                    let n = &state.nodes[*t];
                    *t != node && n.is_up() && n.in_use() && !p.replicas.contains(t) && keeps_spread(*t)
                })
                .map(|t| (utilisation(loads[t].plus(&carried).cores(), state.nodes[t].capacity_cores), t))
                .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)))?;
            if target.0 > DRAIN_MARGIN * self.policy.utilisation_ceiling {
                return None;
            }
            loads[target.1] = loads[target.1].plus(&carried);
            loads[node] = loads[node].minus(&carried);
            moves.push(Move::MoveReplica { partition: p.id, from: state.nodes[node].id, to: state.nodes[target.1].id });
            move_s += self.times.replica_move_s(p.size_bytes);
        }
        let mut latency_rise = 0.0;
        for (at, n) in state.nodes.iter().enumerate() {
            if loads[at] == n.load {
                continue;
            }
            let p99 = n.curve.p99_ms(n.utilisation(&loads[at]));
            if loads[at].leader_rate > 0.0 && p99 > DRAIN_MARGIN * self.policy.slo_p99_ms {
                return None;
            }
            latency_rise += self.score.node(n, &loads[at]) - self.score.node(n, &n.load);
        }
        if headroom_shortfall(state, self.policy, Some(node)).is_some() {
            return None;
        }
        let saving_per_hour = state.nodes[node].price_per_hour;
        let saving = self.policy.cost_weight * saving_per_hour / state.up_price_per_hour.max(1e-9);
        let gain = saving - latency_rise - self.policy.move_weight_per_s * move_s;
        (gain > self.policy.min_gain).then_some(Drain { node, moves, saving_per_hour })
    }
}
