//! What each policy minimises. Every objective is a sum over nodes, so a
//! move is scored by the two nodes it touches.

use crate::policy::{Policy, PolicyName};
use crate::state::{Load, Node, State};

/// Objective per unit of utilisation above the ceiling: far above anything
/// latency or cost can weigh, so the ceiling acts as a hard constraint.
const OVERLOAD_WEIGHT: f64 = 1000.0;

#[derive(Debug, Clone, Copy)]
pub(crate) enum Score {
    /// Rate-weighted p99 against the SLO, SLO misses and overload.
    Latency { slo_p99_ms: f64, latency_weight: f64, slo_miss_weight: f64, ceiling: f64, total_rate: f64 },
    /// Sum of squared utilisation weighted by capacity, relative to a
    /// perfectly even spread, and overload.
    Utilisation { ceiling: f64, even: f64 },
    /// Squared deviation of replica and leader counts from their means.
    Count { replicas_mean: f64, leaders_mean: f64 },
    /// Nothing to improve: repairs only.
    Nothing,
}

impl Score {
    pub fn new(policy: &Policy, state: &State) -> Score {
        let up: Vec<&Node> = state.nodes.iter().filter(|n| n.is_up()).collect();
        match policy.name {
            PolicyName::Adaptive => Score::Latency {
                slo_p99_ms: policy.slo_p99_ms,
                latency_weight: policy.latency_weight,
                slo_miss_weight: policy.slo_miss_weight,
                ceiling: policy.utilisation_ceiling,
                total_rate: state.total_rate,
            },
            PolicyName::Utilisation => {
                let load: f64 = state.nodes.iter().map(|n| n.load.cores()).sum();
                let capacity: f64 = up.iter().map(|n| n.capacity_cores).sum();
                let even = if capacity > 0.0 { load * load / capacity } else { 0.0 };
                Score::Utilisation { ceiling: policy.utilisation_ceiling, even: even.max(1e-9) }
            }
            PolicyName::Count => {
                let count = up.len().max(1) as f64;
                let replicas: i64 = state.parts.iter().map(|p| p.replicas.len() as i64).sum();
                let leaders = state.parts.iter().filter(|p| p.leader.is_some()).count();
                Score::Count { replicas_mean: replicas as f64 / count, leaders_mean: leaders as f64 / count }
            }
            PolicyName::Static => Score::Nothing,
        }
    }

    /// The node's share of the objective when it carries `load`.
    pub fn node(&self, node: &Node, load: &Load) -> f64 {
        let u = node.utilisation(load);
        match *self {
            Score::Latency { slo_p99_ms, latency_weight, slo_miss_weight, ceiling, total_rate } => {
                let overload = OVERLOAD_WEIGHT * (u - ceiling).max(0.0);
                if total_rate <= 0.0 || load.leader_rate <= 0.0 {
                    return overload;
                }
                let share = load.leader_rate / total_rate;
                let relative = node.curve.p99_ms(u) / slo_p99_ms;
                share * (latency_weight * relative + slo_miss_weight * (relative - 1.0).max(0.0)) + overload
            }
            Score::Utilisation { ceiling, even } => {
                let overload = OVERLOAD_WEIGHT * (u - ceiling).max(0.0);
                load.cores() * load.cores() / node.capacity_cores.max(1e-9) / even + overload
            }
            Score::Count { replicas_mean, leaders_mean } => {
                (load.replicas as f64 - replicas_mean).powi(2) + (load.leaders as f64 - leaders_mean).powi(2)
            }
            Score::Nothing => 0.0,
        }
    }

    /// The smallest gain worth a move, besides the policy's hysteresis.
    pub fn min_gain(&self, policy: &Policy) -> f64 {
        match self {
            // One replica or leader more or less is no imbalance worth a move.
            Score::Count { .. } => policy.min_gain.max(0.5),
            _ => policy.min_gain,
        }
    }

    /// Whether the score weighs move time (count balancing ignores it).
    pub fn charges_moves(&self) -> bool {
        !matches!(self, Score::Count { .. })
    }

    pub fn improves(&self) -> bool {
        !matches!(self, Score::Nothing)
    }
}
