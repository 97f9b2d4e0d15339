//! The exact engine: event by event, to check the fast engine's queueing
//! model. Arrivals are Poisson at the workload's rate (constant within a
//! step), each goes to a partition by the key shares and to that
//! partition's leader, and costs a draw from its type's distribution;
//! each node serves in arrival order on `max(1, floor(cores))` servers,
//! each slowed so that together they deliver the node's cores, as the
//! fast engine's queue assumes. It runs the initial placement without a
//! planner; failures act as in the fast engine: down nodes answer
//! nothing, a lost leader's partition waits `election_s` for a successor
//! (drawn alike), and slow nodes serve slower. Work queued on a node when
//! it goes down still counts as served.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Exp, LogNormal};

use std::collections::BTreeSet;

use eddy_core::NodeId;
use eddy_placement::ClusterSnapshot;

use crate::cluster::{failures_at, initial_snapshot, nodes};
use crate::fast::Run;
use crate::histogram::Histogram;
use crate::report::Summary;
use crate::scenario::{CostDistribution, EventCost, Scenario};
use crate::spread::index_of;
use crate::workload::{KeySpace, rate_per_s};

/// Why a scenario cannot run in the exact engine.
#[derive(Debug, thiserror::Error)]
pub enum ExactError {
    #[error("the exact engine runs the initial placement only: set `placement.mode` to \"off\"")]
    Planner,
    #[error("cannot draw event costs: {0}")]
    Costs(String),
    #[error("the exact engine draws events from `workload.rate` and `workload.costs`; it does not replay traces")]
    Trace,
}

/// An event type's share and how its cost is drawn.
enum CostDraw {
    Constant(f64),
    Exponential(Exp<f64>),
    Lognormal(LogNormal<f64>),
}

fn cost_draws(costs: &[EventCost]) -> Result<(Vec<f64>, Vec<CostDraw>), ExactError> {
    let total: f64 = costs.iter().map(|c| c.share).sum();
    let mut cumulative = Vec::with_capacity(costs.len());
    let mut draws = Vec::with_capacity(costs.len());
    let mut sum = 0.0;
    for cost in costs {
        sum += cost.share / total;
        cumulative.push(sum);
        let m = cost.cpu_ms;
        draws.push(match cost.distribution {
            _ if m <= 0.0 => CostDraw::Constant(0.0),
            CostDistribution::Deterministic => CostDraw::Constant(m),
            CostDistribution::Exponential => {
                CostDraw::Exponential(Exp::new(1.0 / m).map_err(|e| ExactError::Costs(e.to_string()))?)
            }
            // The underlying normal's mean keeps the lognormal's mean at m.
            CostDistribution::Lognormal { sigma } => CostDraw::Lognormal(
                LogNormal::new(m.ln() - sigma * sigma / 2.0, sigma).map_err(|e| ExactError::Costs(e.to_string()))?,
            ),
        });
    }
    Ok((cumulative, draws))
}

/// The index a uniform draw `u` falls on in a cumulative share list.
fn pick(cumulative: &[f64], u: f64) -> usize {
    cumulative.partition_point(|c| *c < u).min(cumulative.len().saturating_sub(1))
}

/// Runs `s` event by event.
pub fn run(s: &Scenario, mut progress: impl FnMut(f64)) -> Result<Run, ExactError> {
    if s.placement.mode != eddy_core::PlacementMode::Off {
        return Err(ExactError::Planner);
    }
    let Some(rate) = &s.workload.rate else {
        return Err(ExactError::Trace);
    };
    let nodes = nodes(s);
    let cluster = initial_snapshot(s, &nodes);
    let keys = KeySpace::new(&s.workload, s.partitions, s.seed);
    let (type_shares, draws) = cost_draws(&s.workload.costs)?;
    let mut rng = StdRng::seed_from_u64(s.seed);
    // Per node: when each server is next free (ms), and how it is slowed.
    let mut servers: Vec<Vec<f64>> = nodes.iter().map(|n| vec![0.0; n.cores.floor().max(1.0) as usize]).collect();
    let slowdown: Vec<f64> = nodes.iter().map(|n| n.cores.floor().max(1.0) / n.cores / n.speed).collect();
    let mut leaders = Leaders::new(&cluster);
    let hosts: Vec<bool> =
        nodes.iter().map(|n| cluster.partitions.iter().any(|p| p.replicas.contains(&n.id))).collect();
    let mut in_use_cost = 0.0;
    let mut latency = Histogram::default();
    let mut offered = 0.0;
    let steps = (s.duration_s / s.step_s).ceil() as u64;
    let mut now_ms: f64 = 0.0;
    for step in 0..steps {
        let start_ms = step as f64 * s.step_s * 1000.0;
        let end_ms = start_ms + s.step_s * 1000.0;
        let rate_per_ms = rate_per_s(rate, start_ms / 1000.0) / 1000.0;
        let (down, slow) = failures_at(s, &nodes, start_ms / 1000.0);
        leaders.follow(s, &cluster, &down, step, start_ms / 1000.0);
        let speed: Vec<f64> = nodes.iter().map(|n| slow.get(&n.id).copied().unwrap_or(1.0)).collect();
        in_use_cost += nodes
            .iter()
            .enumerate()
            .filter(|(i, n)| hosts[*i] && !down.contains(&n.id))
            .map(|(_, n)| n.price_per_hour)
            .sum::<f64>()
            * s.step_s
            / 3600.0;
        let mut cumulative = keys.shares(&s.workload, start_ms / 1000.0);
        let mut sum = 0.0;
        for share in &mut cumulative {
            sum += *share;
            *share = sum;
        }
        now_ms = now_ms.max(start_ms);
        if rate_per_ms <= 0.0 {
            continue;
        }
        loop {
            now_ms += -(1.0 - rng.random::<f64>()).ln() / rate_per_ms;
            if now_ms >= end_ms {
                break;
            }
            offered += 1.0;
            let partition = pick(&cumulative, rng.random::<f64>() * sum);
            // Offered but not answered: it counts against availability.
            let Some(node) = leaders.serving(partition).and_then(|l| index_of(l, nodes.len())) else { continue };
            let cost_ms = match &draws[pick(&type_shares, rng.random::<f64>())] {
                CostDraw::Constant(ms) => *ms,
                CostDraw::Exponential(d) => d.sample(&mut rng),
                CostDraw::Lognormal(d) => d.sample(&mut rng),
            };
            let free = &mut servers[node];
            let (first, _) =
                free.iter().enumerate().fold((0, f64::MAX), |best, (i, t)| if *t < best.1 { (i, *t) } else { best });
            let begin = free[first].max(now_ms);
            let done = begin + cost_ms * slowdown[node] / speed[node];
            free[first] = done;
            latency.add(done - now_ms, 1.0);
        }
        if step % 64 == 0 {
            progress(step as f64 / steps as f64);
        }
    }
    progress(1.0);
    let served = latency.total();
    let answered = served * latency.share_within(s.controller.timeout_ms);
    let summary = Summary {
        scenario: s.name.clone(),
        seed: s.seed,
        policy: s.placement.policy.name.as_str().to_owned(),
        mode: "exact".to_owned(),
        events: offered,
        p50_ms: latency.quantile_ms(0.5),
        p99_ms: latency.quantile_ms(0.99),
        p999_ms: latency.quantile_ms(0.999),
        slo_p99_ms: s.placement.policy.slo_p99_ms,
        slo_attainment: if served > 0.0 { latency.share_within(s.placement.policy.slo_p99_ms) } else { 1.0 },
        availability: if offered > 0.0 { answered / offered } else { 1.0 },
        cost: in_use_cost,
        moves: 0,
        bytes_moved: 0.0,
        planner_calls: 0,
        nodes_on_learned_curve: 0,
    };
    Ok(Run { summary, series: Vec::new(), planner_time_s: 0.0 })
}

/// Who leads each partition as nodes fail: a lost leader's partition
/// serves nothing until `election_s` has passed, then a surviving replica
/// drawn as the fast engine draws it leads.
struct Leaders {
    leader: Vec<Option<NodeId>>,
    leaderless_since: Vec<Option<f64>>,
}

impl Leaders {
    fn new(cluster: &ClusterSnapshot) -> Self {
        Leaders {
            leader: cluster.partitions.iter().map(|p| p.leader).collect(),
            leaderless_since: vec![None; cluster.partitions.len()],
        }
    }

    fn follow(&mut self, s: &Scenario, cluster: &ClusterSnapshot, down: &BTreeSet<NodeId>, step: u64, t_s: f64) {
        for (i, p) in cluster.partitions.iter().enumerate() {
            if self.leader[i].is_some_and(|l| !down.contains(&l)) {
                self.leaderless_since[i] = None;
                continue;
            }
            let since = *self.leaderless_since[i].get_or_insert(t_s);
            if t_s - since >= s.controller.election_s
                && let Some(next) = crate::cluster::elect(s.seed, p.id, &p.replicas, down, step)
            {
                self.leader[i] = Some(next);
                self.leaderless_since[i] = None;
            }
        }
    }

    /// The leader serving `partition`, if one is.
    fn serving(&self, partition: usize) -> Option<NodeId> {
        self.leader[partition].filter(|_| self.leaderless_since[partition].is_none())
    }
}
