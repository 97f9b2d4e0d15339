//! Trace replay: the load history `eddyctl trace export` recorded (per
//! partition, its event rate and CPU per event every telemetry interval)
//! as the workload of a simulated run. Time starts at the trace's first
//! sample; past its last the last rates hold. The simulated cluster is the
//! scenario's, so the same recorded load can be tried on other nodes.

use eddy_model::trace::Trace;

use crate::workload::CostMix;

/// The trace as dense slots of one telemetry interval.
#[derive(Debug, Clone, PartialEq)]
pub struct Replay {
    interval_s: f64,
    /// Per slot, per partition: events per second.
    rates: Vec<Vec<f64>>,
    /// Per slot, per partition: CPU ms per event (carried forward when a
    /// partition processed nothing).
    costs: Vec<Vec<f64>>,
}

impl Replay {
    /// The slots of `trace` for a scenario of `partitions` partitions.
    pub fn from_trace(trace: &Trace, partitions: u32) -> Result<Replay, String> {
        let interval_ms = trace.interval_ms.max(1);
        let start = trace.partitions.iter().flat_map(|p| p.samples.first()).map(|s| s.at_ms).min();
        let Some(start) = start else {
            return Err("has no partition samples to replay".into());
        };
        let slot_of = |at_ms: u64| ((at_ms - start) / interval_ms) as usize;
        let last = trace.partitions.iter().flat_map(|p| p.samples.last()).map(|s| slot_of(s.at_ms)).max();
        let slots = last.unwrap_or(0) + 1;
        let mut rates = vec![vec![0.0; partitions as usize]; slots];
        let mut costs = vec![vec![f64::NAN; partitions as usize]; slots];
        for p in &trace.partitions {
            if p.partition >= partitions {
                return Err(format!(
                    "has partition {} but the scenario has {partitions} partitions; set `partitions` to the cluster's",
                    p.partition
                ));
            }
            for sample in &p.samples {
                let slot = slot_of(sample.at_ms);
                rates[slot][p.partition as usize] = sample.events_per_s;
                if let Some(cost) = sample.cpu_ms_per_event {
                    costs[slot][p.partition as usize] = cost;
                }
            }
        }
        carry_costs_forward(&mut costs);
        Ok(Replay { interval_s: interval_ms as f64 / 1000.0, rates, costs })
    }

    /// Seconds the trace covers.
    pub fn duration_s(&self) -> f64 {
        self.rates.len() as f64 * self.interval_s
    }

    /// The slot in force at `t_s`: the shares and costs change only when it does.
    pub fn slot(&self, t_s: f64) -> usize {
        ((t_s / self.interval_s).floor().max(0.0) as usize).min(self.rates.len().saturating_sub(1))
    }

    pub fn rate_per_s(&self, t_s: f64) -> f64 {
        self.rates.get(self.slot(t_s)).map_or(0.0, |r| r.iter().sum())
    }

    /// Each partition's share of the events at `t_s` (even when idle).
    pub fn shares(&self, t_s: f64) -> Vec<f64> {
        let rates = &self.rates[self.slot(t_s)];
        let total: f64 = rates.iter().sum();
        if total > 0.0 {
            rates.iter().map(|r| r / total).collect()
        } else {
            vec![1.0 / rates.len().max(1) as f64; rates.len()]
        }
    }

    /// Each partition's CPU ms per event at `t_s`.
    pub fn partition_costs_ms(&self, t_s: f64) -> Vec<f64> {
        self.costs[self.slot(t_s)].clone()
    }

    /// The CPU an event costs at `t_s`, averaged over partitions by their
    /// rates. A trace records means only: costs are taken as exponential.
    pub fn cost(&self, t_s: f64) -> CostMix {
        let slot = self.slot(t_s);
        let (rate, cpu) = self.rates[slot]
            .iter()
            .zip(&self.costs[slot])
            .filter(|(r, c)| **r > 0.0 && c.is_finite())
            .fold((0.0, 0.0), |(r, c), (rate, cost)| (r + rate, c + rate * cost));
        CostMix { mean_ms: if rate > 0.0 { cpu / rate } else { 0.0 }, scv: 1.0 }
    }
}

/// A partition that processed nothing in a slot keeps its last known cost
/// (and the first known one before that).
fn carry_costs_forward(costs: &mut [Vec<f64>]) {
    let partitions = costs.first().map_or(0, Vec::len);
    for p in 0..partitions {
        let first = costs.iter().map(|slot| slot[p]).find(|c| c.is_finite()).unwrap_or(0.0);
        let mut last = first;
        for slot in costs.iter_mut() {
            if slot[p].is_finite() {
                last = slot[p];
            } else {
                slot[p] = last;
            }
        }
    }
}

#[cfg(test)]
#[path = "replay_tests.rs"]
mod tests;
