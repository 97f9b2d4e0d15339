//! Eddy's models, learned online from telemetry: how much load each
//! partition brings now and a few minutes ahead ([`PartitionLoad`]), how a
//! node's p99 response time grows with its utilisation ([`LatencyModel`]),
//! and what nodes and moves cost ([`cost`]).
//!
//! Everything here is pure: no I/O, no clock (samples carry their time), no
//! randomness. The live controller and the simulator feed the same models,
//! and the same samples always give the same state. Every model reports its
//! error and a confidence ([`Quality`]) so that the planner can tell when to
//! rely on it.

pub mod cost;
pub mod forecast;
pub mod latency;
pub mod load;
pub mod queueing;
pub mod trace;

pub use cost::{MoveCost, MoveCostConfig, MoveCostModel, NodePrice, price_per_hour_in_use};
pub use forecast::{ForecastConfig, Forecaster, SeasonConfig};
pub use latency::{Curve, LatencyConfig, LatencyModel};
pub use load::{LoadSample, PartitionLoad};
pub use queueing::Queue;

use serde::{Deserialize, Serialize};

/// How far a model can be relied on.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Quality {
    /// Mean absolute percentage error of the model's predictions against
    /// what came next (a share: 0.1 is 10%); `None` before it can be scored.
    pub error_mape: Option<f64>,
    /// Coefficient of determination on held-out data, where it applies.
    pub r2: Option<f64>,
    /// Samples the model learned from.
    pub samples: u64,
    /// Samples refused as malformed (negative, NaN, out of order).
    pub rejected: u64,
    /// 0 (no evidence) to 1 (many samples, small error).
    pub confidence: f64,
    /// Whether the planner may use the model's predictions as they are.
    pub trusted: bool,
}
