//! Response-time distributions of the fast engine's nodes: each node's
//! quantiles on the grid for its queue and utilisation, cached because a
//! run meets few distinct queues and inverting the tail is costly; and the
//! events waiting to be added to the run's histograms, gathered by curve,
//! because a node's curve changes seldom and adding each curve once per
//! window rather than once per node per step saves most of a run's time.

use std::collections::BTreeMap;
use std::rc::Rc;

use eddy_model::queueing::Queue;

use crate::histogram::{Histogram, quantile_grid};

/// Utilisation is read in steps of this.
const UTILISATION_STEP: f64 = 1e-3;

/// A queue and a utilisation level, as bits so that they order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct CurveKey {
    service_time_ms: u64,
    service_scv: u64,
    arrival_scv: u64,
    servers: u32,
    level: u64,
}

/// One curve: response time at each point of the grid, and its p99.
#[derive(Debug)]
pub(crate) struct Curve {
    pub(crate) on_grid_ms: Vec<f64>,
    pub(crate) p99_ms: f64,
}

#[derive(Debug)]
pub(crate) struct Curves {
    grid: Vec<(f64, f64)>,
    cache: BTreeMap<CurveKey, Rc<Curve>>,
    /// Events of the current window, by curve.
    pending: BTreeMap<CurveKey, f64>,
}

impl Default for Curves {
    fn default() -> Self {
        Curves { grid: quantile_grid(), cache: BTreeMap::new(), pending: BTreeMap::new() }
    }
}

impl Curves {
    /// The curve of `queue` at utilisation `rho` (read in steps of 0.001).
    pub(crate) fn curve(&mut self, queue: &Queue, rho: f64) -> (CurveKey, Rc<Curve>) {
        let level = (rho.clamp(0.0, 1.0) / UTILISATION_STEP).round();
        let key = CurveKey {
            service_time_ms: queue.service_time_ms.to_bits(),
            service_scv: queue.service_scv.to_bits(),
            arrival_scv: queue.arrival_scv.to_bits(),
            servers: queue.servers,
            level: level as u64,
        };
        let grid = &self.grid;
        let curve = self.cache.entry(key).or_insert_with(|| {
            let rho = level * UTILISATION_STEP;
            Rc::new(Curve {
                on_grid_ms: grid.iter().map(|(q, _)| queue.response_quantile_ms(rho, *q)).collect(),
                p99_ms: queue.response_quantile_ms(rho, 0.99),
            })
        });
        (key, curve.clone())
    }

    /// Adds `events` that follow curve `key` to the current window.
    pub(crate) fn defer(&mut self, key: CurveKey, events: f64) {
        *self.pending.entry(key).or_default() += events;
    }

    /// Adds `events` that follow `curve` shifted by `extra_ms` to `into`.
    pub(crate) fn add_shifted(&self, curve: &Curve, extra_ms: f64, events: f64, into: &mut [&mut Histogram]) {
        for ((_, mass), ms) in self.grid.iter().zip(&curve.on_grid_ms) {
            for h in into.iter_mut() {
                h.add(ms + extra_ms, events * mass);
            }
        }
    }

    /// Adds the window's deferred events to `into`.
    pub(crate) fn flush(&mut self, into: &mut [&mut Histogram]) {
        let pending = std::mem::take(&mut self.pending);
        for (key, events) in pending {
            if let Some(curve) = self.cache.get(&key).cloned() {
                self.add_shifted(&curve, 0.0, events, into);
            }
        }
    }
}
