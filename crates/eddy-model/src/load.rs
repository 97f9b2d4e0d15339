//! The load model of one partition: its event rate and the CPU time each
//! event costs, each with its own forecaster, and the CPU the partition
//! will need a few minutes ahead (rate times cost).

use serde::{Deserialize, Serialize};

use crate::Quality;
use crate::forecast::{ForecastConfig, Forecaster};

/// One telemetry sample of a partition.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LoadSample {
    pub at_ms: u64,
    pub events_per_s: f64,
    /// Mean CPU time spent per event over the sample; `None` when no event
    /// was processed (the cost is then unknown, not zero).
    pub cpu_ms_per_event: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartitionLoad {
    rate: Forecaster,
    cost: Forecaster,
}

impl PartitionLoad {
    pub fn new(config: &ForecastConfig) -> Self {
        // The cost per event is a property of the handlers, not of the
        // traffic: no season, and a gentle trend.
        let cost_config = ForecastConfig { season: None, ..config.clone() };
        PartitionLoad { rate: Forecaster::new(config.clone()), cost: Forecaster::new(cost_config) }
    }

    pub fn observe(&mut self, sample: &LoadSample) {
        self.rate.observe(sample.at_ms, sample.events_per_s);
        if let Some(cost) = sample.cpu_ms_per_event {
            self.cost.observe(sample.at_ms, cost);
        }
    }

    /// Events per second expected at `at_ms`.
    pub fn events_per_s_at(&self, at_ms: u64) -> f64 {
        self.rate.forecast(at_ms)
    }

    /// CPU milliseconds per event expected at `at_ms`.
    pub fn cpu_ms_per_event_at(&self, at_ms: u64) -> f64 {
        self.cost.forecast(at_ms)
    }

    /// Cores of CPU the partition is expected to keep busy at `at_ms`.
    pub fn cpu_cores_at(&self, at_ms: u64) -> f64 {
        let cores = self.events_per_s_at(at_ms) * self.cpu_ms_per_event_at(at_ms) / 1000.0;
        if cores.is_finite() { cores } else { 0.0 }
    }

    pub fn rate(&self) -> &Forecaster {
        &self.rate
    }

    pub fn cost(&self) -> &Forecaster {
        &self.cost
    }

    /// The weaker of the two forecasts decides how far the load can be trusted.
    pub fn quality(&self) -> Quality {
        let (rate, cost) = (self.rate.quality(), self.cost.quality());
        let error_mape = match (rate.error_mape, cost.error_mape) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        Quality {
            error_mape,
            r2: None,
            samples: rate.samples,
            rejected: rate.rejected + cost.rejected,
            confidence: rate.confidence.min(cost.confidence),
            trusted: rate.trusted && cost.trusted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_follows_rate_times_cost_and_idle_samples_keep_the_cost() {
        let mut load = PartitionLoad::new(&ForecastConfig::default());
        for i in 1..=30u64 {
            load.observe(&LoadSample { at_ms: i * 1000, events_per_s: 500.0, cpu_ms_per_event: Some(2.0) });
        }
        assert!((load.cpu_cores_at(31_000) - 1.0).abs() < 1e-9);
        assert!(load.quality().trusted, "{:?}", load.quality());
        // A quiet spell: no events, so no cost sample; the cost is kept.
        for i in 31..=40u64 {
            load.observe(&LoadSample { at_ms: i * 1000, events_per_s: 0.0, cpu_ms_per_event: None });
        }
        assert!((load.cpu_ms_per_event_at(41_000) - 2.0).abs() < 1e-9);
        assert!(load.events_per_s_at(41_000) < 50.0);
    }
}
