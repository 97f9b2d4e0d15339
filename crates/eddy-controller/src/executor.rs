//! The executor's book of planned moves on the controller leader: which
//! moves it lets start (at most a few copies per node at a time), when a
//! move counts as done (the partition's group reports the voters and the
//! leader the table names), when it has taken too long, and how an overdue
//! move is undone (the table goes back to what the group really has, so
//! that its leader stops pursuing the move). Pure: the control loop feeds
//! it the plan, the map and the groups' reports, and commits what it
//! returns.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use eddy_core::{ClusterMap, NodeId, Operation, PartitionAssignment, PartitionId};
use eddy_placement::{Move, MoveTimes, PlannedOperation};
use serde::Serialize;

/// A leader transfer is overdue after this long.
const TRANSFER_TIMEOUT_MS: u64 = 30_000;
/// A replica copy is overdue after this long plus some times its predicted
/// duration.
const COPY_TIMEOUT_FIXED_MS: u64 = 60_000;
const COPY_TIMEOUT_FACTOR: f64 = 4.0;

/// A change of the table this book did not start (one begun under an
/// earlier controller leader, or an operator's move) is overdue after this.
const ADOPTED_TIMEOUT_MS: u64 = 300_000;

/// Finished operations kept for `eddyctl ops`.
pub const FINISHED_KEPT: usize = 100;

/// What a partition's group leader reported in its heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupReport {
    pub leader: NodeId,
    pub term: u64,
    pub voters: BTreeSet<NodeId>,
}

/// Where an operation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum OpOutcome {
    InFlight,
    /// The group reported the table's voters and leader.
    Completed,
    /// Overdue; `undone` when the table was set back to the group's state.
    TimedOut {
        undone: bool,
    },
    /// A newer change of the table (another plan, a repair, a drain) took
    /// the partition elsewhere before this move completed.
    Superseded,
}

/// An operation the planner committed, with its outcome.
#[derive(Debug, Clone, Serialize)]
pub struct OpRecord {
    pub at_ms: u64,
    /// Table epoch of the commit.
    pub epoch: u64,
    #[serde(flatten)]
    pub change: Move,
    pub reason: String,
    pub outcome: OpOutcome,
    /// When it completed, timed out or was superseded.
    pub finished_ms: Option<u64>,
}

/// The moves of one partition, committed together.
#[derive(Debug, Clone)]
struct Tracked {
    /// Empty for an adopted change.
    records: Vec<OpRecord>,
    /// The partition's table entry right after the commit.
    target: PartitionAssignment,
    deadline_ms: u64,
}

/// Operations the executor let start, and those it held back.
#[derive(Debug, Clone, Default)]
pub struct Admission {
    pub admitted: Vec<PlannedOperation>,
    /// Partitions whose moves wait for a busy node.
    pub deferred: Vec<PartitionId>,
}

#[derive(Debug, Default)]
pub struct Executor {
    in_flight: BTreeMap<PartitionId, Tracked>,
    finished: VecDeque<OpRecord>,
    /// The table epoch up to which the table's history has been read; none
    /// before the first look (changes older than this leader's term are
    /// adopted from the groups' reports instead).
    history_read: Option<u64>,
    /// Epochs this book committed itself.
    own_epochs: BTreeSet<u64>,
    /// Grows with every change of the records.
    version: u64,
}

/// Nodes a move keeps busy copying: the new replica and the partition's
/// leader, which sends it the log. Leader transfers and removals copy
/// nothing.
fn copying_nodes(change: &Move, leader: Option<NodeId>) -> Vec<NodeId> {
    match *change {
        Move::AddReplica { node, .. } | Move::MoveReplica { to: node, .. } => {
            leader.into_iter().chain(std::iter::once(node)).collect()
        }
        Move::TransferLeader { .. } | Move::RemoveReplica { .. } => Vec::new(),
    }
}

/// When a move is overdue, from its commit.
pub fn timeout_ms(change: &Move, size_bytes: u64, times: &MoveTimes) -> u64 {
    match change {
        Move::TransferLeader { .. } | Move::RemoveReplica { .. } => TRANSFER_TIMEOUT_MS,
        Move::AddReplica { .. } | Move::MoveReplica { .. } => {
            let predicted_ms = times.replica_move_s(size_bytes) * 1000.0 * COPY_TIMEOUT_FACTOR;
            COPY_TIMEOUT_FIXED_MS.saturating_add(predicted_ms.min(u64::MAX as f64 / 2.0) as u64)
        }
    }
}

/// Whether the group has what the table named at the commit: the same
/// voters, and the named leader leading, unless an election since chose
/// another (the table then follows the group, and the move of replicas is
/// what counted).
fn converged(target: &PartitionAssignment, current: &PartitionAssignment, report: &GroupReport) -> bool {
    let replicas: BTreeSet<NodeId> = target.replicas.iter().copied().collect();
    let elected_since = current.leader_term > target.leader_term;
    replicas == report.voters && (elected_since || target.leader.is_none_or(|leader| leader == report.leader))
}

impl Executor {
    /// Partitions with a move under way: the planner leaves them alone.
    pub fn in_flight(&self) -> BTreeSet<PartitionId> {
        self.in_flight.keys().copied().collect()
    }

    /// Lets a plan's moves start in order while every node they keep busy
    /// copying has fewer than `max_per_node` copies under way; a partition's
    /// moves start together or wait together.
    pub fn admit(&self, map: &ClusterMap, planned: &[PlannedOperation], max_per_node: usize) -> Admission {
        let mut busy: BTreeMap<NodeId, usize> = BTreeMap::new();
        for tracked in self.in_flight.values() {
            for record in &tracked.records {
                for node in copying_nodes(&record.change, tracked.target.leader) {
                    *busy.entry(node).or_default() += 1;
                }
            }
        }
        let mut by_partition: BTreeMap<PartitionId, Vec<&PlannedOperation>> = BTreeMap::new();
        let mut order = Vec::new();
        for op in planned {
            let partition = op.change.partition();
            if !by_partition.contains_key(&partition) {
                order.push(partition);
            }
            by_partition.entry(partition).or_default().push(op);
        }
        let mut admission = Admission::default();
        for partition in order {
            let ops = &by_partition[&partition];
            let leader = map.table.get(partition).and_then(|p| p.leader);
            let wanted: Vec<NodeId> = ops.iter().flat_map(|op| copying_nodes(&op.change, leader)).collect();
            let mut counts = busy.clone();
            for node in &wanted {
                *counts.entry(*node).or_default() += 1;
            }
            if wanted.iter().any(|node| counts[node] > max_per_node) {
                admission.deferred.push(partition);
                continue;
            }
            busy = counts;
            admission.admitted.extend(ops.iter().map(|op| (*op).clone()));
        }
        admission
    }

    /// Starts tracking moves committed at `epoch`; `map` is the map after
    /// the commit, `timeout` says when each move is overdue.
    pub fn start(
        &mut self,
        map: &ClusterMap,
        committed: &[PlannedOperation],
        epoch: u64,
        now_ms: u64,
        timeout: impl Fn(&Move) -> u64,
    ) {
        self.own_epochs.insert(epoch);
        self.version += 1;
        for op in committed {
            let partition = op.change.partition();
            let Some(target) = map.table.get(partition) else { continue };
            let record = OpRecord {
                at_ms: now_ms,
                epoch,
                change: op.change,
                reason: op.reason.clone(),
                outcome: OpOutcome::InFlight,
                finished_ms: None,
            };
            let deadline_ms = now_ms.saturating_add(timeout(&op.change));
            let tracked = self.in_flight.entry(partition).or_insert_with(|| Tracked {
                records: Vec::new(),
                target: target.clone(),
                deadline_ms,
            });
            tracked.target = target.clone();
            tracked.deadline_ms = tracked.deadline_ms.max(deadline_ms);
            tracked.records.push(record);
        }
    }

    /// Settles the moves the groups' reports show done, superseded or
    /// overdue. With `may_undo`, answers the table operations that undo
    /// the overdue ones: each such partition goes back to the voters and
    /// leader its group reported, if it reported any.
    pub fn observe(
        &mut self,
        map: &ClusterMap,
        reports: &BTreeMap<PartitionId, GroupReport>,
        now_ms: u64,
        may_undo: bool,
    ) -> Vec<Operation> {
        self.follow_history(map, now_ms);
        let mut undo = Vec::new();
        let partitions: Vec<PartitionId> = self.in_flight.keys().copied().collect();
        for partition in partitions {
            let Some(tracked) = self.in_flight.get(&partition) else { continue };
            let current = map.table.get(partition);
            let report = reports.get(&partition);
            let Some(current) = current.filter(|c| c.replicas == tracked.target.replicas) else {
                self.finish(partition, OpOutcome::Superseded, now_ms);
                continue;
            };
            let outcome = if report.is_some_and(|r| converged(&tracked.target, current, r)) {
                OpOutcome::Completed
            } else if now_ms >= tracked.deadline_ms {
                let back = report
                    .filter(|_| may_undo)
                    .map(|report| back_to_reported(current, report, map))
                    .unwrap_or_default();
                let undone = !back.is_empty();
                undo.extend(back);
                OpOutcome::TimedOut { undone }
            } else {
                continue;
            };
            self.finish(partition, outcome, now_ms);
        }
        self.adopt(map, reports, now_ms);
        undo
    }

    /// Books the partitions whose group reports other voters or another
    /// leader than the table names and that no booked move explains: a
    /// move begun under an earlier controller leader, or an operator's.
    /// They are left out of planning until they converge, and undone if
    /// they never do.
    fn adopt(&mut self, map: &ClusterMap, reports: &BTreeMap<PartitionId, GroupReport>, now_ms: u64) {
        for (partition, report) in reports {
            let Some(current) = map.table.get(*partition) else { continue };
            if current.replicas.is_empty()
                || self.in_flight.contains_key(partition)
                || converged(current, current, report)
                // A newer leader the table has not taken in yet is the
                // control loop's to record, not a move.
                || report.term > current.leader_term
            {
                continue;
            }
            tracing::info!(partition, "following a change of the table begun elsewhere");
            let deadline_ms = now_ms.saturating_add(ADOPTED_TIMEOUT_MS);
            let reason = "a change of the table begun before this controller leader's term";
            let records = difference(current, report)
                .into_iter()
                .map(|change| OpRecord {
                    at_ms: now_ms,
                    epoch: current.epoch,
                    change,
                    reason: reason.to_owned(),
                    outcome: OpOutcome::InFlight,
                    finished_ms: None,
                })
                .collect();
            self.in_flight.insert(*partition, Tracked { records, target: current.clone(), deadline_ms });
            self.version += 1;
        }
    }

    /// Books the table changes committed since the last look that this
    /// book did not commit itself (an operator's moves, repairs, drains,
    /// the initial placement), with their reasons: every move is followed
    /// to its end and listed, whoever started it. A newer change of a
    /// partition supersedes the move it had under way.
    fn follow_history(&mut self, map: &ClusterMap, now_ms: u64) {
        let Some(read) = self.history_read else {
            self.history_read = Some(map.table.epoch);
            return;
        };
        let mut newest = read;
        let changes: Vec<(u64, Vec<eddy_core::Operation>)> =
            map.history.since(read).map(|c| (c.epoch, c.operations.clone())).collect();
        for (epoch, operations) in changes {
            newest = newest.max(epoch);
            if self.own_epochs.contains(&epoch) {
                continue;
            }
            for (partition, moves) in moves::moves_of(&operations) {
                let Some(target) = map.table.get(partition) else { continue };
                if self.in_flight.contains_key(&partition) {
                    self.finish(partition, OpOutcome::Superseded, now_ms);
                }
                let records = moves
                    .into_iter()
                    .map(|(change, reason)| OpRecord {
                        at_ms: now_ms,
                        epoch,
                        change,
                        reason,
                        outcome: OpOutcome::InFlight,
                        finished_ms: None,
                    })
                    .collect();
                let deadline_ms = now_ms.saturating_add(ADOPTED_TIMEOUT_MS);
                self.in_flight.insert(partition, Tracked { records, target: target.clone(), deadline_ms });
                self.version += 1;
            }
        }
        self.history_read = Some(newest);
        self.own_epochs.retain(|epoch| *epoch > newest);
    }

    /// Grows whenever the records change: when to show them again.
    pub fn version(&self) -> u64 {
        self.version
    }

    fn finish(&mut self, partition: PartitionId, outcome: OpOutcome, now_ms: u64) {
        let Some(tracked) = self.in_flight.remove(&partition) else { return };
        self.version += 1;
        match outcome {
            OpOutcome::Completed => tracing::info!(partition, "partition move completed"),
            OpOutcome::TimedOut { undone } => tracing::warn!(partition, undone, "partition move timed out"),
            _ => tracing::info!(partition, outcome = ?outcome, "partition move settled"),
        }
        for mut record in tracked.records {
            record.outcome = outcome;
            record.finished_ms = Some(now_ms);
            self.finished.push_back(record);
        }
        while self.finished.len() > FINISHED_KEPT {
            self.finished.pop_front();
        }
    }

    /// Every operation, finished (oldest first) then in flight.
    pub fn records(&self) -> Vec<OpRecord> {
        let in_flight = self.in_flight.values().flat_map(|t| t.records.iter());
        self.finished.iter().chain(in_flight).cloned().collect()
    }
}

/// The moves that take a group from its reported voters and leader to the
/// table's: what a change begun elsewhere is doing.
fn difference(target: &PartitionAssignment, report: &GroupReport) -> Vec<Move> {
    let partition = target.id;
    let wanted: BTreeSet<NodeId> = target.replicas.iter().copied().collect();
    let leaving: Vec<NodeId> = report.voters.difference(&wanted).copied().collect();
    let joining: Vec<NodeId> = wanted.difference(&report.voters).copied().collect();
    let mut moves = Vec::new();
    for i in 0..leaving.len().max(joining.len()) {
        moves.push(match (leaving.get(i), joining.get(i)) {
            (Some(from), Some(to)) => Move::MoveReplica { partition, from: *from, to: *to },
            (Some(node), None) => Move::RemoveReplica { partition, node: *node },
            (None, Some(node)) => Move::AddReplica { partition, node: *node },
            (None, None) => continue,
        });
    }
    if let Some(to) = target.leader.filter(|to| *to != report.leader && !joining.contains(to)) {
        moves.push(Move::TransferLeader { partition, from: Some(report.leader), to });
    }
    moves
}

/// Table operations that set `current` back to the group's reported
/// voters and leader; none when they already agree or a reported voter is
/// no longer a worker the table may name.
fn back_to_reported(current: &PartitionAssignment, report: &GroupReport, map: &ClusterMap) -> Vec<Operation> {
    let partition = current.id;
    if report.voters.iter().any(|node| !map.nodes.get(node).is_some_and(|n| n.accepts_replicas())) {
        return Vec::new();
    }
    let reason = "undo an overdue move: back to the group's voters".to_owned();
    let mut ops: Vec<Operation> = current
        .replicas
        .iter()
        .filter(|node| !report.voters.contains(node))
        .map(|node| Operation::RemoveReplica { partition, node: *node, reason: reason.clone() })
        .collect();
    ops.extend(
        report.voters.iter().filter(|node| !current.replicas.contains(node)).map(|node| Operation::AddReplica {
            partition,
            node: *node,
            reason: reason.clone(),
        }),
    );
    if !ops.is_empty() || current.leader != Some(report.leader) {
        ops.push(Operation::TransferLeader { partition, to: report.leader, reason });
    }
    ops
}

mod moves;

#[cfg(test)]
mod tests;
