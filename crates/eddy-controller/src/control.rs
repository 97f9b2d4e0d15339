//! The leader's control loop.
//!
//! [`decide`] is the pure part: from the committed map and what the leader
//! observed (heartbeat silences, whether worker registrations have settled),
//! it returns the commands to propose. [`ControlLoop`] is the I/O part: one
//! task that owns the leader's soft state (last heartbeat per node), ticks,
//! calls `decide` and proposes the commands through Raft.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use eddy_core::{ClusterMap, ClusterSettings, GroupLead, LeaderReport, NodeId, PartitionId, PlacementMode};
use eddy_placement::{InitialPlacer, Placer, Snapshot};
use openraft::ServerState;
use openraft::async_runtime::WatchReceiver;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::ControllerRaft;
use crate::broken::BrokenReplicas;
use crate::executor::{Executor, GroupReport};
use crate::liveness::{self, LivenessConfig, Silence};
use crate::models::ModelsRequest;
use crate::panics::{PanicReport, ProcessorPanics};
use crate::planning::Round;
use crate::types::Command;

/// What the leader knows beyond the committed map.
#[derive(Debug, Clone)]
pub struct Observations<'a> {
    pub map: &'a ClusterMap,
    pub silence: &'a BTreeMap<NodeId, Silence>,
    /// No worker joined or left for the settle period.
    pub workers_settled: bool,
    /// Wall clock, ms since the Unix epoch, stamped on state changes.
    pub now_ms: u64,
    /// Settings and a fresh id, used if the cluster has none yet.
    pub bootstrap_settings: ClusterSettings,
    pub fresh_cluster_id: &'a str,
    /// Partition leaders that nodes reported in their heartbeats.
    pub leader_reports: &'a [LeaderReport],
    /// Replicas that nodes reported they cannot open.
    pub broken: &'a BrokenReplicas,
}

/// A node's heartbeat as the control loop takes it.
#[derive(Debug, Clone)]
pub struct Heard {
    pub node: NodeId,
    /// When the controller received it.
    pub at: Instant,
    /// Groups the node leads, with their terms and voters.
    pub leading: Vec<GroupLead>,
    /// Replicas the node cannot open, with why.
    pub broken: Vec<(PartitionId, String)>,
    /// Its processors' recent panics.
    pub panics: Vec<PanicReport>,
}

/// What the leader heard is wrong on the nodes, for the status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeProblems {
    /// (node, partition, why).
    pub broken: Vec<(NodeId, PartitionId, String)>,
    pub panics: Vec<(NodeId, PanicReport)>,
}

/// What the leader should do now.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decision {
    pub commands: Vec<Command>,
    /// Placement constraints that cannot be met now.
    pub unmet: Vec<String>,
}

pub fn decide(obs: &Observations<'_>, liveness: LivenessConfig) -> Decision {
    let mut decision = Decision::default();
    if obs.map.settings.is_none() {
        decision.commands.push(Command::InitCluster {
            cluster_id: obs.fresh_cluster_id.to_owned(),
            settings: obs.bootstrap_settings,
        });
        return decision;
    }
    for t in liveness::transitions(&obs.map.nodes, obs.silence, liveness) {
        decision.commands.push(Command::SetNodeState { node: t.node, from: t.from, to: t.to, at_ms: obs.now_ms });
    }
    let news: Vec<LeaderReport> = obs
        .leader_reports
        .iter()
        .filter(|r| {
            obs.map.table.get(r.partition).is_some_and(|p| {
                r.term > p.leader_term
                    && p.replicas.contains(&r.node)
                    && (p.leader != Some(r.node) || p.leader_term != r.term)
            })
        })
        .copied()
        .collect();
    if !news.is_empty() {
        decision.commands.push(Command::ObserveLeaders { reports: news });
    }
    let (mut operations, unmet) = obs.broken.repairs(obs.map);
    decision.unmet = unmet;
    if obs.workers_settled {
        let plan = InitialPlacer.plan(&Snapshot { map: obs.map });
        operations.extend(obs.broken.without_broken_targets(plan.operations));
        decision.unmet.extend(plan.unmet);
    }
    if !operations.is_empty() {
        decision.commands.push(Command::ApplyOperations { expected_epoch: obs.map.table.epoch, operations });
    }
    decision
}

#[derive(Debug, Clone)]
pub struct ControlConfig {
    pub interval: Duration,
    pub placement_settle: Duration,
    pub liveness: LivenessConfig,
    pub bootstrap_settings: ClusterSettings,
    pub propose_timeout: Duration,
    /// How often the leader runs the planner (unless the mode is `off`).
    pub plan_interval: Duration,
}

/// Soft state of one leadership term; dropped when leadership ends.
struct LeaderTerm {
    term: u64,
    since: Instant,
    last_heard: BTreeMap<NodeId, Instant>,
    /// The newest leader report per partition.
    leaders: BTreeMap<PartitionId, LeaderReport>,
    eligible: BTreeSet<NodeId>,
    eligible_changed: Instant,
    unmet: Vec<String>,
    last_plan: Option<Instant>,
    /// The newest report of each partition's group, with its voters.
    groups: BTreeMap<PartitionId, GroupReport>,
    executor: Executor,
    broken: BrokenReplicas,
    panics: ProcessorPanics,
    /// The executor's records as last shown.
    shown_version: u64,
}

impl LeaderTerm {
    fn new(term: u64, now: Instant) -> Self {
        LeaderTerm {
            term,
            since: now,
            last_heard: BTreeMap::new(),
            leaders: BTreeMap::new(),
            eligible: BTreeSet::new(),
            eligible_changed: now,
            unmet: Vec::new(),
            last_plan: None,
            groups: BTreeMap::new(),
            executor: Executor::default(),
            broken: BrokenReplicas::default(),
            panics: ProcessorPanics::default(),
            shown_version: 0,
        }
    }

    fn hear(&mut self, heard: Heard) {
        let last = self.last_heard.entry(heard.node).or_insert(heard.at);
        *last = (*last).max(heard.at);
        self.broken.hear(heard.node, heard.broken);
        self.panics.hear(heard.node, heard.panics);
        for lead in heard.leading {
            let (partition, term) = (lead.partition, lead.term);
            let report = LeaderReport { partition, node: heard.node, term };
            let known = self.leaders.entry(partition).or_insert(report);
            if term > known.term {
                *known = report;
            }
            // Within a term the voters change too: the latest report counts.
            let group = GroupReport { leader: heard.node, term, voters: lead.voters.into_iter().collect() };
            match self.groups.get(&partition) {
                Some(known) if known.term > term => {}
                _ => {
                    self.groups.insert(partition, group);
                }
            }
        }
    }

    fn silences(&self, map: &ClusterMap, now: Instant) -> BTreeMap<NodeId, Silence> {
        map.nodes
            .keys()
            .map(|id| {
                let silence = match self.last_heard.get(id) {
                    Some(at) => Silence::Heard(millis(now.saturating_duration_since(*at))),
                    None => Silence::NotYet(millis(now.saturating_duration_since(self.since))),
                };
                (*id, silence)
            })
            .collect()
    }

    fn note_eligible(&mut self, map: &ClusterMap, now: Instant) {
        let eligible: BTreeSet<NodeId> = map.workers().filter(|n| n.accepts_replicas()).map(|n| n.id()).collect();
        if eligible != self.eligible {
            self.eligible = eligible;
            self.eligible_changed = now;
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

pub(crate) fn wall_clock_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, millis)
}

pub struct ControlLoop {
    pub raft: ControllerRaft,
    pub map: watch::Receiver<Arc<ClusterMap>>,
    /// Heartbeats, stamped when the controller received them.
    pub heartbeats: mpsc::Receiver<Heard>,
    pub config: ControlConfig,
    /// The models task, for the planner's inputs.
    pub models: mpsc::Sender<ModelsRequest>,
    /// The latest planner round, for `eddyctl plan --last`.
    pub rounds: watch::Sender<Option<Arc<Round>>>,
    /// What the leader heard is wrong on the nodes, for the status.
    pub problems: watch::Sender<Arc<NodeProblems>>,
}

impl ControlLoop {
    pub async fn run(mut self) {
        let mut tick = tokio::time::interval(self.config.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut leading: Option<LeaderTerm> = None;
        loop {
            tokio::select! {
                biased;
                heard = self.heartbeats.recv() => match heard {
                    Some(heard) => {
                        if let Some(term) = leading.as_mut() {
                            term.hear(heard);
                        }
                    }
                    None => return,
                },
                _ = tick.tick() => {
                    // Heartbeats that queued up during a slow step count
                    // before any silence is judged.
                    while let Ok(heard) = self.heartbeats.try_recv() {
                        if let Some(term) = leading.as_mut() {
                            term.hear(heard);
                        }
                    }
                    let metrics = self.raft.metrics().borrow_watched().clone();
                    if metrics.state != ServerState::Leader {
                        if leading.take().is_some() {
                            self.problems.send_replace(Arc::default());
                        }
                        continue;
                    }
                    let now = Instant::now();
                    let term = match leading.take() {
                        Some(t) if t.term == metrics.current_term => leading.insert(t),
                        _ => {
                            tracing::info!(term = metrics.current_term, "controller leadership started");
                            leading.insert(LeaderTerm::new(metrics.current_term, now))
                        }
                    };
                    self.step(term, now).await;
                }
            }
        }
    }

    async fn step(&self, term: &mut LeaderTerm, now: Instant) {
        let map = self.map.borrow().clone();
        term.note_eligible(&map, now);
        let silence = term.silences(&map, now);
        let fresh_cluster_id = uuid::Uuid::new_v4().to_string();
        let leader_reports: Vec<LeaderReport> = term.leaders.values().copied().collect();
        let obs = Observations {
            map: &map,
            silence: &silence,
            workers_settled: now - term.eligible_changed >= self.config.placement_settle,
            now_ms: wall_clock_ms(),
            bootstrap_settings: self.config.bootstrap_settings,
            fresh_cluster_id: &fresh_cluster_id,
            leader_reports: &leader_reports,
            broken: &term.broken,
        };
        let decision = decide(&obs, self.config.liveness);
        let problems = Arc::new(NodeProblems { broken: term.broken.list(), panics: term.panics.list() });
        self.problems.send_if_modified(|shown| {
            let changed = **shown != *problems;
            if changed {
                *shown = problems;
            }
            changed
        });
        if decision.unmet != term.unmet {
            for unmet in &decision.unmet {
                tracing::info!(reason = %unmet, "placement constraint not met");
            }
            term.unmet = decision.unmet;
        }
        let placing = decision.commands.iter().any(|c| matches!(c, Command::ApplyOperations { .. }));
        for command in decision.commands {
            self.propose(command).await;
        }
        // Only `auto` changes the table on its own; otherwise an overdue
        // move is reported and left to the operator.
        let may_undo = map.placement.mode == PlacementMode::Auto;
        let undo = term.executor.observe(&map, &term.groups, obs.now_ms, may_undo);
        if !undo.is_empty() {
            let command = Command::ApplyOperations { expected_epoch: map.table.epoch, operations: undo };
            if let Err(why) = self.commit(command).await {
                tracing::warn!(reason = %why, "cannot undo an overdue move; the planner will see the table as it is");
            }
        }
        let (settled, now_ms) = (obs.workers_settled, obs.now_ms);
        self.show_records(term, &map, now_ms);
        let due = term.last_plan.is_none_or(|at| now - at >= self.config.plan_interval);
        if settled && !placing && due && map.placement.mode != PlacementMode::Off {
            term.last_plan = Some(now);
            self.plan_round(term, &map).await;
        }
    }

    /// One round of the planner with the live models: shown in `advise`,
    /// committed in `auto`.
    async fn plan_round(&self, term: &mut LeaderTerm, map: &ClusterMap) {
        let (answer, inputs) = oneshot::channel();
        if self.models.try_send(ModelsRequest::PlannerInputs(answer)).is_err() {
            return;
        }
        let Ok(Ok(inputs)) = tokio::time::timeout(self.config.propose_timeout, inputs).await else { return };
        // A partition under repair is the repair's, as one under a move is the move's.
        let mut in_flight = term.executor.in_flight();
        in_flight.extend(term.broken.partitions());
        let snapshot = eddy_placement::ClusterSnapshot::from_map(map, &inputs.loads, in_flight);
        let policy = map.placement.policy.clone();
        // Pure CPU work: off the runtime, whose threads carry the node's
        // event path too.
        let started = Instant::now();
        let models = inputs.models.clone();
        let planned = tokio::task::spawn_blocking(move || eddy_placement::plan(&snapshot, &models, &policy));
        let Ok(plan) = planned.await else { return };
        let plan_us = started.elapsed().as_micros() as u64;
        tracing::debug!(plan_us, operations = plan.operations.len(), "planner called");
        let mode = map.placement.mode;
        let at_ms = wall_clock_ms();
        let mut round =
            Round { at_ms, mode, plan, committed_epoch: None, refused: None, deferred: Vec::new(), recent: Vec::new() };
        if !round.plan.is_empty() {
            tracing::info!(
                mode = mode.as_str(),
                operations = round.plan.operations.len(),
                plan_us,
                p99_ms_max_before = round.plan.before.p99_ms_max,
                p99_ms_max_after = round.plan.after.p99_ms_max,
                "planner round"
            );
        }
        if mode == PlacementMode::Auto && !round.plan.is_empty() {
            let admission = term.executor.admit(map, &round.plan.operations, map.placement.policy.max_copies_per_node);
            round.deferred = admission.deferred;
            let admitted = eddy_placement::Plan { operations: admission.admitted, ..Default::default() };
            let operations = crate::planning::table_operations(map, &admitted);
            let mut after = map.clone();
            let command = Command::ApplyOperations { expected_epoch: map.table.epoch, operations: operations.clone() };
            match after.apply_operations(&operations) {
                Err(err) => round.refused = Some(err.to_string()),
                Ok(_) if operations.is_empty() => {}
                Ok(_) => match self.commit(command).await {
                    Ok(epoch) => {
                        let timeout = |change: &eddy_placement::Move| {
                            let size = inputs.loads.get(&change.partition()).map_or(0, |l| l.size_bytes);
                            crate::executor::timeout_ms(change, size, &inputs.models.move_times)
                        };
                        term.executor.start(&after, &admitted.operations, epoch, at_ms, timeout);
                        round.committed_epoch = Some(epoch);
                    }
                    Err(why) => round.refused = Some(why),
                },
            }
        }
        round.recent = term.executor.records();
        self.rounds.send_replace(Some(Arc::new(round)));
    }

    /// Shows the executor's records (`eddyctl ops`) as soon as they
    /// change, with the latest planner round or, in mode `off` or before
    /// the first round, without one.
    fn show_records(&self, term: &mut LeaderTerm, map: &ClusterMap, now_ms: u64) {
        if term.executor.version() == term.shown_version {
            return;
        }
        term.shown_version = term.executor.version();
        let recent = term.executor.records();
        let mode = map.placement.mode;
        self.rounds.send_modify(|round| {
            let mut shown = round.as_deref().cloned().unwrap_or_else(|| Round {
                at_ms: now_ms,
                mode,
                plan: Default::default(),
                committed_epoch: None,
                refused: None,
                deferred: Vec::new(),
                recent: Vec::new(),
            });
            shown.recent = recent;
            *round = Some(Arc::new(shown));
        });
    }

    /// Proposes a command and answers the table epoch after it, or why not.
    async fn commit(&self, command: Command) -> Result<u64, String> {
        let shown = command.to_string();
        match tokio::time::timeout(self.config.propose_timeout, self.raft.client_write(command)).await {
            Ok(Ok(response)) => match response.data.outcome {
                crate::types::Outcome::Refused(why) => {
                    tracing::info!(command = %shown, reason = %why, "planned operations refused; planning again");
                    Err(why)
                }
                _ => {
                    tracing::info!(command = %shown, epoch = response.data.epoch, "planned operations committed");
                    Ok(response.data.epoch)
                }
            },
            Ok(Err(err)) => Err(err.to_string()),
            Err(_) => Err("timed out".to_owned()),
        }
    }

    async fn propose(&self, command: Command) {
        let shown = command.to_string();
        match tokio::time::timeout(self.config.propose_timeout, self.raft.client_write(command)).await {
            Ok(Ok(response)) => {
                tracing::info!(command = %shown, outcome = ?response.data.outcome, "controller proposed");
            }
            Ok(Err(err)) => tracing::warn!(command = %shown, error = %err, "controller proposal failed"),
            Err(_) => tracing::warn!(command = %shown, "controller proposal timed out"),
        }
    }
}

#[cfg(test)]
mod tests;
