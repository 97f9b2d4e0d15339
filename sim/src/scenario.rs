//! Scenario files: the cluster (node types and counts, partitions), the
//! workload, the failures, the placement policy, the duration and the
//! seed of one simulated run. Read from TOML with unknown fields refused;
//! [`Scenario::validate`] names the first bad field by its path.

use std::path::Path;

use eddy_core::{PlacementMode, Policy};
use serde::{Deserialize, Serialize};

/// Why a scenario cannot run; the message names the field.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path}{line}: `{field}`: {message}", line = line.map(|l| format!(" line {l}")).unwrap_or_default())]
    Decode { path: String, line: Option<usize>, field: String, message: String },
    #[error("{path}: `{field}` {message}")]
    Invalid { path: String, field: String, message: String },
}

/// One simulated run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    /// Every random draw of the run comes from this seed.
    #[serde(default)]
    pub seed: u64,
    pub duration_s: f64,
    /// Time step of the fast engine.
    #[serde(default = "default_step_s")]
    pub step_s: f64,
    pub partitions: u32,
    pub replication_factor: u32,
    pub node_types: Vec<NodeType>,
    pub workload: Workload,
    #[serde(default)]
    pub failures: Vec<Failure>,
    #[serde(default)]
    pub placement: Placement,
    #[serde(default)]
    pub controller: Controller,
}

fn default_step_s() -> f64 {
    1.0
}

/// Nodes of one kind: `count` of them, spread over `zones` in turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeType {
    pub name: String,
    pub cores: f64,
    /// How fast a core is against the one CPU costs were measured on.
    #[serde(default = "one")]
    pub speed: f64,
    pub price_per_hour: f64,
    pub zones: Vec<String>,
    pub count: u32,
}

fn one() -> f64 {
    1.0
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    /// Required unless `trace` replays one.
    #[serde(default)]
    pub rate: Option<RateCurve>,
    /// Distinct keys; events pick one by a Zipf law.
    #[serde(default = "default_keys")]
    pub keys: u64,
    /// Zipf exponent of key popularity (0: uniform).
    #[serde(default)]
    pub zipf: f64,
    /// Share of all events that go to one hot key, on top of the Zipf law.
    #[serde(default)]
    pub hot_key_share: f64,
    /// A set of keys that takes a share of the events and changes over time.
    #[serde(default)]
    pub rotating_hot_set: Option<RotatingHotSet>,
    /// CPU cost per event, by type; required unless `trace` replays one.
    #[serde(default)]
    pub costs: Vec<EventCost>,
    /// Replay a trace from `eddyctl trace export` instead of `rate` and
    /// `costs` (per partition events/s and CPU per event). A relative path
    /// is read from the scenario file's directory.
    #[serde(default)]
    pub trace: Option<String>,
    /// The trace, read when the scenario is.
    #[serde(skip)]
    pub replay: Option<std::sync::Arc<crate::replay::Replay>>,
}

fn default_keys() -> u64 {
    10_000
}

/// The total event rate over time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "shape", rename_all = "snake_case", deny_unknown_fields)]
pub enum RateCurve {
    Constant {
        events_per_s: f64,
    },
    /// A sine over 24 hours: `mean_per_s` times (1 + amplitude) at the peak.
    Daily {
        mean_per_s: f64,
        amplitude: f64,
        peak_hour: f64,
    },
    Step {
        before_per_s: f64,
        after_per_s: f64,
        at_s: f64,
    },
    /// Compound growth from `start_per_s`.
    Growth {
        start_per_s: f64,
        percent_per_hour: f64,
    },
    /// `burst_per_s` for `on_s`, then `base_per_s` for `off_s`, repeated.
    Bursts {
        base_per_s: f64,
        burst_per_s: f64,
        on_s: f64,
        off_s: f64,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotatingHotSet {
    pub keys: u64,
    pub share: f64,
    pub every_s: f64,
}

/// Events of one type: their share of all events and their CPU cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventCost {
    pub event_type: String,
    pub share: f64,
    /// Mean CPU per event on a core of speed 1.
    pub cpu_ms: f64,
    #[serde(default)]
    pub distribution: CostDistribution,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum CostDistribution {
    Deterministic,
    #[default]
    Exponential,
    /// `sigma` of the underlying normal; the mean stays `cpu_ms`.
    Lognormal {
        sigma: f64,
    },
}

/// Something that goes wrong during the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Failure {
    /// Node `node` (numbered from 1 in the order of `node_types`) stops.
    Crash {
        node: u64,
        at_s: f64,
        for_s: f64,
    },
    ZoneLoss {
        zone: String,
        at_s: f64,
        for_s: f64,
    },
    /// Node `node` runs at `factor` times its speed.
    Slow {
        node: u64,
        factor: f64,
        at_s: f64,
        for_s: f64,
    },
    /// Every node in turn is down for `down_s`, one every `every_s`.
    RollingRestart {
        at_s: f64,
        every_s: f64,
        down_s: f64,
    },
}

/// The placement policy and mode the simulated controller runs; `auto`
/// unless the scenario says otherwise, since a simulation is about what
/// the planner does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Placement {
    #[serde(default = "auto")]
    pub mode: PlacementMode,
    #[serde(default)]
    pub policy: Policy,
}

fn auto() -> PlacementMode {
    PlacementMode::Auto
}

impl Default for Placement {
    fn default() -> Self {
        Placement { mode: auto(), policy: Policy::default() }
    }
}

/// How the simulated controller and moves behave.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Controller {
    pub plan_interval_s: f64,
    /// How often each node reports to the models (at most once a step).
    pub telemetry_interval_s: f64,
    /// From a leader's loss to its successor's election.
    pub election_s: f64,
    /// Replica copy bandwidth.
    pub copy_bytes_per_s: f64,
    /// Log bytes a partition holds per event.
    pub bytes_per_event: f64,
    /// Relative noise on the telemetry the models learn from.
    pub telemetry_noise: f64,
    /// An event not answered within this counts as unavailable.
    pub timeout_ms: f64,
}

impl Default for Controller {
    fn default() -> Self {
        Controller {
            plan_interval_s: 5.0,
            telemetry_interval_s: 1.0,
            election_s: 2.0,
            copy_bytes_per_s: 50e6,
            bytes_per_event: 200.0,
            telemetry_noise: 0.05,
            timeout_ms: 5_000.0,
        }
    }
}

impl Scenario {
    /// Reads and checks a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let shown = path.display().to_string();
        let text =
            std::fs::read_to_string(path).map_err(|source| ScenarioError::Read { path: shown.clone(), source })?;
        Scenario::parse(&text, &shown)
    }

    /// Parses and checks scenario TOML; `path` names it in errors.
    pub fn parse(text: &str, path: &str) -> Result<Scenario, ScenarioError> {
        let line_of =
            |err: &toml::de::Error| err.span().map(|span| 1 + text[..span.start.min(text.len())].matches('\n').count());
        let deserializer = toml::Deserializer::parse(text).map_err(|err| ScenarioError::Decode {
            path: path.to_owned(),
            line: line_of(&err),
            field: "(syntax)".into(),
            message: err.message().to_owned(),
        })?;
        let mut scenario: Scenario = serde_path_to_error::deserialize(deserializer).map_err(|err| {
            let field = err.path().to_string();
            let inner = err.into_inner();
            ScenarioError::Decode {
                path: path.to_owned(),
                line: line_of(&inner),
                field,
                message: inner.message().to_owned(),
            }
        })?;
        scenario.validate().map_err(|(field, message)| ScenarioError::Invalid {
            path: path.to_owned(),
            field,
            message,
        })?;
        if let Some(trace) = scenario.workload.trace.clone() {
            let replay = read_trace(Path::new(path), &trace, scenario.partitions).map_err(|message| {
                ScenarioError::Invalid { path: path.to_owned(), field: "workload.trace".into(), message }
            })?;
            scenario.workload.replay = Some(std::sync::Arc::new(replay));
        }
        Ok(scenario)
    }

    /// Every node of the cluster, numbered from 1 in the order of the types.
    pub fn node_count(&self) -> u64 {
        self.node_types.iter().map(|t| u64::from(t.count)).sum()
    }

    /// Checks every field; answers the first bad one's path and why.
    pub fn validate(&self) -> Result<(), (String, String)> {
        crate::validate::scenario(self)
    }
}

/// Reads the trace `trace` names, relative to the scenario file `scenario`.
fn read_trace(scenario: &Path, trace: &str, partitions: u32) -> Result<crate::replay::Replay, String> {
    let path = scenario.parent().unwrap_or(Path::new("")).join(trace);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let trace = eddy_model::trace::Trace::from_json(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    crate::replay::Replay::from_trace(&trace, partitions).map_err(|e| format!("{}: {e}", path.display()))
}
