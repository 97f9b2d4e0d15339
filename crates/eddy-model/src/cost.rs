//! The cost model: the price of the nodes in use, and what moving a
//! partition costs (bytes to copy, time, extra load on the nodes involved),
//! with the copy bandwidth learned from the moves already made.

use serde::{Deserialize, Serialize};

use crate::Quality;

/// A node's price and whether it holds any replica.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct NodePrice {
    pub price_per_hour: f64,
    pub in_use: bool,
}

/// What the cluster costs per hour: the nodes that hold replicas. Prices
/// that are negative or not finite count as zero.
pub fn price_per_hour_in_use<'a>(nodes: impl IntoIterator<Item = &'a NodePrice>) -> f64 {
    nodes.into_iter().filter(|n| n.in_use && n.price_per_hour.is_finite()).map(|n| n.price_per_hour.max(0.0)).sum()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MoveCostConfig {
    /// Copy bandwidth assumed before any move was seen.
    pub copy_bytes_per_s: f64,
    /// CPU spent per MiB copied, on each of the two nodes.
    pub copy_cpu_ms_per_mib: f64,
    /// Time every replica move takes on top of the copy (adding a learner,
    /// changing membership, an election).
    pub fixed_s: f64,
    /// Time a leader transfer takes.
    pub leader_transfer_s: f64,
    /// Weight of a new move in the learned bandwidth (0..1).
    pub learn_weight: f64,
    pub trust_max_error: f64,
}

impl Default for MoveCostConfig {
    fn default() -> Self {
        MoveCostConfig {
            copy_bytes_per_s: 50.0 * 1024.0 * 1024.0,
            copy_cpu_ms_per_mib: 2.0,
            fixed_s: 2.0,
            leader_transfer_s: 0.5,
            learn_weight: 0.3,
            trust_max_error: 0.5,
        }
    }
}

/// The predicted cost of one move.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MoveCost {
    pub bytes: u64,
    pub duration_s: f64,
    /// Extra CPU on the node sending the copy, while the move lasts.
    pub source_cpu_cores: f64,
    /// Extra CPU on the node receiving it.
    pub target_cpu_cores: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MoveCostModel {
    config: MoveCostConfig,
    copy_bytes_per_s: f64,
    moves: u64,
    rejected: u64,
    abs_error_s: f64,
    abs_duration_s: f64,
}

impl MoveCostModel {
    pub fn new(config: MoveCostConfig) -> Self {
        let copy_bytes_per_s = positive_or(config.copy_bytes_per_s, 1024.0 * 1024.0);
        MoveCostModel { config, copy_bytes_per_s, moves: 0, rejected: 0, abs_error_s: 0.0, abs_duration_s: 0.0 }
    }

    /// Moving a replica holding `bytes`.
    pub fn replica_move(&self, bytes: u64) -> MoveCost {
        let copy_s = bytes as f64 / self.copy_bytes_per_s;
        let duration_s = positive_or(self.config.fixed_s, 0.0) + copy_s;
        let cpu_s = bytes as f64 / (1024.0 * 1024.0) * positive_or(self.config.copy_cpu_ms_per_mib, 0.0) / 1000.0;
        let cores = if duration_s > 0.0 { cpu_s / duration_s } else { 0.0 };
        MoveCost { bytes, duration_s, source_cpu_cores: cores, target_cpu_cores: cores }
    }

    /// Handing leadership to another replica: no copy.
    pub fn leader_transfer(&self) -> MoveCost {
        let duration_s = positive_or(self.config.leader_transfer_s, 0.0);
        MoveCost { bytes: 0, duration_s, source_cpu_cores: 0.0, target_cpu_cores: 0.0 }
    }

    /// Learns from a finished replica move of `bytes` that took `duration_ms`.
    pub fn observe_move(&mut self, bytes: u64, duration_ms: u64) {
        let actual_s = duration_ms as f64 / 1000.0;
        if duration_ms == 0 {
            self.rejected += 1;
            return;
        }
        let predicted_s = self.replica_move(bytes).duration_s;
        let w = if self.moves == 0 { 1.0 } else { self.config.learn_weight.clamp(0.0, 1.0) };
        self.abs_error_s = w * (predicted_s - actual_s).abs() + (1.0 - w) * self.abs_error_s;
        self.abs_duration_s = w * actual_s + (1.0 - w) * self.abs_duration_s;
        let copy_s = actual_s - self.config.fixed_s.max(0.0);
        // Moves too small to time the copy say nothing about bandwidth.
        if bytes > 0 && copy_s > 0.05 * actual_s {
            let observed = bytes as f64 / copy_s;
            self.copy_bytes_per_s = w * observed + (1.0 - w) * self.copy_bytes_per_s;
        }
        self.moves += 1;
    }

    pub fn copy_bytes_per_s(&self) -> f64 {
        self.copy_bytes_per_s
    }

    pub fn quality(&self) -> Quality {
        let error = (self.moves > 0).then(|| self.abs_error_s / self.abs_duration_s.max(1e-9));
        let confidence = error.map_or(0.0, |e| {
            (self.moves as f64 / 3.0).min(1.0) * (1.0 - (e / (2.0 * self.config.trust_max_error)).min(1.0))
        });
        Quality {
            error_mape: error,
            r2: None,
            samples: self.moves,
            rejected: self.rejected,
            confidence,
            // Before any move the defaults are a fair guess for planning;
            // once moves are seen they must agree with them.
            trusted: error.is_none_or(|e| e <= self.config.trust_max_error),
        }
    }
}

fn positive_or(value: f64, fallback: f64) -> f64 {
    if value.is_finite() && value > 0.0 { value } else { fallback }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_nodes_in_use_are_paid_for() {
        let nodes = [
            NodePrice { price_per_hour: 0.5, in_use: true },
            NodePrice { price_per_hour: 0.25, in_use: true },
            NodePrice { price_per_hour: 9.0, in_use: false },
            NodePrice { price_per_hour: f64::NAN, in_use: true },
        ];
        assert!((price_per_hour_in_use(&nodes) - 0.75).abs() < 1e-12);
    }

    #[test]
    fn a_move_costs_copy_time_and_load_on_both_nodes() {
        let config = MoveCostConfig { copy_bytes_per_s: 100.0 * 1024.0 * 1024.0, fixed_s: 1.0, ..Default::default() };
        let model = MoveCostModel::new(config);
        let cost = model.replica_move(1024 * 1024 * 1024);
        assert!((cost.duration_s - 11.24).abs() < 0.01, "{cost:?}");
        // 1024 MiB at 2 ms each over 11.24 s.
        assert!((cost.source_cpu_cores - 2.048 / 11.24).abs() < 1e-3, "{cost:?}");
        assert_eq!(cost.source_cpu_cores, cost.target_cpu_cores);
        assert!(model.leader_transfer().duration_s < cost.duration_s);
    }

    #[test]
    fn the_bandwidth_is_learned_from_moves() {
        let config = MoveCostConfig { fixed_s: 1.0, ..Default::default() };
        let mut model = MoveCostModel::new(config);
        let gib = 1024 * 1024 * 1024;
        // The real bandwidth is 20 MiB/s: a GiB takes 1 + 51.2 s.
        for _ in 0..10 {
            model.observe_move(gib, 52_200);
        }
        let predicted = model.replica_move(gib).duration_s;
        assert!((predicted - 52.2).abs() / 52.2 < 0.02, "predicted {predicted}");
        let quality = model.quality();
        assert!(quality.trusted && quality.confidence > 0.9, "{quality:?}");
        model.observe_move(gib, 0);
        assert_eq!(model.quality().rejected, 1);
    }
}
