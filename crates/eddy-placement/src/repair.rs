//! Repairs, before any balancing: a leader on a node that is not up gets
//! an up replica as leader; replicas on nodes that are leaving (down,
//! draining, removed) move to up nodes; missing replicas are added, extra
//! ones removed; replicas sharing a zone spread out where zones allow.
//! Availability comes first, so repairs may use nodes that hold nothing.

use crate::plan::Move;
use crate::search::Search;

impl Search<'_> {
    pub fn repair(&mut self) {
        let zones_up = self.state.up_zones();
        for part in 0..self.state.parts.len() {
            if self.state.parts[part].frozen {
                continue;
            }
            if !(self.repair_leader(part)
                && self.replace_leaving(part)
                && self.fill(part)
                && self.trim(part)
                && self.spread(part, zones_up))
            {
                return;
            }
        }
    }

    /// Each step returns false when the budget ran out.
    fn repair_leader(&mut self, part: usize) -> bool {
        let p = &self.state.parts[part];
        if p.leader.is_some_and(|l| self.state.nodes[l].is_up()) {
            return true;
        }
        let from = p.leader.map(|l| self.state.nodes[l].id);
        let candidates: Vec<usize> = p.replicas.iter().copied().filter(|r| self.state.nodes[*r].is_up()).collect();
        let Some(best) = candidates
            .into_iter()
            .map(|r| self.evaluate(Move::TransferLeader { partition: p.id, from, to: self.state.nodes[r].id }))
            .max_by(|a, b| a.effect.gain.total_cmp(&b.effect.gain))
        else {
            return true;
        };
        if !self.room() {
            return false;
        }
        let reason = match from {
            Some(node) => format!("leader node {node} is {}", self.state.nodes[self.index[&node]].state.as_str()),
            None => "partition has no leader".to_owned(),
        };
        self.record(best, reason);
        true
    }

    fn replace_leaving(&mut self, part: usize) -> bool {
        let leaving: Vec<usize> =
            self.state.parts[part].replicas.iter().copied().filter(|r| self.state.nodes[*r].is_leaving()).collect();
        for from in leaving {
            let id = self.state.parts[part].id;
            let (from_id, from_state) = (self.state.nodes[from].id, self.state.nodes[from].state.as_str());
            let Some(to) = self.best_target(part, Some(from), true) else {
                self.unmet.push(format!(
                    "partition {id} has a replica on node {from_id} ({from_state}) and no up node can take it; add workers"
                ));
                continue;
            };
            if !self.room() {
                return false;
            }
            let reason = format!("node {from_id} is {from_state}");
            let change = Move::MoveReplica { partition: id, from: from_id, to: self.state.nodes[to].id };
            let candidate = self.evaluate(change);
            self.record(candidate, reason);
        }
        true
    }

    fn fill(&mut self, part: usize) -> bool {
        while self.state.parts[part].replicas.len() < self.state.rf {
            let id = self.state.parts[part].id;
            let Some(to) = self.best_target(part, None, true) else {
                self.unmet.push(format!(
                    "partition {id} has {} of {} replicas: not enough up workers; add workers",
                    self.state.parts[part].replicas.len(),
                    self.state.rf
                ));
                return true;
            };
            if !self.room() {
                return false;
            }
            let reason =
                format!("partition has {} of {} replicas", self.state.parts[part].replicas.len(), self.state.rf);
            let candidate = self.evaluate(Move::AddReplica { partition: id, node: self.state.nodes[to].id });
            self.record(candidate, reason);
        }
        let p = &self.state.parts[part];
        if p.leader.is_none()
            && let Some(&to) = p.replicas.iter().find(|r| self.state.nodes[**r].is_up())
        {
            let change = Move::TransferLeader { partition: p.id, from: None, to: self.state.nodes[to].id };
            if !self.room() {
                return false;
            }
            let candidate = self.evaluate(change);
            self.record(candidate, "partition has no leader".to_owned());
        }
        true
    }

    fn trim(&mut self, part: usize) -> bool {
        while self.state.parts[part].replicas.len() > self.state.rf {
            let p = &self.state.parts[part];
            let Some(best) = p
                .replicas
                .iter()
                .filter(|r| p.leader != Some(**r))
                .map(|r| self.evaluate(Move::RemoveReplica { partition: p.id, node: self.state.nodes[*r].id }))
                .max_by(|a, b| a.effect.gain.total_cmp(&b.effect.gain))
            else {
                return true;
            };
            let reason = format!("partition has {} replicas, more than {}", p.replicas.len(), self.state.rf);
            if !self.room() {
                return false;
            }
            self.record(best, reason);
        }
        true
    }

    fn spread(&mut self, part: usize, zones_up: usize) -> bool {
        let wanted = zones_up.min(self.state.rf);
        let mut guard = self.state.rf;
        while self.state.zone_count(part, None, None) < wanted && guard > 0 {
            guard -= 1;
            let p = &self.state.parts[part];
            // A follower that shares its zone with another replica.
            let shared = p.replicas.iter().copied().filter(|r| {
                p.replicas.iter().filter(|o| self.state.nodes[**o].zone == self.state.nodes[*r].zone).count() > 1
            });
            let from = shared.clone().find(|r| p.leader != Some(*r)).or_else(|| shared.clone().next());
            let Some(from) = from else { return true };
            let zones = self.state.zone_count(part, None, None);
            let Some(to) = self
                .best_target(part, Some(from), true)
                .filter(|t| self.state.zone_count(part, Some(from), Some(*t)) > zones)
            else {
                return true;
            };
            let zone = &self.state.zones[self.state.nodes[from].zone];
            let reason = format!("two replicas share zone {zone}; {zones_up} zones have up workers");
            let change =
                Move::MoveReplica { partition: p.id, from: self.state.nodes[from].id, to: self.state.nodes[to].id };
            if !self.room() {
                return false;
            }
            let candidate = self.evaluate(change);
            self.record(candidate, reason);
        }
        true
    }
}
