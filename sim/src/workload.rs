//! The workload over time, as the engines need it: the total event rate
//! at a moment, each partition's share of the events (keys by a Zipf law,
//! one hot key, a rotating hot set, mapped to partitions by the hash the
//! cluster uses), and the CPU cost of an event (mean and variability of
//! the mix of types). Pure and deterministic: what varies comes from the
//! scenario's seed.

use eddy_core::partition_for_key;

use std::sync::Arc;

use crate::replay::Replay;
use crate::scenario::{CostDistribution, EventCost, RateCurve, Scenario, Workload};

const SECONDS_PER_HOUR: f64 = 3600.0;

/// Events per second of the whole workload at `t_s` seconds into the run.
pub fn rate_per_s(curve: &RateCurve, t_s: f64) -> f64 {
    let rate = match *curve {
        RateCurve::Constant { events_per_s } => events_per_s,
        RateCurve::Daily { mean_per_s, amplitude, peak_hour } => {
            let hour = (t_s / SECONDS_PER_HOUR).rem_euclid(24.0);
            let angle = (hour - peak_hour) / 24.0 * std::f64::consts::TAU;
            mean_per_s * (1.0 + amplitude * angle.cos())
        }
        RateCurve::Step { before_per_s, after_per_s, at_s } => {
            if t_s < at_s {
                before_per_s
            } else {
                after_per_s
            }
        }
        RateCurve::Growth { start_per_s, percent_per_hour } => {
            start_per_s * (1.0 + percent_per_hour / 100.0).powf(t_s / SECONDS_PER_HOUR)
        }
        RateCurve::Bursts { base_per_s, burst_per_s, on_s, off_s } => {
            if t_s.rem_euclid(on_s + off_s) < on_s {
                burst_per_s
            } else {
                base_per_s
            }
        }
    };
    if rate.is_finite() { rate.max(0.0) } else { 0.0 }
}

/// The workload as the engines read it over time: the scenario's rate
/// curve, key shares and cost mix, or the trace it replays.
#[derive(Debug, Clone)]
pub enum Demand {
    Synthetic { workload: Box<Workload>, keys: KeySpace, cost: CostMix, partitions: usize },
    Replay(Arc<Replay>),
}

impl Demand {
    pub fn of(s: &Scenario) -> Demand {
        match &s.workload.replay {
            Some(replay) => Demand::Replay(replay.clone()),
            None => Demand::Synthetic {
                workload: Box::new(s.workload.clone()),
                keys: KeySpace::new(&s.workload, s.partitions, s.seed),
                cost: cost_mix(&s.workload.costs),
                partitions: s.partitions as usize,
            },
        }
    }

    pub fn rate_per_s(&self, t_s: f64) -> f64 {
        match self {
            Demand::Synthetic { workload, .. } => workload.rate.as_ref().map_or(0.0, |curve| rate_per_s(curve, t_s)),
            Demand::Replay(replay) => replay.rate_per_s(t_s),
        }
    }

    /// Changes whenever the shares or the cost may.
    pub fn epoch(&self, t_s: f64) -> u64 {
        match self {
            Demand::Synthetic { workload, .. } => KeySpace::epoch(workload, t_s),
            Demand::Replay(replay) => replay.slot(t_s) as u64,
        }
    }

    pub fn shares(&self, t_s: f64) -> Vec<f64> {
        match self {
            Demand::Synthetic { workload, keys, .. } => keys.shares(workload, t_s),
            Demand::Replay(replay) => replay.shares(t_s),
        }
    }

    /// Each partition's mean CPU ms per event at `t_s`.
    pub fn partition_costs_ms(&self, t_s: f64) -> Vec<f64> {
        match self {
            Demand::Synthetic { cost, partitions, .. } => vec![cost.mean_ms; *partitions],
            Demand::Replay(replay) => replay.partition_costs_ms(t_s),
        }
    }

    pub fn cost(&self, t_s: f64) -> CostMix {
        match self {
            Demand::Synthetic { cost, .. } => *cost,
            Demand::Replay(replay) => replay.cost(t_s),
        }
    }
}

/// The CPU an event costs, over the mix of event types.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CostMix {
    /// Mean CPU per event on a core of speed 1.
    pub mean_ms: f64,
    /// Squared coefficient of variation (variance over the squared mean).
    pub scv: f64,
}

/// The cost of an event drawn from `costs` in proportion to their shares.
pub fn cost_mix(costs: &[EventCost]) -> CostMix {
    let total: f64 = costs.iter().map(|c| c.share).sum();
    if total <= 0.0 {
        return CostMix { mean_ms: 0.0, scv: 0.0 };
    }
    let (mut mean, mut second) = (0.0, 0.0);
    for cost in costs {
        let weight = cost.share / total;
        let m = cost.cpu_ms;
        // Second moment of each type's distribution with mean m.
        let own_second = match cost.distribution {
            CostDistribution::Deterministic => m * m,
            CostDistribution::Exponential => 2.0 * m * m,
            CostDistribution::Lognormal { sigma } => m * m * (sigma * sigma).exp(),
        };
        mean += weight * m;
        second += weight * own_second;
    }
    let scv = if mean > 0.0 { (second / (mean * mean) - 1.0).max(0.0) } else { 0.0 };
    CostMix { mean_ms: mean, scv }
}

/// How keys fall on partitions, and how popular each key is.
#[derive(Debug, Clone)]
pub struct KeySpace {
    partitions: u32,
    seed: u64,
    /// Partition of each key.
    partition_of: Vec<u32>,
    /// Each partition's share of the Zipf-distributed events.
    zipf_shares: Vec<f64>,
    hot_key: u64,
}

/// The name of key `index`, as the simulated clients send it.
fn key_name(index: u64) -> String {
    format!("key-{index}")
}

/// A deterministic draw in `0..n` for `(seed, a, b)`.
fn draw(seed: u64, a: u64, b: u64, n: u64) -> u64 {
    let mut bytes = [0u8; 24];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    bytes[8..16].copy_from_slice(&a.to_le_bytes());
    bytes[16..].copy_from_slice(&b.to_le_bytes());
    xxhash_rust::xxh3::xxh3_64(&bytes) % n.max(1)
}

impl KeySpace {
    pub fn new(workload: &Workload, partitions: u32, seed: u64) -> Self {
        let partitions = partitions.max(1);
        let keys = workload.keys.max(1);
        let partition_of: Vec<u32> = (0..keys).map(|k| partition_for_key(key_name(k).as_bytes(), partitions)).collect();
        let weights: Vec<f64> = (0..keys).map(|k| 1.0 / ((k + 1) as f64).powf(workload.zipf)).collect();
        let total: f64 = weights.iter().sum();
        let mut zipf_shares = vec![0.0; partitions as usize];
        for (p, w) in partition_of.iter().zip(&weights) {
            zipf_shares[*p as usize] += w / total;
        }
        let hot_key = draw(seed, u64::MAX, 0, keys);
        KeySpace { partitions, seed, partition_of, zipf_shares, hot_key }
    }

    /// Which set of hot keys is in force at `t_s`: the shares change only
    /// when this does.
    pub fn epoch(workload: &Workload, t_s: f64) -> u64 {
        workload.rotating_hot_set.as_ref().map_or(0, |hot| (t_s / hot.every_s).floor().max(0.0) as u64)
    }

    /// Each partition's share of the events at `t_s`; the shares sum to 1.
    pub fn shares(&self, workload: &Workload, t_s: f64) -> Vec<f64> {
        let rotating = workload.rotating_hot_set.as_ref();
        let rotating_share = rotating.map_or(0.0, |r| r.share);
        let base = (1.0 - workload.hot_key_share - rotating_share).max(0.0);
        let mut shares: Vec<f64> = self.zipf_shares.iter().map(|s| s * base).collect();
        shares[self.partition_of_key(self.hot_key)] += workload.hot_key_share;
        if let Some(hot) = rotating {
            let epoch = Self::epoch(workload, t_s);
            let per_key = hot.share / hot.keys.max(1) as f64;
            for j in 0..hot.keys {
                let key = draw(self.seed, epoch, j, self.partition_of.len() as u64);
                shares[self.partition_of_key(key)] += per_key;
            }
        }
        shares
    }

    fn partition_of_key(&self, key: u64) -> usize {
        self.partition_of.get(key as usize).map_or(0, |p| *p as usize).min(self.partitions as usize - 1)
    }
}

#[cfg(test)]
mod tests;
