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

use eddy_core::{
    ClusterMap, ClusterSettings, NodeId, NodeRecord, NodeSpec, NodeState, PartitionId, PartitionTable, PlacementMode,
    Role,
};
use eddy_model::queueing::Queue;
use eddy_placement::{ClusterSnapshot, InitialPlacer, Models, Move, MoveTimes, PartitionLoadView, Placer, Snapshot};

use crate::histogram::{Histogram, quantile_grid};
use crate::report::{SeriesPoint, Summary};
use crate::scenario::{Failure, Scenario};
use crate::workload::{CostMix, KeySpace, cost_mix, rate_per_s};

/// CPU a replica copy takes on each of the two nodes, in cores.
const COPY_CORES: f64 = 0.1;
/// How often a point of the time series is kept.
const SERIES_EVERY_S: f64 = 60.0;

/// One node as the engine runs it.
#[derive(Debug, Clone)]
pub(crate) struct SimNode {
    pub(crate) id: NodeId,
    pub(crate) cores: f64,
    pub(crate) speed: f64,
    pub(crate) price_per_hour: f64,
    zone: String,
    /// CPU seconds of work queued beyond capacity.
    backlog_cpu_s: f64,
}

/// A move under way and when it completes.
#[derive(Debug, Clone, Copy)]
struct Moving {
    change: Move,
    done_at_s: f64,
    copies: bool,
}

/// What a run produced.
#[derive(Debug, Clone)]
pub struct Run {
    pub summary: Summary,
    pub series: Vec<SeriesPoint>,
}

/// Numbers the nodes 1.. in the order of the scenario's types.
pub(crate) fn nodes(s: &Scenario) -> Vec<SimNode> {
    let mut nodes = Vec::new();
    for t in &s.node_types {
        for i in 0..t.count as usize {
            nodes.push(SimNode {
                id: nodes.len() as NodeId + 1,
                cores: t.cores,
                speed: t.speed,
                price_per_hour: t.price_per_hour,
                zone: t.zones[i % t.zones.len()].clone(),
                backlog_cpu_s: 0.0,
            });
        }
    }
    nodes
}

/// The cluster as the initial placer leaves it; capacities count speed,
/// so the planner sees every node in cores of the reference speed.
pub(crate) fn initial_snapshot(s: &Scenario, nodes: &[SimNode]) -> ClusterSnapshot {
    let records = nodes
        .iter()
        .map(|n| {
            let spec = NodeSpec {
                id: n.id,
                addr: String::new(),
                zone: n.zone.clone(),
                capacity_cores: n.cores * n.speed,
                price_per_hour: n.price_per_hour,
                roles: vec![Role::Worker],
            };
            (n.id, NodeRecord { spec, state: NodeState::Up, state_since_ms: 0 })
        })
        .collect();
    let mut map = ClusterMap {
        cluster_id: Some(s.name.clone()),
        settings: Some(ClusterSettings { partition_count: s.partitions, replication_factor: s.replication_factor }),
        nodes: records,
        nodes_version: 1,
        table: PartitionTable::unassigned(s.partitions),
        placement: Default::default(),
    };
    let placed = InitialPlacer.plan(&Snapshot { map: &map });
    // The initial placer fits the table by construction.
    let _ = map.apply_operations(&placed.operations);
    ClusterSnapshot::from_map(&map, &BTreeMap::new(), BTreeSet::new())
}

/// Down nodes and speed factors at `t_s`.
fn failures_at(s: &Scenario, nodes: &[SimNode], t_s: f64) -> (BTreeSet<NodeId>, BTreeMap<NodeId, f64>) {
    let mut down = BTreeSet::new();
    let mut slow = BTreeMap::new();
    let during = |at: f64, length: f64| t_s >= at && t_s < at + length;
    for failure in &s.failures {
        match failure {
            Failure::Crash { node, at_s, for_s } if during(*at_s, *for_s) => {
                down.insert(*node);
            }
            Failure::ZoneLoss { zone, at_s, for_s } if during(*at_s, *for_s) => {
                down.extend(nodes.iter().filter(|n| n.zone == *zone).map(|n| n.id));
            }
            Failure::Slow { node, factor, at_s, for_s } if during(*at_s, *for_s) => {
                *slow.entry(*node).or_insert(1.0) *= factor;
            }
            Failure::RollingRestart { at_s, every_s, down_s } if t_s >= *at_s => {
                let turn = ((t_s - at_s) / every_s).floor() as usize;
                if turn < nodes.len() && t_s - at_s - turn as f64 * every_s < *down_s {
                    down.insert(nodes[turn].id);
                }
            }
            _ => {}
        }
    }
    (down, slow)
}

/// A deterministic noise factor in [1 - amount, 1 + amount].
fn noise(seed: u64, step: u64, partition: PartitionId, amount: f64) -> f64 {
    let mut bytes = [0u8; 20];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    bytes[8..16].copy_from_slice(&step.to_le_bytes());
    bytes[16..].copy_from_slice(&partition.to_le_bytes());
    let unit = (xxhash_rust::xxh3::xxh3_64(&bytes) >> 11) as f64 / (1u64 << 53) as f64;
    1.0 + amount * (2.0 * unit - 1.0)
}

pub struct Engine<'a> {
    s: &'a Scenario,
    nodes: Vec<SimNode>,
    cluster: ClusterSnapshot,
    keys: KeySpace,
    cost: CostMix,
    grid: Vec<(f64, f64)>,
    moving: Vec<Moving>,
    leaderless_since: BTreeMap<PartitionId, f64>,
    bytes: Vec<f64>,
    step: u64,
    latency: Histogram,
    unserved: f64,
    /// Events offered so far.
    offered: f64,
    cost_money: f64,
    moves: u64,
    bytes_moved: f64,
    planner_calls: u64,
    series: Vec<SeriesPoint>,
    window: Histogram,
    curves: QuantileCache,
}

/// Response-time quantiles on the grid, by queue and utilisation (in
/// thousandths): inverting the tail for every node at every step would
/// cost most of a run, and a run meets few distinct queues.
type QuantileCache = BTreeMap<(u64, u64, u64, u32, u64), std::rc::Rc<Vec<f64>>>;

/// Utilisation is read in steps of this.
const UTILISATION_STEP: f64 = 1e-3;

fn quantiles(cache: &mut QuantileCache, grid: &[(f64, f64)], queue: &Queue, rho: f64) -> std::rc::Rc<Vec<f64>> {
    let level = (rho.clamp(0.0, 1.0) / UTILISATION_STEP).round();
    let key = (
        queue.service_time_ms.to_bits(),
        queue.service_scv.to_bits(),
        queue.arrival_scv.to_bits(),
        queue.servers,
        level as u64,
    );
    cache
        .entry(key)
        .or_insert_with(|| {
            let rho = level * UTILISATION_STEP;
            std::rc::Rc::new(grid.iter().map(|(q, _)| queue.response_quantile_ms(rho, *q)).collect())
        })
        .clone()
}

impl<'a> Engine<'a> {
    pub fn new(s: &'a Scenario) -> Self {
        let nodes = nodes(s);
        let cluster = initial_snapshot(s, &nodes);
        Engine {
            keys: KeySpace::new(&s.workload, s.partitions, s.seed),
            cost: cost_mix(&s.workload.costs),
            grid: quantile_grid(),
            bytes: vec![0.0; s.partitions as usize],
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
            series: Vec::new(),
            window: Histogram::default(),
            curves: QuantileCache::new(),
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
            if step % plan_every == plan_every - 1 && self.s.placement.mode != PlacementMode::Off {
                self.plan(t_s);
            }
            self.serve(t_s);
            if step % 64 == 0 {
                progress(step as f64 / steps as f64);
            }
        }
        progress(1.0);
        self.finish()
    }

    fn apply_failures(&mut self, t_s: f64) {
        let (down, _) = failures_at(self.s, &self.nodes, t_s);
        for node in &mut self.cluster.nodes {
            let is_down = down.contains(&node.id);
            if is_down && node.state == NodeState::Up {
                node.state = NodeState::Down;
            } else if !is_down && node.state == NodeState::Down {
                node.state = NodeState::Up;
            }
        }
        let up: BTreeSet<NodeId> = self.cluster.nodes.iter().filter(|n| n.is_up()).map(|n| n.id).collect();
        for p in &mut self.cluster.partitions {
            if p.leader.is_some_and(|l| up.contains(&l)) {
                self.leaderless_since.remove(&p.id);
                continue;
            }
            let since = *self.leaderless_since.entry(p.id).or_insert(t_s);
            if t_s - since >= self.s.controller.election_s
                && let Some(next) = p.replicas.iter().copied().filter(|r| up.contains(r)).min()
            {
                p.leader = Some(next);
                self.leaderless_since.remove(&p.id);
            }
        }
    }

    fn complete_moves(&mut self, t_s: f64) {
        let (done, still): (Vec<Moving>, Vec<Moving>) = self.moving.iter().partition(|m| m.done_at_s <= t_s);
        self.moving = still;
        for m in done {
            self.cluster.apply(&m.change);
        }
    }

    fn loads(&self, t_s: f64) -> BTreeMap<PartitionId, PartitionLoadView> {
        let rate = rate_per_s(&self.s.workload.rate, t_s);
        let noise_share = self.s.controller.telemetry_noise;
        self.keys
            .shares(&self.s.workload, t_s)
            .iter()
            .enumerate()
            .map(|(p, share)| {
                let id = p as PartitionId;
                let view = PartitionLoadView {
                    events_per_s: rate * share * noise(self.s.seed, self.step, id, noise_share),
                    cpu_ms_per_event: self.cost.mean_ms * noise(self.s.seed ^ 1, self.step, id, noise_share),
                    size_bytes: self.bytes[p] as u64,
                };
                (id, view)
            })
            .collect()
    }

    fn plan(&mut self, t_s: f64) {
        let mut snapshot = self.cluster.clone();
        let loads = self.loads(t_s);
        for p in &mut snapshot.partitions {
            let load = loads.get(&p.id).copied().unwrap_or_default();
            p.events_per_s = load.events_per_s;
            p.cpu_ms_per_event = load.cpu_ms_per_event;
            p.size_bytes = load.size_bytes;
        }
        snapshot.in_flight = self.moving.iter().map(|m| m.change.partition()).collect();
        let times = MoveTimes { copy_bytes_per_s: self.s.controller.copy_bytes_per_s, ..MoveTimes::default() };
        let models = Models { curves: BTreeMap::new(), move_times: times };
        let plan = eddy_placement::plan(&snapshot, &models, &self.s.placement.policy);
        self.planner_calls += 1;
        if self.s.placement.mode != PlacementMode::Auto {
            return;
        }
        for op in plan.operations {
            let change = op.change;
            let size = self.bytes[change.partition() as usize];
            let (duration_s, copies) = match change {
                Move::TransferLeader { .. } | Move::RemoveReplica { .. } => (times.leader_transfer_s, false),
                Move::AddReplica { .. } | Move::MoveReplica { .. } => (times.replica_move_s(size as u64), true),
            };
            if copies {
                self.bytes_moved += size;
            }
            self.moves += 1;
            self.moving.push(Moving { change, done_at_s: t_s + duration_s, copies });
        }
    }

    /// Serves one step of events and records their response times.
    fn serve(&mut self, t_s: f64) {
        let dt = self.s.step_s;
        let rate = rate_per_s(&self.s.workload.rate, t_s);
        let shares = self.keys.shares(&self.s.workload, t_s);
        let (_, slow) = failures_at(self.s, &self.nodes, t_s);
        let follower_share = self.s.placement.policy.follower_cpu_share;
        self.offered += rate * dt;
        let mut led: BTreeMap<NodeId, f64> = BTreeMap::new();
        let mut cpu: BTreeMap<NodeId, f64> = BTreeMap::new();
        for (p, share) in self.cluster.partitions.iter().zip(&shares) {
            let events = rate * share;
            self.bytes[p.id as usize] += events * dt * self.s.controller.bytes_per_event;
            let Some(leader) = p.leader.filter(|_| !self.leaderless_since.contains_key(&p.id)) else {
                self.unserved += events * dt;
                continue;
            };
            *led.entry(leader).or_default() += events;
            let cores = events * self.cost.mean_ms / 1000.0;
            *cpu.entry(leader).or_default() += cores;
            for r in p.replicas.iter().filter(|r| **r != leader) {
                *cpu.entry(*r).or_default() += cores * follower_share;
            }
        }
        for m in self.moving.iter().filter(|m| m.copies) {
            if let Move::AddReplica { node, .. } | Move::MoveReplica { to: node, .. } = m.change {
                *cpu.entry(node).or_default() += COPY_CORES;
            }
        }
        let mut in_use_price = 0.0;
        let mut utilisation = Vec::with_capacity(self.nodes.len());
        for (node, view) in self.nodes.iter_mut().zip(&self.cluster.nodes) {
            let in_use = self.cluster.partitions.iter().any(|p| p.replicas.contains(&node.id));
            if in_use && view.state != NodeState::Down {
                in_use_price += node.price_per_hour;
            }
            let speed = node.speed * slow.get(&node.id).copied().unwrap_or(1.0);
            let capacity = node.cores * speed;
            let demand = cpu.get(&node.id).copied().unwrap_or(0.0);
            node.backlog_cpu_s = (node.backlog_cpu_s + (demand - capacity) * dt).max(0.0);
            let rho = demand / capacity;
            utilisation.push(rho);
            let events = led.get(&node.id).copied().unwrap_or(0.0) * dt;
            if events <= 0.0 {
                continue;
            }
            let queue = Queue { service_scv: self.cost.scv, ..Queue::for_cores(node.cores, self.cost.mean_ms / speed) };
            let backlog_ms = node.backlog_cpu_s / capacity * 1000.0;
            let curve = quantiles(&mut self.curves, &self.grid, &queue, rho);
            for ((_, mass), ms) in self.grid.iter().zip(curve.iter()) {
                self.latency.add(ms + backlog_ms, events * mass);
                self.window.add(ms + backlog_ms, events * mass);
            }
        }
        self.cost_money += in_use_price * dt / 3600.0;
        let next = t_s + dt;
        if (next / SERIES_EVERY_S).floor() > (t_s / SERIES_EVERY_S).floor() || next >= self.s.duration_s {
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

    fn finish(self) -> Run {
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
        };
        Run { summary, series: self.series }
    }
}

/// Runs `s` in the fast engine.
pub fn run(s: &Scenario, progress: impl FnMut(f64)) -> Run {
    Engine::new(s).run(progress)
}
