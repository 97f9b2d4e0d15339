//! The fast engine: time steps over a queueing model per node. At each
//! step the workload's rate is split over partitions, each partition's
//! leader carries its CPU (followers a share of it), and each node's
//! response times follow the M/M/c tail with the Allen-Cunneen correction
//! from `eddy-model`; above its capacity a node builds a fluid backlog
//! that every event waits behind. Failures take nodes down or slow them;
//! a partition whose leader is down serves nothing until an election.
//! Every `plan_interval_s` the real planner plans on the telemetry (with
//! seeded noise), and in mode `auto` its moves complete after their
//! predicted time.

use std::collections::{BTreeMap, BTreeSet};

use eddy_core::{NodeId, NodeState, PartitionId, PlacementMode};
use eddy_model::queueing::Queue;
use eddy_placement::{ClusterSnapshot, LatencyCurve, Models, Move, MoveTimes};

use crate::cluster::{SimNode, elect, failures_at, initial_snapshot, nodes};
use crate::curves::Curves;
use crate::histogram::Histogram;
use crate::report::{SeriesPoint, Summary};
use crate::scenario::Scenario;
use crate::spread::{LogBytes, Spread, index_of};
use crate::telemetry::{NodeStep, ReportContext, Telemetry};
use crate::workload::{CostMix, Demand};

/// CPU a replica copy takes on each of the two nodes, in cores.
const COPY_CORES: f64 = 0.1;
/// How often a point of the time series is kept.
const SERIES_EVERY_S: f64 = 60.0;

/// A move under way and when it completes.
#[derive(Debug, Clone, Copy)]
struct Moving {
    change: Move,
    started_at_s: f64,
    done_at_s: f64,
    /// Bytes copied, if the move copies a replica.
    copies: Option<f64>,
}

/// What a run produced.
#[derive(Debug, Clone)]
pub struct Run {
    pub summary: Summary,
    pub series: Vec<SeriesPoint>,
    /// Wall-clock seconds spent in the planner. Not in the summary: it
    /// varies from run to run, and the summary must not.
    pub planner_time_s: f64,
}

pub struct Engine<'a> {
    s: &'a Scenario,
    nodes: Vec<SimNode>,
    cluster: ClusterSnapshot,
    demand: Demand,
    /// The cost of an event, as of the last change of the demand's epoch.
    cost: CostMix,
    /// Each partition's mean cost, as of the same.
    costs_ms: Vec<f64>,
    /// Each partition's share of the events, and the hot set it is for.
    shares: Vec<f64>,
    shares_epoch: u64,
    /// How the load falls on the nodes; `None` after anything it depends on changed.
    spread: Option<Spread>,
    down: BTreeSet<NodeId>,
    moving: Vec<Moving>,
    leaderless_since: BTreeMap<PartitionId, f64>,
    bytes: LogBytes,
    step: u64,
    latency: Histogram,
    unserved: f64,
    /// Events offered so far.
    offered: f64,
    cost_money: f64,
    moves: u64,
    bytes_moved: f64,
    planner_calls: u64,
    planner_time_s: f64,
    series: Vec<SeriesPoint>,
    window: Histogram,
    curves: Curves,
    /// The queueing prior of each node, for plans before any telemetry.
    models: Models,
    telemetry: Telemetry,
}

/// The models the planner gets: each node's queueing prior for its
/// capacity and the workload's mean cost, tabulated once for the run (the
/// planner would otherwise tabulate it on every call, which is most of a
/// run's time).
fn prior_models(s: &Scenario, cluster: &ClusterSnapshot, cpu_ms_per_event: f64) -> Models {
    let curves = cluster
        .nodes
        .iter()
        .map(|node| {
            let queue = Queue::for_cores(node.capacity_cores.max(0.01), cpu_ms_per_event);
            (node.id, LatencyCurve::from_fn(|u| queue.p99_ms(u)))
        })
        .collect();
    let move_times = MoveTimes { copy_bytes_per_s: s.controller.copy_bytes_per_s, ..MoveTimes::default() };
    Models { curves, move_times }
}

impl<'a> Engine<'a> {
    pub fn new(s: &'a Scenario) -> Self {
        let nodes = nodes(s);
        let cluster = initial_snapshot(s, &nodes);
        let demand = Demand::of(s);
        let shares = demand.shares(0.0);
        let cost = demand.cost(0.0);
        let models = prior_models(s, &cluster, cost.mean_ms);
        Engine {
            telemetry: Telemetry::new(nodes.len(), s.controller.telemetry_interval_s, models.move_times),
            models,
            cost,
            bytes: LogBytes::new(shares.clone(), s.controller.bytes_per_event),
            shares_epoch: demand.epoch(0.0),
            costs_ms: demand.partition_costs_ms(0.0),
            shares,
            demand,
            spread: None,
            down: BTreeSet::new(),
            s,
            nodes,
            cluster,
            moving: Vec::new(),
            leaderless_since: BTreeMap::new(),
            step: 0,
            latency: Histogram::default(),
            unserved: 0.0,
            offered: 0.0,
            cost_money: 0.0,
            moves: 0,
            bytes_moved: 0.0,
            planner_calls: 0,
            planner_time_s: 0.0,
            series: Vec::new(),
            window: Histogram::default(),
            curves: Curves::default(),
        }
    }

    /// Runs the scenario to its end; `progress` hears the share done.
    pub fn run(mut self, mut progress: impl FnMut(f64)) -> Run {
        let steps = (self.s.duration_s / self.s.step_s).ceil() as u64;
        let plan_every = (self.s.controller.plan_interval_s / self.s.step_s).round().max(1.0) as u64;
        for step in 0..steps {
            self.step = step;
            let t_s = step as f64 * self.s.step_s;
            self.apply_failures(t_s);
            self.complete_moves(t_s);
            self.follow_shares(t_s);
            if step % plan_every == plan_every - 1 && self.s.placement.mode != PlacementMode::Off {
                self.plan(t_s);
            }
            self.serve(t_s);
            if self.telemetry.due() {
                self.report(t_s + self.s.step_s);
            }
            if step % 64 == 0 {
                progress(step as f64 / steps as f64);
            }
        }
        progress(1.0);
        self.finish()
    }

    fn apply_failures(&mut self, t_s: f64) {
        let (down, _) = failures_at(self.s, &self.nodes, t_s);
        if down == self.down && self.leaderless_since.is_empty() {
            return;
        }
        for node in &mut self.cluster.nodes {
            let is_down = down.contains(&node.id);
            if is_down && node.state == NodeState::Up {
                node.state = NodeState::Down;
            } else if !is_down && node.state == NodeState::Down {
                node.state = NodeState::Up;
            }
        }
        for p in &mut self.cluster.partitions {
            if p.leader.is_some_and(|l| !down.contains(&l)) {
                self.leaderless_since.remove(&p.id);
                continue;
            }
            let since = *self.leaderless_since.entry(p.id).or_insert(t_s);
            if t_s - since >= self.s.controller.election_s
                && let Some(next) = elect(self.s.seed, p.id, &p.replicas, &down, self.step)
            {
                p.leader = Some(next);
                self.leaderless_since.remove(&p.id);
            }
        }
        self.down = down;
        self.spread = None;
    }

    fn complete_moves(&mut self, t_s: f64) {
        if self.moving.iter().all(|m| m.done_at_s > t_s) {
            return;
        }
        let (done, still): (Vec<Moving>, Vec<Moving>) = self.moving.iter().partition(|m| m.done_at_s <= t_s);
        self.moving = still;
        for m in done {
            self.cluster.apply(&m.change);
            if let Some(bytes) = m.copies {
                self.telemetry.observe_move(bytes, m.done_at_s - m.started_at_s);
            }
        }
        self.spread = None;
    }

    /// Takes the shares and cost in force at `t_s` (the hot set, or the
    /// trace's slot).
    fn follow_shares(&mut self, t_s: f64) {
        let epoch = self.demand.epoch(t_s);
        if epoch != self.shares_epoch {
            self.shares = self.demand.shares(t_s);
            self.cost = self.demand.cost(t_s);
            self.costs_ms = self.demand.partition_costs_ms(t_s);
            self.bytes.set_shares(&self.shares);
            self.shares_epoch = epoch;
            self.spread = None;
        }
    }

    /// Every node reports the telemetry interval just ended to the models.
    fn report(&mut self, t_s: f64) {
        let ctx = ReportContext {
            t_s,
            seed: self.s.seed,
            noise: self.s.controller.telemetry_noise,
            cluster: &self.cluster,
            down: &self.down,
            leaderless: &self.leaderless_since,
            costs_ms: &self.costs_ms,
            bytes_per_event: self.s.controller.bytes_per_event,
            step: self.step,
        };
        let bytes = &self.bytes;
        self.telemetry.report(&ctx, &self.shares, |p| bytes.of(p));
    }

    /// The planner's inputs: the cluster with each partition's load as the
    /// models forecast it, and the models' latency curves and move times.
    fn planner_inputs(&self) -> (ClusterSnapshot, Models) {
        let mut snapshot = self.cluster.clone();
        snapshot.in_flight = self.moving.iter().map(|m| m.change.partition()).collect();
        let Some(inputs) = self.telemetry.planner_inputs() else {
            return (snapshot, self.models.clone());
        };
        // Both in partition order: walked together rather than looked up.
        let mut loads = inputs.loads.iter().peekable();
        for p in &mut snapshot.partitions {
            while loads.next_if(|(id, _)| **id < p.id).is_some() {}
            let load = loads.next_if(|(id, _)| **id == p.id).map(|(_, l)| *l).unwrap_or_default();
            p.events_per_s = load.events_per_s;
            p.cpu_ms_per_event = load.cpu_ms_per_event;
            p.size_bytes = load.size_bytes.max(self.bytes.of(p.id) as u64);
        }
        let mut models = inputs.models;
        for (id, prior) in &self.models.curves {
            models.curves.entry(*id).or_insert_with(|| prior.clone());
        }
        (snapshot, models)
    }

    fn plan(&mut self, t_s: f64) {
        let (snapshot, models) = self.planner_inputs();
        // Moves take the scenario's time; the planner predicts them with
        // what the models learned.
        let times = self.models.move_times;
        let started = std::time::Instant::now();
        let plan = eddy_placement::plan(&snapshot, &models, &self.s.placement.policy);
        self.planner_time_s += started.elapsed().as_secs_f64();
        self.planner_calls += 1;
        if self.s.placement.mode != PlacementMode::Auto {
            return;
        }
        for op in plan.operations {
            let change = op.change;
            let size = self.bytes.of(change.partition());
            let (duration_s, copies) = match change {
                Move::TransferLeader { .. } | Move::RemoveReplica { .. } => (times.leader_transfer_s, None),
                Move::AddReplica { .. } | Move::MoveReplica { .. } => (times.replica_move_s(size as u64), Some(size)),
            };
            self.bytes_moved += copies.unwrap_or(0.0);
            self.moves += 1;
            self.moving.push(Moving { change, started_at_s: t_s, done_at_s: t_s + duration_s, copies });
        }
    }

    /// CPU of the copies under way, by node index.
    fn copy_cores(&self) -> Vec<f64> {
        let mut cores = vec![0.0; self.nodes.len()];
        for m in self.moving.iter().filter(|m| m.copies.is_some()) {
            let (Move::AddReplica { node: to, .. } | Move::MoveReplica { to, .. }) = m.change else { continue };
            // The new replica catches up from the partition's leader.
            let partition = m.change.partition();
            let from =
                self.cluster.partitions.get(partition as usize).filter(|p| p.id == partition).and_then(|p| p.leader);
            for node in [Some(to), from].into_iter().flatten() {
                if let Some(i) = index_of(node, cores.len()) {
                    cores[i] += COPY_CORES;
                }
            }
        }
        cores
    }

    /// Serves one step of events and records their response times.
    fn serve(&mut self, t_s: f64) {
        let dt = self.s.step_s;
        let rate = self.demand.rate_per_s(t_s);
        let (_, slow) = failures_at(self.s, &self.nodes, t_s);
        let spread = self.spread.take().unwrap_or_else(|| {
            let follower_share = self.s.placement.policy.follower_cpu_share;
            let n = self.nodes.len();
            Spread::of(&self.cluster, &self.leaderless_since, &self.shares, &self.costs_ms, follower_share, n)
        });
        self.offered += rate * dt;
        self.unserved += rate * dt * spread.unserved_share;
        self.bytes.add_events(rate * dt);
        let copies = self.copy_cores();
        let mut in_use_price = 0.0;
        let mut utilisation = Vec::with_capacity(self.nodes.len());
        let mut steps = vec![NodeStep::default(); self.nodes.len()];
        for (i, node) in self.nodes.iter_mut().enumerate() {
            if spread.hosts[i] && !self.down.contains(&node.id) {
                in_use_price += node.price_per_hour;
            }
            let speed = node.speed * slow.get(&node.id).copied().unwrap_or(1.0);
            let capacity = node.cores * speed;
            let demand = rate * spread.cores_per_rate[i] + copies[i];
            node.backlog_cpu_s = (node.backlog_cpu_s + (demand - capacity) * dt).max(0.0);
            let rho = demand / capacity;
            utilisation.push(rho);
            let events = rate * spread.led_share[i] * dt;
            if events <= 0.0 {
                steps[i] = NodeStep { utilisation: rho, ..NodeStep::default() };
                continue;
            }
            let cost_ms = if spread.led_cost_ms[i] > 0.0 { spread.led_cost_ms[i] } else { self.cost.mean_ms };
            // A mean of equal costs comes back a few ulps off; rounded, so
            // that nodes of the same curve share its cache entry.
            let cost_ms = (cost_ms * 1e9).round() / 1e9;
            let queue = Queue { service_scv: self.cost.scv, ..Queue::for_cores(node.cores, cost_ms / speed) };
            let backlog_ms = node.backlog_cpu_s / capacity * 1000.0;
            let (key, curve) = self.curves.curve(&queue, rho);
            steps[i] =
                NodeStep { utilisation: rho, events, p99_ms: curve.p99_ms + backlog_ms, slowdown: node.speed / speed };
            if backlog_ms > 0.0 {
                self.curves.add_shifted(&curve, backlog_ms, events, &mut [&mut self.latency, &mut self.window]);
            } else {
                self.curves.defer(key, events);
            }
        }
        self.spread = Some(spread);
        self.telemetry.record(dt, rate * dt, &steps);
        self.cost_money += in_use_price * dt / 3600.0;
        let next = t_s + dt;
        if (next / SERIES_EVERY_S).floor() > (t_s / SERIES_EVERY_S).floor() || next >= self.s.duration_s {
            self.curves.flush(&mut [&mut self.latency, &mut self.window]);
            self.series.push(SeriesPoint {
                t_s: next,
                events_per_s: rate,
                p99_ms: self.window.quantile_ms(0.99),
                price_per_hour: in_use_price,
                moves_in_flight: self.moving.len(),
                utilisation,
            });
            self.window = Histogram::default();
        }
    }

    fn finish(mut self) -> Run {
        self.curves.flush(&mut [&mut self.latency]);
        let served = self.latency.total();
        let offered = self.offered;
        let timeout_ms = self.s.controller.timeout_ms;
        let answered = served * self.latency.share_within(timeout_ms);
        let summary = Summary {
            scenario: self.s.name.clone(),
            seed: self.s.seed,
            policy: self.s.placement.policy.name.as_str().to_owned(),
            mode: self.s.placement.mode.as_str().to_owned(),
            events: offered,
            p50_ms: self.latency.quantile_ms(0.5),
            p99_ms: self.latency.quantile_ms(0.99),
            p999_ms: self.latency.quantile_ms(0.999),
            slo_p99_ms: self.s.placement.policy.slo_p99_ms,
            slo_attainment: if served > 0.0 {
                self.latency.share_within(self.s.placement.policy.slo_p99_ms)
            } else {
                1.0
            },
            availability: if offered > 0.0 { (answered / offered).min(1.0) } else { 1.0 },
            cost: self.cost_money,
            moves: self.moves,
            bytes_moved: self.bytes_moved,
            planner_calls: self.planner_calls,
            nodes_on_learned_curve: self.telemetry.learned_nodes(self.nodes.iter().map(|n| n.id)),
        };
        Run { summary, series: self.series, planner_time_s: self.planner_time_s }
    }
}

/// Runs `s` in the fast engine.
pub fn run(s: &Scenario, progress: impl FnMut(f64)) -> Run {
    Engine::new(s).run(progress)
}
