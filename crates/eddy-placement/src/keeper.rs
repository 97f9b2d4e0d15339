//! The controller's models and the bounded histories they learn from:
//! pure state updated by telemetry reports, with no clock of its own
//! (reports carry their time). The live controller leader's telemetry task
//! owns one, and the simulator feeds one its simulated telemetry, so both
//! plan with the same models.

use std::collections::{BTreeMap, VecDeque};

use crate::{LatencyCurve, Models, MoveTimes, PartitionLoadView};
use eddy_core::{NodeId, PartitionId};
use eddy_model::cost::MoveCostConfig;
use eddy_model::trace::{NodePoint, NodeTrace, PartitionPoint, PartitionTrace, Trace};
use eddy_model::{
    ForecastConfig, LatencyConfig, LatencyModel, MoveCostModel, NodePrice, PartitionLoad, Queue, price_per_hour_in_use,
};
use serde_json::{Value, json};

/// The models as the planner takes them.
#[derive(Debug, Clone, Default)]
pub struct PlannerInputs {
    pub loads: BTreeMap<PartitionId, PartitionLoadView>,
    pub models: Models,
}

/// One node's telemetry for one interval (the wire report, decoded).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NodeReport {
    pub node: NodeId,
    pub at_ms: u64,
    pub interval_ms: u64,
    pub capacity_cores: f64,
    pub price_per_hour: f64,
    pub host_cpu_busy: f64,
    pub process_cpu_cores: f64,
    pub processor_cpu_cores: f64,
    pub processed_events: u64,
    pub processed_p50_ms: f64,
    pub processed_p99_ms: f64,
    pub partitions: Vec<PartitionReport>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct PartitionReport {
    pub partition: PartitionId,
    pub leader: bool,
    pub events: u64,
    pub events_per_s: f64,
    pub bytes_per_s: f64,
    pub cpu_ms_per_event: Option<f64>,
    pub commit_p99_ms: f64,
    pub processed_p99_ms: f64,
    pub queue_depth: u64,
    pub log_bytes: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct KeeperConfig {
    /// Samples kept per node and per partition (one a second: an hour).
    pub history_samples: usize,
    /// How far ahead load is forecast for the planner.
    pub horizon_ms: u64,
    /// Processed events an interval needs before its p99 is a sample for
    /// the latency model (a p99 of a handful of events is noise).
    pub min_events_for_latency: u64,
    pub forecast: ForecastConfig,
    pub latency: LatencyConfig,
    pub moves: MoveCostConfig,
}

impl Default for KeeperConfig {
    fn default() -> Self {
        KeeperConfig {
            history_samples: 3600,
            horizon_ms: 120_000,
            min_events_for_latency: 50,
            forecast: ForecastConfig::default(),
            latency: LatencyConfig::default(),
            moves: MoveCostConfig::default(),
        }
    }
}

struct NodeEntry {
    capacity_cores: f64,
    price_per_hour: f64,
    last_at_ms: u64,
    last: NodeReport,
    history: VecDeque<NodePoint>,
    latency: LatencyModel,
    /// The latency model's curve, tabulated at the model's curve version:
    /// tabulating reads the queueing prior a hundred times, too slow to
    /// repeat for every node on every plan.
    tabulated: Option<(u64, LatencyCurve)>,
}

struct PartitionEntry {
    load: PartitionLoad,
    leader: NodeId,
    last: PartitionReport,
    history: VecDeque<PartitionPoint>,
}

pub struct ModelKeeper {
    config: KeeperConfig,
    nodes: BTreeMap<NodeId, NodeEntry>,
    partitions: BTreeMap<PartitionId, PartitionEntry>,
    moves: MoveCostModel,
    interval_ms: u64,
    reports: u64,
    stale: u64,
}

/// What the keeper did with a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observed {
    Learned,
    /// Not newer than the node's last report (a resent backlog).
    Stale,
}

fn push_bounded<T>(history: &mut VecDeque<T>, item: T, bound: usize) {
    history.push_back(item);
    while history.len() > bound {
        history.pop_front();
    }
}

impl ModelKeeper {
    pub fn new(config: KeeperConfig) -> Self {
        let moves = MoveCostModel::new(config.moves.clone());
        ModelKeeper {
            config,
            nodes: BTreeMap::new(),
            partitions: BTreeMap::new(),
            moves,
            interval_ms: 1000,
            reports: 0,
            stale: 0,
        }
    }

    pub fn observe(&mut self, report: NodeReport) -> Observed {
        let capacity =
            if report.capacity_cores.is_finite() && report.capacity_cores > 0.0 { report.capacity_cores } else { 1.0 };
        let entry = self.nodes.entry(report.node).or_insert_with(|| NodeEntry {
            capacity_cores: capacity,
            price_per_hour: report.price_per_hour,
            last_at_ms: 0,
            last: NodeReport::default(),
            history: VecDeque::new(),
            latency: LatencyModel::new(self.config.latency.clone(), Queue::for_cores(capacity, 1.0)),
            tabulated: None,
        });
        if report.at_ms <= entry.last_at_ms {
            self.stale += 1;
            return Observed::Stale;
        }
        self.reports += 1;
        if report.interval_ms > 0 {
            self.interval_ms = report.interval_ms;
        }
        entry.capacity_cores = capacity;
        entry.price_per_hour = report.price_per_hour;
        entry.last_at_ms = report.at_ms;
        let utilisation = report.processor_cpu_cores / capacity;
        let point = NodePoint {
            at_ms: report.at_ms,
            utilisation,
            processed_events: report.processed_events,
            processed_p99_ms: report.processed_p99_ms,
            host_cpu_busy: report.host_cpu_busy,
            process_cpu_cores: report.process_cpu_cores,
        };
        push_bounded(&mut entry.history, point, self.config.history_samples);
        if report.processed_events >= self.config.min_events_for_latency {
            entry.latency.observe(utilisation, report.processed_p99_ms);
        }
        // The node's queueing prior serves the mean CPU cost per event of
        // the partitions it leads, weighted by their rates.
        let (mut led_rate, mut led_cost) = (0.0, 0.0);
        for p in report.partitions.iter().filter(|p| p.leader) {
            let partition = self.partitions.entry(p.partition).or_insert_with(|| PartitionEntry {
                load: PartitionLoad::new(&self.config.forecast),
                leader: report.node,
                last: PartitionReport::default(),
                history: VecDeque::new(),
            });
            partition.leader = report.node;
            partition.last = p.clone();
            partition.load.observe(&eddy_model::LoadSample {
                at_ms: report.at_ms,
                events_per_s: p.events_per_s,
                cpu_ms_per_event: p.cpu_ms_per_event,
            });
            if partition.load.cost().samples() > 0 {
                let rate = partition.load.events_per_s_at(report.at_ms).max(1e-6);
                led_rate += rate;
                led_cost += rate * partition.load.cpu_ms_per_event_at(report.at_ms);
            }
            let point = PartitionPoint {
                at_ms: report.at_ms,
                leader: report.node,
                events: p.events,
                events_per_s: p.events_per_s,
                bytes_per_s: p.bytes_per_s,
                cpu_ms_per_event: p.cpu_ms_per_event,
            };
            push_bounded(&mut partition.history, point, self.config.history_samples);
        }
        let prior = (led_rate > 0.0 && led_cost > 0.0).then(|| Queue::for_cores(capacity, led_cost / led_rate));
        if let Some(entry) = self.nodes.get_mut(&report.node) {
            entry.last = report;
            if let Some(prior) = prior {
                let current = entry.latency.prior().service_time_ms;
                // Refitting on every small drift of the cost would refit every second.
                if (prior.service_time_ms - current).abs() > 0.05 * current {
                    entry.latency.set_prior(prior);
                }
            }
            let version = entry.latency.curve_version();
            if entry.tabulated.as_ref().is_none_or(|(at, _)| *at != version) {
                let latency = &entry.latency;
                entry.tabulated = Some((version, LatencyCurve::from_fn(|u| latency.predict_p99_ms(u))));
            }
        }
        Observed::Learned
    }

    /// A completed replica copy of `bytes` that took `duration_ms`: the
    /// move cost model learns the copy bandwidth from it.
    pub fn observe_move(&mut self, bytes: u64, duration_ms: u64) {
        self.moves.observe_move(bytes, duration_ms);
    }

    /// Forgets everything (this controller stopped leading: the next leader
    /// rebuilds from the workers' resent reports).
    pub fn clear(&mut self) {
        *self = ModelKeeper::new(self.config.clone());
    }

    pub fn reports(&self) -> u64 {
        self.reports
    }

    /// The models as `eddyctl models` shows them.
    pub fn describe(&self) -> Value {
        let latest = self.nodes.values().map(|n| n.last_at_ms).max().unwrap_or(0);
        let horizon = latest + self.config.horizon_ms;
        let partitions: Vec<Value> = self
            .partitions
            .iter()
            .map(|(id, p)| {
                json!({
                    "partition": id,
                    "leader": p.leader,
                    "events_per_s": p.load.rate().current(),
                    "events_per_s_forecast": p.load.events_per_s_at(horizon),
                    "trend_per_s": p.load.rate().trend_per_s(),
                    "cpu_ms_per_event": p.load.cpu_ms_per_event_at(latest),
                    "cpu_cores_forecast": p.load.cpu_cores_at(horizon),
                    "last": {
                        "events_per_s": p.last.events_per_s,
                        "bytes_per_s": p.last.bytes_per_s,
                        "commit_p99_ms": p.last.commit_p99_ms,
                        "processed_p99_ms": p.last.processed_p99_ms,
                        "queue_depth": p.last.queue_depth,
                        "log_bytes": p.last.log_bytes,
                    },
                    "quality": p.load.quality(),
                })
            })
            .collect();
        let nodes: Vec<Value> = self.nodes.iter().map(|(id, n)| self.describe_node(*id, n)).collect();
        let prices: Vec<NodePrice> = self
            .nodes
            .values()
            .map(|n| NodePrice {
                price_per_hour: n.price_per_hour,
                // A node holding any replica, leader or not, is paid for.
                in_use: !n.last.partitions.is_empty(),
            })
            .collect();
        json!({
            "reports": self.reports,
            "stale_reports": self.stale,
            "latest_at_ms": latest,
            "horizon_ms": self.config.horizon_ms,
            "partitions": partitions,
            "nodes": nodes,
            "cost": {
                "price_per_hour_in_use": price_per_hour_in_use(&prices),
                "move_copy_bytes_per_s": self.moves.copy_bytes_per_s(),
                "quality": self.moves.quality(),
            },
        })
    }

    fn describe_node(&self, id: NodeId, n: &NodeEntry) -> Value {
        let utilisation = n.history.back().map_or(0.0, |p| p.utilisation);
        let (prior_error, learned_error) = n.latency.errors();
        json!({
            "node": id,
            "capacity_cores": n.capacity_cores,
            "price_per_hour": n.price_per_hour,
            "utilisation": utilisation,
            "measured_p99_ms": n.last.processed_p99_ms,
            "processed_events": n.last.processed_events,
            "host_cpu_busy": n.last.host_cpu_busy,
            "process_cpu_cores": n.last.process_cpu_cores,
            "replicas": n.last.partitions.len(),
            "leading": n.last.partitions.iter().filter(|p| p.leader).count(),
            "predicted_p99_ms": n.latency.predict_p99_ms(utilisation),
            "curve": n.latency.active(),
            "prior": n.latency.prior(),
            "learned": n.latency.fit(),
            // The active curve at fixed utilisations, for plots and checks.
            "curve_p99_ms": (1..=9)
                .map(|tenth| {
                    let u = f64::from(tenth) / 10.0;
                    json!({ "utilisation": u, "p99_ms": n.latency.predict_p99_ms(u) })
                })
                .collect::<Vec<_>>(),
            "prior_error": prior_error,
            "learned_error": learned_error,
            "quality": n.latency.quality(),
        })
    }

    /// What the planner needs from the models: each partition's load
    /// forecast `horizon_ms` past the latest report, its log size, each
    /// node's p99 curve (the learned one only where the trust gate allows
    /// it) and move times at the learned copy bandwidth.
    pub fn planner_inputs(&self) -> PlannerInputs {
        let latest = self.nodes.values().map(|n| n.last_at_ms).max().unwrap_or(0);
        let horizon = latest + self.config.horizon_ms;
        let loads: BTreeMap<PartitionId, PartitionLoadView> = self
            .partitions
            .iter()
            .map(|(id, p)| {
                let load = PartitionLoadView {
                    events_per_s: p.load.events_per_s_at(horizon),
                    cpu_ms_per_event: p.load.cpu_ms_per_event_at(latest),
                    size_bytes: p.last.log_bytes,
                };
                (*id, load)
            })
            .collect();
        let (rate, cost) =
            loads.values().fold((0.0, 0.0), |(r, c), l| (r + l.events_per_s, c + l.events_per_s * l.cpu_ms_per_event));
        let mean_cost = (rate > 0.0 && cost > 0.0).then(|| cost / rate);
        let curves = self.nodes.iter().map(|(id, n)| (*id, planner_curve(n, mean_cost))).collect();
        let move_times = MoveTimes {
            copy_bytes_per_s: self.moves.copy_bytes_per_s(),
            replica_fixed_s: self.config.moves.fixed_s,
            leader_transfer_s: self.config.moves.leader_transfer_s,
        };
        PlannerInputs { loads, models: Models { curves, move_times } }
    }

    /// A node's latency model, for the planner and for tests.
    pub fn latency(&self, node: NodeId) -> Option<&LatencyModel> {
        self.nodes.get(&node).map(|n| &n.latency)
    }

    pub fn load(&self, partition: PartitionId) -> Option<&PartitionLoad> {
        self.partitions.get(&partition).map(|p| &p.load)
    }

    /// The recorded history, in the trace format the simulator replays.
    pub fn trace(&self) -> Trace {
        let mut trace = Trace::new(self.interval_ms);
        trace.nodes = self
            .nodes
            .iter()
            .map(|(id, n)| NodeTrace {
                node: *id,
                capacity_cores: n.capacity_cores,
                price_per_hour: n.price_per_hour,
                samples: n.history.iter().copied().collect(),
            })
            .collect();
        trace.partitions = self
            .partitions
            .iter()
            .map(|(id, p)| PartitionTrace { partition: *id, samples: p.history.iter().copied().collect() })
            .collect();
        trace
    }
}

/// A node's p99 curve as the planner reads it: in terms of the
/// cluster's mean cost per event rather than of the events the node
/// serves now. A node's curve (prior and learned) is measured in the
/// service time of what it leads: unscaled, a node leading costly
/// partitions would look many times slower at any load than an idle
/// one, and the planner would pile the costly partitions onto the idle
/// node, to move them back a round later.
fn planner_curve(node: &NodeEntry, cluster_cpu_ms_per_event: Option<f64>) -> LatencyCurve {
    let own = node.latency.prior().service_time_ms;
    let scale = match cluster_cpu_ms_per_event {
        Some(mean) if own > 0.0 => Queue::for_cores(node.capacity_cores, mean).service_time_ms / own,
        _ => 1.0,
    };
    match &node.tabulated {
        Some((version, curve)) if *version == node.latency.curve_version() => curve.scaled(scale),
        _ => LatencyCurve::from_fn(|u| node.latency.predict_p99_ms(u) * scale),
    }
}

#[cfg(test)]
#[path = "keeper_tests.rs"]
mod tests;
