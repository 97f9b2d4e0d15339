//! Simulated telemetry: what each node would report every telemetry
//! interval (its CPU, events served and their p99, and per partition it
//! leads the rate, CPU per event and log size), with seeded noise, fed to
//! the controller's own model keeper (`eddy_placement::keeper`). The
//! planner then plans on the keeper's load forecasts and learned latency
//! curves, as the live controller does.

use eddy_core::{NodeId, PartitionId};
use eddy_model::MoveCostConfig;
use eddy_placement::keeper::{KeeperConfig, ModelKeeper, NodeReport, PartitionReport, PlannerInputs};
use eddy_placement::{ClusterSnapshot, MoveTimes};

use crate::cluster::noise;

/// One node's step, as the engine saw it.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct NodeStep {
    /// CPU busy over capacity (capped at 1: a node cannot report more).
    pub(crate) utilisation: f64,
    pub(crate) events: f64,
    pub(crate) p99_ms: f64,
    /// How much slower than nominal its events run (1: as fast as it should).
    pub(crate) slowdown: f64,
}

/// Sums since the last report, per node.
#[derive(Debug, Clone, Copy, Default)]
struct Pending {
    busy_s: f64,
    events: f64,
    p99_events_ms: f64,
    slow_events: f64,
}

pub(crate) struct Telemetry {
    keeper: ModelKeeper,
    interval_s: f64,
    since_s: f64,
    /// Events offered since the last report, for the mean rate.
    events_since: f64,
    pending: Vec<Pending>,
    reports: u64,
}

impl Telemetry {
    pub(crate) fn new(nodes: usize, interval_s: f64, move_times: MoveTimes) -> Self {
        let defaults = KeeperConfig::default();
        let config = KeeperConfig {
            // Histories serve `eddyctl trace` and status pages; the models
            // keep their own windows. An hour of every partition would be
            // gigabytes.
            history_samples: 2,
            moves: MoveCostConfig {
                fixed_s: move_times.replica_fixed_s,
                leader_transfer_s: move_times.leader_transfer_s,
                ..defaults.moves.clone()
            },
            ..defaults
        };
        Telemetry {
            keeper: ModelKeeper::new(config),
            interval_s,
            since_s: 0.0,
            events_since: 0.0,
            pending: vec![Pending::default(); nodes],
            reports: 0,
        }
    }

    /// Adds one step of `dt` seconds in which `events` were offered.
    pub(crate) fn record(&mut self, dt: f64, events: f64, steps: &[NodeStep]) {
        self.since_s += dt;
        self.events_since += events;
        for (pending, step) in self.pending.iter_mut().zip(steps) {
            pending.busy_s += step.utilisation.min(1.0) * dt;
            pending.events += step.events;
            pending.p99_events_ms += step.p99_ms * step.events;
            pending.slow_events += step.slowdown * step.events;
        }
    }

    /// Whether a report is due after the step just recorded.
    pub(crate) fn due(&self) -> bool {
        self.since_s >= self.interval_s - 1e-9
    }

    /// Every node reports what it did since the last report. `shares`
    /// splits the offered events over partitions; `size_of` gives a
    /// partition's log bytes.
    pub(crate) fn report(&mut self, ctx: &ReportContext<'_>, shares: &[f64], size_of: impl Fn(PartitionId) -> f64) {
        let interval_s = self.since_s.max(1e-9);
        let rate = self.events_since / interval_s;
        let at_ms = (ctx.t_s * 1000.0).round() as u64;
        let amount = ctx.noise;
        let mut led: Vec<Vec<PartitionId>> = vec![Vec::new(); ctx.cluster.nodes.len()];
        for p in ctx.cluster.partitions.iter().filter(|p| !ctx.leaderless.contains_key(&p.id)) {
            if let Some(i) = p.leader.and_then(|l| crate::spread::index_of(l, led.len())) {
                led[i].push(p.id);
            }
        }
        for (i, node) in ctx.cluster.nodes.iter().enumerate() {
            let pending = std::mem::take(&mut self.pending[i]);
            if ctx.down.contains(&node.id) {
                continue;
            }
            let slowdown = if pending.events > 0.0 { pending.slow_events / pending.events } else { 1.0 };
            let partitions = led[i]
                .iter()
                .map(|id| partition_report(ctx, *id, rate, interval_s, shares, slowdown, size_of(*id)))
                .collect();
            let capacity = node.capacity_cores;
            let busy = pending.busy_s / interval_s;
            let p99_ms = if pending.events > 0.0 { pending.p99_events_ms / pending.events } else { 0.0 };
            let salt = self.reports;
            let report = NodeReport {
                node: node.id,
                at_ms,
                interval_ms: (interval_s * 1000.0).round() as u64,
                capacity_cores: capacity,
                price_per_hour: node.price_per_hour,
                host_cpu_busy: busy,
                process_cpu_cores: busy * capacity,
                processor_cpu_cores: busy * capacity * noise(ctx.seed ^ 3, salt, node.id as u32, amount),
                processed_events: pending.events.round() as u64,
                processed_p50_ms: 0.0,
                processed_p99_ms: p99_ms * noise(ctx.seed ^ 4, salt, node.id as u32, amount),
                partitions,
            };
            self.keeper.observe(report);
        }
        self.reports += 1;
        self.since_s = 0.0;
        self.events_since = 0.0;
    }

    pub(crate) fn observe_move(&mut self, bytes: f64, duration_s: f64) {
        self.keeper.observe_move(bytes as u64, (duration_s * 1000.0).round() as u64);
    }

    /// Nodes among `nodes` whose latency model has switched to its
    /// learned curve (the trust gate let it replace the queueing prior).
    pub(crate) fn learned_nodes(&self, nodes: impl Iterator<Item = NodeId>) -> usize {
        nodes
            .filter(|n| self.keeper.latency(*n).is_some_and(|m| m.active() == eddy_model::latency::Curve::Learned))
            .count()
    }

    /// The loads and models the planner gets, `None` before any report.
    pub(crate) fn planner_inputs(&self) -> Option<PlannerInputs> {
        (self.keeper.reports() > 0).then(|| self.keeper.planner_inputs())
    }
}

/// What a report needs from the engine.
pub(crate) struct ReportContext<'a> {
    pub(crate) t_s: f64,
    pub(crate) seed: u64,
    pub(crate) noise: f64,
    pub(crate) cluster: &'a ClusterSnapshot,
    pub(crate) down: &'a std::collections::BTreeSet<NodeId>,
    pub(crate) leaderless: &'a std::collections::BTreeMap<PartitionId, f64>,
    /// By partition.
    pub(crate) costs_ms: &'a [f64],
    pub(crate) bytes_per_event: f64,
    pub(crate) step: u64,
}

/// Partition `id` as its leader reports it.
fn partition_report(
    ctx: &ReportContext<'_>,
    id: PartitionId,
    rate: f64,
    interval_s: f64,
    shares: &[f64],
    slowdown: f64,
    size_bytes: f64,
) -> PartitionReport {
    let share = shares.get(id as usize).copied().unwrap_or(0.0);
    let events_per_s = rate * share * noise(ctx.seed, ctx.step, id, ctx.noise);
    let cost =
        ctx.costs_ms.get(id as usize).copied().unwrap_or(0.0) * slowdown * noise(ctx.seed ^ 1, ctx.step, id, ctx.noise);
    PartitionReport {
        partition: id,
        leader: true,
        events: (events_per_s * interval_s).round() as u64,
        events_per_s,
        bytes_per_s: events_per_s * ctx.bytes_per_event,
        cpu_ms_per_event: (events_per_s > 0.0).then_some(cost),
        log_bytes: size_bytes as u64,
        ..PartitionReport::default()
    }
}
