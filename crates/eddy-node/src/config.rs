//! The node manifest: TOML file, `EDDY_` environment overrides, defaults, and
//! the validation that names the bad field.
//!
//! Environment variables map to fields with `__` between levels:
//! `EDDY_NODE__ZONE=zone-b` sets `node.zone`, `EDDY_CLUSTER__PARTITION_COUNT=32`
//! sets `cluster.partition_count`. Only variables naming one of the manifest's
//! sections are read, so `EDDY_ENDPOINTS` (used by `eddyctl`) is left alone.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use eddy_core::{ClusterSettings, NodeId, NodeSpec, Role};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// Address `eddyd dev` listens on and `eddyctl` calls by default.
pub const DEV_ADDR: &str = "127.0.0.1:7070";

const SECTIONS: [&str; 6] = ["node", "controller", "cluster", "liveness", "worker", "processors"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[derive(Default)]
pub struct NodeConfig {
    pub node: NodeSection,
    pub controller: ControllerSection,
    /// Used once, when this node bootstraps the cluster.
    pub cluster: ClusterSection,
    pub liveness: LivenessSection,
    pub worker: WorkerSection,
    pub processors: ProcessorsSection,
}

/// The built-in processors, run on each partition's leader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProcessorsSection {
    /// The numeric JSON field of payloads that `stats` aggregates.
    pub stats_field: String,
    pub stats_window_ms: u64,
    /// Windows `stats` keeps per key and per type.
    pub stats_windows_kept: usize,
    /// Events `latest` keeps per key.
    pub latest_per_key: usize,
    /// CPU time `synthetic` spends per event, by event type; `default`
    /// applies to the other types.
    pub synthetic_cost_us: std::collections::BTreeMap<String, u64>,
    pub checkpoint_every_events: u64,
    pub checkpoint_every_ms: u64,
    /// A larger checkpoint is not taken; a new leader replays the log.
    pub max_checkpoint_bytes: u64,
}

impl Default for ProcessorsSection {
    fn default() -> Self {
        let d = eddy_worker::processors::ProcessorsConfig::default();
        ProcessorsSection {
            stats_field: d.stats_field,
            stats_window_ms: d.stats_window_ms,
            stats_windows_kept: d.stats_windows_kept,
            latest_per_key: d.latest_per_key,
            synthetic_cost_us: d.synthetic_cost_us,
            checkpoint_every_events: d.checkpoint_every_events,
            checkpoint_every_ms: d.checkpoint_every_ms,
            max_checkpoint_bytes: d.max_checkpoint_bytes,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerSection {
    pub raft_heartbeat_interval_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    /// Raft entries between two snapshots of a partition.
    pub snapshot_every_entries: u64,
    /// Raft entries kept after a snapshot for replicas that fall behind.
    pub keep_entries_after_snapshot: u64,
    /// Size at which an event log segment is sealed and a new one started.
    pub segment_bytes: u64,
    /// Per partition, oldest segments are deleted past this size (0: no limit).
    pub retention_bytes: u64,
    /// Segments whose newest event is older are deleted (0: keep forever).
    pub retention_hours: u64,
    pub max_event_bytes: usize,
    pub max_key_bytes: usize,
    pub max_batch_events: usize,
    pub max_batch_bytes: usize,
    /// Submits waiting per partition before new ones are refused.
    pub queue_depth: usize,
}

impl Default for WorkerSection {
    fn default() -> Self {
        let limits = eddy_worker::config::Limits::default();
        WorkerSection {
            // A follower refuses votes for election_timeout_max after the
            // last heartbeat (openraft's leader lease), so failover takes
            // between max and max + min; short timeouts keep it brief.
            raft_heartbeat_interval_ms: 150,
            election_timeout_min_ms: 800,
            election_timeout_max_ms: 1600,
            snapshot_every_entries: 1000,
            keep_entries_after_snapshot: 2000,
            segment_bytes: 64 * 1024 * 1024,
            retention_bytes: 0,
            retention_hours: 0,
            max_event_bytes: limits.max_event_bytes,
            max_key_bytes: limits.max_key_bytes,
            max_batch_events: limits.max_batch_events,
            max_batch_bytes: limits.max_batch_bytes,
            queue_depth: 4096,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeSection {
    pub id: NodeId,
    /// Address the gRPC server binds.
    pub listen_addr: String,
    /// Address other nodes and clients use; defaults to `listen_addr`.
    pub advertise_addr: Option<String>,
    pub data_dir: PathBuf,
    pub zone: String,
    pub capacity_cores: f64,
    pub price_per_hour: f64,
    pub roles: Vec<Role>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    pub id: NodeId,
    pub addr: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControllerSection {
    /// The controller voters the cluster is bootstrapped with. Worker-only
    /// nodes use them to find the controller.
    pub initial_members: Vec<Member>,
    /// The lowest-id initial member bootstraps a new cluster on its own when
    /// its storage is empty and no other member knows a cluster. When false,
    /// run `eddyctl bootstrap` once instead.
    pub auto_bootstrap: bool,
    pub raft_heartbeat_interval_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    /// Log entries between two snapshots of the controller state.
    pub snapshot_every_entries: u64,
    /// How long the leader waits after a worker registers before the first
    /// placement, so that workers starting together are placed together.
    pub placement_settle_ms: u64,
    /// Interval of the leader's control loop (liveness and placement).
    pub control_interval_ms: u64,
    /// How often the leader runs the planner (mode `advise` or `auto`).
    pub plan_interval_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterSection {
    pub partition_count: u32,
    pub replication_factor: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LivenessSection {
    /// How often a node reports to the controller leader.
    pub heartbeat_interval_ms: u64,
    /// Silence after which the leader marks a node suspect.
    pub suspect_after_ms: u64,
    /// Silence after which the leader marks a node down.
    pub down_after_ms: u64,
}

impl Default for NodeSection {
    fn default() -> Self {
        NodeSection {
            id: 1,
            listen_addr: DEV_ADDR.to_owned(),
            advertise_addr: None,
            data_dir: PathBuf::from("eddy-data"),
            zone: "local".to_owned(),
            capacity_cores: 1.0,
            price_per_hour: 0.0,
            roles: vec![Role::Controller, Role::Worker],
        }
    }
}

impl Default for ControllerSection {
    fn default() -> Self {
        ControllerSection {
            initial_members: Vec::new(),
            auto_bootstrap: true,
            raft_heartbeat_interval_ms: 250,
            election_timeout_min_ms: 1000,
            election_timeout_max_ms: 2000,
            snapshot_every_entries: 1000,
            placement_settle_ms: 1000,
            control_interval_ms: 250,
            plan_interval_ms: 5000,
        }
    }
}

impl Default for ClusterSection {
    fn default() -> Self {
        ClusterSection { partition_count: 16, replication_factor: 3 }
    }
}

impl Default for LivenessSection {
    fn default() -> Self {
        LivenessSection { heartbeat_interval_ms: 500, suspect_after_ms: 3000, down_after_ms: 10_000 }
    }
}

/// A manifest that cannot be used, with the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid manifest field `{field}`: {reason}")]
pub struct ConfigError {
    pub field: String,
    pub reason: String,
}

impl ConfigError {
    fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError { field: field.into(), reason: reason.into() }
    }
}

impl NodeConfig {
    /// The single-node cluster `eddyd dev` runs: controller and worker in one
    /// process, one replica per partition.
    pub fn dev(data_dir: &Path, listen_addr: &str) -> Self {
        let mut config = NodeConfig::default();
        config.node.data_dir = data_dir.to_path_buf();
        config.node.listen_addr = listen_addr.to_owned();
        config.node.capacity_cores = std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64);
        config.controller.initial_members = vec![Member { id: 1, addr: listen_addr.to_owned() }];
        config.controller.placement_settle_ms = 0;
        config.cluster.replication_factor = 1;
        config
    }

    /// Reads `base` overlaid with the TOML file at `path` (if any) and then
    /// with `EDDY_` environment variables, and validates the result.
    pub fn load(base: NodeConfig, path: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(base));
        if let Some(path) = path {
            if !path.is_file() {
                return Err(ConfigError::new("--config", format!("no manifest file at {}", path.display())));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        let env = Env::prefixed("EDDY_")
            .filter(|key| {
                let key = key.as_str().to_ascii_lowercase();
                SECTIONS.iter().any(|s| key.starts_with(&format!("{s}__")))
            })
            .split("__");
        let config: NodeConfig = figment.merge(env).extract().map_err(|e| from_figment(&e))?;
        config.validate()?;
        Ok(config)
    }

    pub fn advertise_addr(&self) -> &str {
        self.node.advertise_addr.as_deref().unwrap_or(&self.node.listen_addr)
    }

    pub fn has_role(&self, role: Role) -> bool {
        self.node.roles.contains(&role)
    }

    pub fn settings(&self) -> ClusterSettings {
        ClusterSettings {
            partition_count: self.cluster.partition_count,
            replication_factor: self.cluster.replication_factor,
        }
    }

    pub fn spec(&self) -> NodeSpec {
        NodeSpec {
            id: self.node.id,
            addr: self.advertise_addr().to_owned(),
            zone: self.node.zone.clone(),
            capacity_cores: self.node.capacity_cores,
            price_per_hour: self.node.price_per_hour,
            roles: self.node.roles.clone(),
        }
    }

    /// Checks what serde cannot: ranges, consistency between fields.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_node()?;
        self.validate_controller()?;
        self.settings().validate().map_err(|e| ConfigError::new(format!("cluster.{}", e.field()), e.to_string()))?;
        self.validate_worker()?;
        self.validate_processors()?;
        let l = &self.liveness;
        positive("liveness.heartbeat_interval_ms", l.heartbeat_interval_ms)?;
        if l.suspect_after_ms <= l.heartbeat_interval_ms {
            return Err(ConfigError::new(
                "liveness.suspect_after_ms",
                format!("must exceed liveness.heartbeat_interval_ms ({})", l.heartbeat_interval_ms),
            ));
        }
        if l.down_after_ms <= l.suspect_after_ms {
            return Err(ConfigError::new(
                "liveness.down_after_ms",
                format!("must exceed liveness.suspect_after_ms ({})", l.suspect_after_ms),
            ));
        }
        Ok(())
    }

    fn validate_node(&self) -> Result<(), ConfigError> {
        let n = &self.node;
        if n.id == 0 {
            return Err(ConfigError::new("node.id", "must be 1 or more (0 means \"no node\")"));
        }
        let listen: SocketAddr = n
            .listen_addr
            .parse()
            .map_err(|e| ConfigError::new("node.listen_addr", format!("`{}` is not ip:port: {e}", n.listen_addr)))?;
        match &n.advertise_addr {
            Some(addr) => check_host_port("node.advertise_addr", addr)?,
            None if listen.ip().is_unspecified() || listen.port() == 0 => {
                return Err(ConfigError::new(
                    "node.advertise_addr",
                    "must be set when node.listen_addr has an unspecified address or port 0",
                ));
            }
            None => {}
        }
        if n.data_dir.as_os_str().is_empty() {
            return Err(ConfigError::new("node.data_dir", "must not be empty"));
        }
        if n.zone.trim().is_empty() {
            return Err(ConfigError::new("node.zone", "must not be empty"));
        }
        if !(n.capacity_cores.is_finite() && n.capacity_cores > 0.0) {
            return Err(ConfigError::new("node.capacity_cores", format!("must be above 0, got {}", n.capacity_cores)));
        }
        if !(n.price_per_hour.is_finite() && n.price_per_hour >= 0.0) {
            return Err(ConfigError::new(
                "node.price_per_hour",
                format!("must be 0 or more, got {}", n.price_per_hour),
            ));
        }
        if n.roles.is_empty() {
            return Err(ConfigError::new("node.roles", "must name at least one of: controller, worker"));
        }
        if n.roles.iter().collect::<BTreeSet<_>>().len() != n.roles.len() {
            return Err(ConfigError::new("node.roles", "names a role twice"));
        }
        Ok(())
    }

    fn validate_processors(&self) -> Result<(), ConfigError> {
        let p = &self.processors;
        if p.stats_field.is_empty() {
            return Err(ConfigError::new("processors.stats_field", "must not be empty"));
        }
        positive("processors.stats_window_ms", p.stats_window_ms)?;
        positive("processors.stats_windows_kept", p.stats_windows_kept as u64)?;
        positive("processors.latest_per_key", p.latest_per_key as u64)?;
        positive("processors.checkpoint_every_events", p.checkpoint_every_events)?;
        positive("processors.checkpoint_every_ms", p.checkpoint_every_ms)?;
        positive("processors.max_checkpoint_bytes", p.max_checkpoint_bytes)?;
        if let Some((kind, cost)) = p.synthetic_cost_us.iter().find(|(_, c)| **c > 1_000_000) {
            return Err(ConfigError::new(
                format!("processors.synthetic_cost_us.{kind}"),
                format!("{cost} us per event is more than a second"),
            ));
        }
        Ok(())
    }

    fn validate_worker(&self) -> Result<(), ConfigError> {
        let w = &self.worker;
        positive("worker.raft_heartbeat_interval_ms", w.raft_heartbeat_interval_ms)?;
        positive("worker.snapshot_every_entries", w.snapshot_every_entries)?;
        if w.election_timeout_min_ms <= w.raft_heartbeat_interval_ms {
            return Err(ConfigError::new(
                "worker.election_timeout_min_ms",
                "must exceed worker.raft_heartbeat_interval_ms",
            ));
        }
        if w.election_timeout_max_ms <= w.election_timeout_min_ms {
            return Err(ConfigError::new(
                "worker.election_timeout_max_ms",
                "must exceed worker.election_timeout_min_ms",
            ));
        }
        if w.segment_bytes < 4096 {
            return Err(ConfigError::new(
                "worker.segment_bytes",
                format!("must be 4096 or more, got {}", w.segment_bytes),
            ));
        }
        for (field, value) in [
            ("worker.max_event_bytes", w.max_event_bytes),
            ("worker.max_key_bytes", w.max_key_bytes),
            ("worker.max_batch_events", w.max_batch_events),
            ("worker.max_batch_bytes", w.max_batch_bytes),
            ("worker.queue_depth", w.queue_depth),
        ] {
            positive(field, value as u64)?;
        }
        if w.max_batch_bytes < w.max_event_bytes {
            return Err(ConfigError::new("worker.max_batch_bytes", "must be at least worker.max_event_bytes"));
        }
        if w.max_batch_bytes > eddy_proto::RAFT_MAX_MESSAGE_BYTES / 4 {
            return Err(ConfigError::new(
                "worker.max_batch_bytes",
                format!("must be at most {} bytes", eddy_proto::RAFT_MAX_MESSAGE_BYTES / 4),
            ));
        }
        Ok(())
    }

    /// The processors' settings in the form the worker takes them.
    pub fn processors_config(&self) -> eddy_worker::processors::ProcessorsConfig {
        let p = &self.processors;
        eddy_worker::processors::ProcessorsConfig {
            stats_field: p.stats_field.clone(),
            stats_window_ms: p.stats_window_ms,
            stats_windows_kept: p.stats_windows_kept,
            latest_per_key: p.latest_per_key,
            synthetic_cost_us: p.synthetic_cost_us.clone(),
            checkpoint_every_events: p.checkpoint_every_events,
            checkpoint_every_ms: p.checkpoint_every_ms,
            max_checkpoint_bytes: p.max_checkpoint_bytes,
        }
    }

    /// The worker's settings in the form the worker takes them.
    pub fn worker_config(&self) -> eddy_worker::config::WorkerConfig {
        let w = &self.worker;
        let ms = std::time::Duration::from_millis;
        eddy_worker::config::WorkerConfig {
            raft_heartbeat_interval: ms(w.raft_heartbeat_interval_ms),
            election_timeout_min: ms(w.election_timeout_min_ms),
            election_timeout_max: ms(w.election_timeout_max_ms),
            snapshot_every_entries: w.snapshot_every_entries,
            keep_entries_after_snapshot: w.keep_entries_after_snapshot,
            event_log: eddy_storage::eventlog::EventLogConfig {
                segment_bytes: w.segment_bytes,
                retention_bytes: if w.retention_bytes == 0 { u64::MAX } else { w.retention_bytes },
                retention_ms: w.retention_hours.saturating_mul(3_600_000),
            },
            limits: eddy_worker::config::Limits {
                max_event_bytes: w.max_event_bytes,
                max_key_bytes: w.max_key_bytes,
                max_type_bytes: 256,
                max_batch_events: w.max_batch_events,
                max_batch_bytes: w.max_batch_bytes,
            },
            queue_depth: w.queue_depth,
            ..Default::default()
        }
    }

    fn validate_controller(&self) -> Result<(), ConfigError> {
        let c = &self.controller;
        if c.initial_members.is_empty() {
            return Err(ConfigError::new(
                "controller.initial_members",
                "must list the controller voters as [{ id = 1, addr = \"host:port\" }, ...]",
            ));
        }
        let mut ids = BTreeSet::new();
        for (i, m) in c.initial_members.iter().enumerate() {
            if m.id == 0 || !ids.insert(m.id) {
                return Err(ConfigError::new(
                    format!("controller.initial_members[{i}].id"),
                    format!("ids must be 1 or more and distinct, got {}", m.id),
                ));
            }
            check_host_port(&format!("controller.initial_members[{i}].addr"), &m.addr)?;
        }
        let me = c.initial_members.iter().find(|m| m.id == self.node.id);
        if self.has_role(Role::Controller) {
            match me {
                None => {
                    return Err(ConfigError::new(
                        "controller.initial_members",
                        format!("node {} has the controller role but is not listed", self.node.id),
                    ));
                }
                Some(m) if m.addr != self.advertise_addr() => {
                    return Err(ConfigError::new(
                        "controller.initial_members",
                        format!("lists node {} at {} but it advertises {}", m.id, m.addr, self.advertise_addr()),
                    ));
                }
                Some(_) => {}
            }
        }
        positive("controller.raft_heartbeat_interval_ms", c.raft_heartbeat_interval_ms)?;
        positive("controller.control_interval_ms", c.control_interval_ms)?;
        positive("controller.plan_interval_ms", c.plan_interval_ms)?;
        positive("controller.snapshot_every_entries", c.snapshot_every_entries)?;
        if c.election_timeout_min_ms <= c.raft_heartbeat_interval_ms {
            return Err(ConfigError::new(
                "controller.election_timeout_min_ms",
                "must exceed controller.raft_heartbeat_interval_ms",
            ));
        }
        if c.election_timeout_max_ms <= c.election_timeout_min_ms {
            return Err(ConfigError::new(
                "controller.election_timeout_max_ms",
                "must exceed controller.election_timeout_min_ms",
            ));
        }
        Ok(())
    }
}

fn positive(field: &str, value: u64) -> Result<(), ConfigError> {
    if value == 0 {
        return Err(ConfigError::new(field, "must be above 0"));
    }
    Ok(())
}

fn check_host_port(field: &str, addr: &str) -> Result<(), ConfigError> {
    let ok = addr.rsplit_once(':').is_some_and(|(host, port)| {
        !host.is_empty() && !addr.contains("://") && port.parse::<u16>().is_ok_and(|p| p != 0)
    });
    if ok { Ok(()) } else { Err(ConfigError::new(field, format!("`{addr}` is not host:port"))) }
}

fn from_figment(err: &figment::Error) -> ConfigError {
    // figment's path already ends with the name of an unknown field.
    let path = &err.path;
    let source = err.metadata.as_ref().map(|m| m.name.to_string());
    let reason = match &err.kind {
        figment::error::Kind::UnknownField(_, expected) => {
            format!("unknown field; expected one of: {}", expected.join(", "))
        }
        kind => kind.to_string(),
    };
    let field = if path.is_empty() { "(manifest)".to_owned() } else { path.join(".") };
    let reason = match source {
        Some(source) => format!("{reason} (from {source})"),
        None => reason,
    };
    ConfigError { field, reason }
}

#[cfg(test)]
mod tests;
