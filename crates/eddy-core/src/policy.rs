//! The placement policy: which planner runs and what it aims for, and
//! whether the controller carries its plans out. Kept in the controller's
//! replicated state so that operators can change it at runtime (`eddyctl
//! policy set`); the simulator reads it from scenario files.

use serde::{Deserialize, Serialize};

/// The planners behind `eddy_placement::plan`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicyName {
    /// Response time, availability and cost, with the learned models.
    #[default]
    Adaptive,
    /// Hash placement: replaces lost replicas, never balances.
    Static,
    /// Balances replica and leader counts.
    Count,
    /// Balances utilisation, without the latency model.
    Utilisation,
}

impl PolicyName {
    pub const ALL: [PolicyName; 4] =
        [PolicyName::Adaptive, PolicyName::Static, PolicyName::Count, PolicyName::Utilisation];

    pub fn as_str(self) -> &'static str {
        match self {
            PolicyName::Adaptive => "adaptive",
            PolicyName::Static => "static",
            PolicyName::Count => "count",
            PolicyName::Utilisation => "utilisation",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    pub name: PolicyName,
    /// The response-time target: p99 in ms.
    pub slo_p99_ms: f64,
    /// No node should be busier than this share of its cores.
    pub utilisation_ceiling: f64,
    /// Keep room to absorb the loss of any one zone, not only of any one node.
    pub zone_headroom: bool,
    /// Weight of the rate-weighted mean p99 (as a share of the SLO).
    pub latency_weight: f64,
    /// Extra weight of the share of events predicted to miss the SLO.
    pub slo_miss_weight: f64,
    /// Weight of the price of the nodes in use (as a share of the price of
    /// all up workers).
    pub cost_weight: f64,
    /// Objective charged per second of move time.
    pub move_weight_per_s: f64,
    /// Hysteresis: a move must improve the objective by at least this.
    pub min_gain: f64,
    /// Operations per round, counting partitions with one in flight.
    pub max_operations_per_round: usize,
    /// Replica copies a node may send or receive at a time; more wait.
    pub max_copies_per_node: usize,
    /// CPU a follower spends per event, as a share of the leader's.
    pub follower_cpu_share: f64,
    /// Drain nodes that are not needed (otherwise they are only advised).
    pub allow_scale_in: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            name: PolicyName::Adaptive,
            slo_p99_ms: 100.0,
            utilisation_ceiling: 0.8,
            zone_headroom: false,
            latency_weight: 1.0,
            slo_miss_weight: 10.0,
            cost_weight: 1.0,
            move_weight_per_s: 0.0005,
            min_gain: 0.005,
            max_operations_per_round: 16,
            max_copies_per_node: 2,
            follower_cpu_share: 0.05,
            allow_scale_in: false,
        }
    }
}

impl Policy {
    /// Checks every field; the error names the bad one.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [("slo_p99_ms", self.slo_p99_ms)];
        for (name, value) in positive {
            if !(value.is_finite() && value > 0.0) {
                return Err(format!("{name} must be a positive number, got {value}"));
            }
        }
        if !(self.utilisation_ceiling > 0.0 && self.utilisation_ceiling <= 1.0) {
            return Err(format!("utilisation_ceiling must be in (0, 1], got {}", self.utilisation_ceiling));
        }
        let non_negative = [
            ("latency_weight", self.latency_weight),
            ("slo_miss_weight", self.slo_miss_weight),
            ("cost_weight", self.cost_weight),
            ("move_weight_per_s", self.move_weight_per_s),
            ("min_gain", self.min_gain),
            ("follower_cpu_share", self.follower_cpu_share),
        ];
        for (name, value) in non_negative {
            if !(value.is_finite() && value >= 0.0) {
                return Err(format!("{name} must be a number at least 0, got {value}"));
            }
        }
        if self.follower_cpu_share > 1.0 {
            return Err(format!("follower_cpu_share must be at most 1, got {}", self.follower_cpu_share));
        }
        if self.max_operations_per_round == 0 {
            return Err("max_operations_per_round must be at least 1".into());
        }
        if self.max_copies_per_node == 0 {
            return Err("max_copies_per_node must be at least 1".into());
        }
        Ok(())
    }
}

/// What the controller leader does with its plans.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlacementMode {
    /// Plan every interval and carry the operations out.
    Auto,
    /// Shadow mode: plan, log and show what would be done; change nothing.
    #[default]
    Advise,
    /// Do not plan (repairs of the initial placement still happen).
    Off,
}

impl PlacementMode {
    pub const ALL: [PlacementMode; 3] = [PlacementMode::Auto, PlacementMode::Advise, PlacementMode::Off];

    pub fn as_str(self) -> &'static str {
        match self {
            PlacementMode::Auto => "auto",
            PlacementMode::Advise => "advise",
            PlacementMode::Off => "off",
        }
    }
}

/// The placement settings the controller replicates.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PlacementSettings {
    pub mode: PlacementMode,
    pub policy: Policy,
}
