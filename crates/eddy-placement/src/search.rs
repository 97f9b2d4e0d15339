//! The search: repairs first (leaders on nodes that are not up, replicas on
//! nodes that are leaving, missing replicas, zone spread), then greedy
//! improvement: among moves of work off the busiest nodes, the one with
//! the best gain per second of move time, until no move gains enough or
//! the round's budget is spent.

use std::collections::BTreeMap;

use eddy_core::NodeId;

use crate::plan::{Effect, Move, PlannedOperation};
use crate::policy::Policy;
use crate::score::Score;
use crate::snapshot::MoveTimes;
use crate::state::{Load, State};

/// Busiest nodes whose partitions are tried each step.
const HOT_NODES: usize = 8;
/// Least busy nodes tried as targets of a replica move.
const COOL_NODES: usize = 8;

pub(crate) struct Search<'a> {
    pub state: State,
    pub score: Score,
    pub policy: &'a Policy,
    pub times: MoveTimes,
    pub index: BTreeMap<NodeId, usize>,
    pub operations: Vec<PlannedOperation>,
    pub budget: usize,
    pub exhausted: bool,
    pub unmet: Vec<String>,
    /// Whether nodes holding nothing may receive work (not while the
    /// policy drains unneeded nodes and the cluster is within its targets).
    pub use_empty: bool,
    /// A node being drained: it receives nothing.
    pub excluded: Option<usize>,
}

/// A scored candidate.
#[derive(Clone, Copy)]
pub(crate) struct Candidate {
    pub change: Move,
    pub effect: Effect,
}

impl<'a> Search<'a> {
    pub fn new(state: State, score: Score, policy: &'a Policy, times: MoveTimes) -> Self {
        let in_flight = state.parts.iter().filter(|p| p.frozen).count();
        Search {
            index: state.index(),
            state,
            score,
            policy,
            times,
            operations: Vec::new(),
            budget: policy.max_operations_per_round.saturating_sub(in_flight),
            exhausted: false,
            unmet: Vec::new(),
            use_empty: true,
            excluded: None,
        }
    }

    /// Whether the budget allows one more operation (and notes when not).
    pub fn room(&mut self) -> bool {
        let room = self.operations.len() < self.budget;
        self.exhausted |= !room;
        room
    }

    pub fn record(&mut self, candidate: Candidate, reason: String) {
        self.state.apply(&candidate.change, &self.index);
        self.operations.push(PlannedOperation { change: candidate.change, reason, effect: candidate.effect });
    }

    /// The nodes a move touches and what they carry after it.
    fn after(&self, change: &Move) -> Vec<(usize, Load)> {
        let part = &self.state.parts[self.part_at(change.partition())];
        let node = |id: NodeId| self.index[&id];
        let load = |at: usize| self.state.nodes[at].load;
        match *change {
            Move::TransferLeader { from, to, .. } => {
                let (leader, follower) = (part.load_of(true), part.load_of(false));
                let mut out = Vec::with_capacity(2);
                if let Some(from) = from.map(node) {
                    out.push((from, load(from).minus(&leader).plus(&follower)));
                }
                out.push((node(to), load(node(to)).minus(&follower).plus(&leader)));
                out
            }
            Move::AddReplica { node: to, .. } => vec![(node(to), load(node(to)).plus(&part.load_of(false)))],
            Move::RemoveReplica { node: from, .. } => {
                let carried = part.load_of(part.leader == Some(node(from)));
                vec![(node(from), load(node(from)).minus(&carried))]
            }
            Move::MoveReplica { from, to, .. } => {
                let carried = part.load_of(part.leader == Some(node(from)));
                vec![(node(from), load(node(from)).minus(&carried)), (node(to), load(node(to)).plus(&carried))]
            }
        }
    }

    /// Scores a move: the objective's drop, and what it does to the nodes.
    pub fn evaluate(&self, change: Move) -> Candidate {
        let after = self.after(&change);
        let mut gain = 0.0;
        for (at, load) in &after {
            let n = &self.state.nodes[*at];
            gain += self.score.node(n, &n.load) - self.score.node(n, load);
        }
        let utilisation = |(at, load): &(usize, Load)| {
            let n = &self.state.nodes[*at];
            (n.utilisation(&n.load), n.utilisation(load))
        };
        let (source, target) = match change {
            Move::AddReplica { .. } => (None, after.first().map(utilisation)),
            Move::RemoveReplica { .. } => (after.first().map(utilisation), None),
            _ if after.len() == 2 => (Some(utilisation(&after[0])), Some(utilisation(&after[1]))),
            _ => (None, after.first().map(utilisation)),
        };
        let move_s = match change {
            Move::TransferLeader { .. } => self.times.leader_transfer_s,
            Move::RemoveReplica { .. } => 0.0,
            Move::AddReplica { partition, .. } | Move::MoveReplica { partition, .. } => {
                self.times.replica_move_s(self.state.parts[self.part_at(partition)].size_bytes)
            }
        };
        Candidate { change, effect: Effect { gain, move_s, source_utilisation: source, target_utilisation: target } }
    }

    pub fn part_at(&self, id: eddy_core::PartitionId) -> usize {
        match self.state.parts.get(id as usize) {
            Some(p) if p.id == id => id as usize,
            _ => self.state.parts.iter().position(|p| p.id == id).unwrap_or(0),
        }
    }

    /// The best node for a new replica of `part` (replacing the one on
    /// `without`): most zones first, then the smallest rise of the
    /// objective, then the fewest replicas, then the lowest id.
    pub fn best_target(&self, part: usize, without: Option<usize>, allow_empty: bool) -> Option<usize> {
        let p = &self.state.parts[part];
        let mut best: Option<(usize, f64, i64, usize)> = None;
        for (at, n) in self.state.nodes.iter().enumerate() {
            if !n.is_up() || p.replicas.contains(&at) || !(allow_empty || n.in_use()) {
                continue;
            }
            let zones = self.state.zone_count(part, without, Some(at));
            let carried = p.load_of(false);
            let rise = self.score.node(n, &n.load.plus(&carried)) - self.score.node(n, &n.load);
            let better = match best {
                None => true,
                Some((z, r, count, _)) => {
                    zones > z || (zones == z && (rise < r || (rise == r && n.load.replicas < count)))
                }
            };
            if better {
                best = Some((zones, rise, n.load.replicas, at));
            }
        }
        best.map(|(_, _, _, at)| at)
    }

    /// Greedy improvement until no move gains enough or the budget is spent.
    pub fn improve(&mut self) {
        if !self.score.improves() {
            return;
        }
        while self.room() {
            let Some(best) = self.best_improvement() else { return };
            let reason = self.improvement_reason(&best);
            self.record(best, reason);
        }
    }

    fn pressure(&self, at: usize) -> f64 {
        let n = &self.state.nodes[at];
        match self.score {
            Score::Count { .. } => (n.load.replicas + n.load.leaders) as f64,
            _ => self.score.node(n, &n.load),
        }
    }

    fn best_improvement(&self) -> Option<Candidate> {
        let mut ranked: Vec<(f64, usize)> = (0..self.state.nodes.len())
            .filter(|at| !self.state.nodes[*at].parts.is_empty())
            .map(|at| (self.pressure(at), at))
            .collect();
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let hot: Vec<usize> = ranked.iter().take(HOT_NODES).map(|(_, at)| *at).collect();
        let mut cool: Vec<(f64, usize)> = (0..self.state.nodes.len())
            .filter(|at| {
                let n = &self.state.nodes[*at];
                n.is_up() && (self.use_empty || n.in_use()) && Some(*at) != self.excluded
            })
            .map(|at| (self.pressure(at), at))
            .collect();
        cool.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        cool.truncate(COOL_NODES);

        let min_gain = self.score.min_gain(self.policy);
        let mut best: Option<(f64, Candidate)> = None;
        let mut consider = |candidate: Candidate| {
            let cost =
                if self.score.charges_moves() { self.policy.move_weight_per_s * candidate.effect.move_s } else { 0.0 };
            let gain = candidate.effect.gain;
            if !(gain >= min_gain && gain > cost) {
                return;
            }
            // Gain per second of move time; a floor keeps a free move finite.
            let value = gain / candidate.effect.move_s.max(0.01);
            if best.as_ref().is_none_or(|(v, _)| value > *v) {
                best = Some((value, candidate));
            }
        };
        for &h in &hot {
            let node = &self.state.nodes[h];
            for &part in &node.parts {
                let p = &self.state.parts[part];
                if p.frozen {
                    continue;
                }
                let id = node.id;
                if p.leader == Some(h) {
                    let takes = |r: &&usize| **r != h && self.state.nodes[**r].is_up() && Some(**r) != self.excluded;
                    for &r in p.replicas.iter().filter(takes) {
                        let to = self.state.nodes[r].id;
                        consider(self.evaluate(Move::TransferLeader { partition: p.id, from: Some(id), to }));
                    }
                }
                let zones = self.state.zone_count(part, None, None);
                for &(_, t) in &cool {
                    if t == h || p.replicas.contains(&t) || self.state.zone_count(part, Some(h), Some(t)) < zones {
                        continue;
                    }
                    let to = self.state.nodes[t].id;
                    consider(self.evaluate(Move::MoveReplica { partition: p.id, from: id, to }));
                }
            }
        }
        best.map(|(_, c)| c)
    }

    fn improvement_reason(&self, candidate: &Candidate) -> String {
        let busy =
            |u: Option<(f64, f64)>| u.map_or(String::new(), |(b, a)| format!("{:.0}%->{:.0}%", b * 100.0, a * 100.0));
        let (from, to) = match candidate.change {
            Move::TransferLeader { from, to, .. } => (from, to),
            Move::MoveReplica { from, to, .. } => (Some(from), to),
            Move::AddReplica { node, .. } | Move::RemoveReplica { node, .. } => (None, node),
        };
        let what = match self.score {
            Score::Count { .. } => "evens replica and leader counts",
            Score::Utilisation { .. } => "evens utilisation",
            _ => "lowers predicted p99",
        };
        format!(
            "{what}: node {} {} to node {to} {} (gain {:.3})",
            from.map_or("-".to_owned(), |f| f.to_string()),
            busy(candidate.effect.source_utilisation),
            busy(candidate.effect.target_utilisation),
            candidate.effect.gain
        )
    }
}
