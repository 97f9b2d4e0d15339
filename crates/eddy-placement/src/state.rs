//! The planner's working copy of the cluster: dense indices, per-node load
//! sums kept current as moves are applied, so that a candidate move is
//! scored by looking at the two nodes it touches.

use std::collections::BTreeMap;

use eddy_core::{NodeId, NodeState};

use crate::curve::LatencyCurve;
use crate::plan::Move;
use crate::policy::Policy;
use crate::snapshot::{ClusterSnapshot, Models, NodeView, curve_for, finite};

/// What a node carries.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Load {
    pub leader_cores: f64,
    pub follower_cores: f64,
    /// Events per second of the partitions it leads.
    pub leader_rate: f64,
    pub replicas: i64,
    pub leaders: i64,
}

impl Load {
    pub fn cores(&self) -> f64 {
        self.leader_cores + self.follower_cores
    }

    pub fn plus(mut self, other: &Load) -> Load {
        self.leader_cores += other.leader_cores;
        self.follower_cores += other.follower_cores;
        self.leader_rate += other.leader_rate;
        self.replicas += other.replicas;
        self.leaders += other.leaders;
        self
    }

    pub fn minus(mut self, other: &Load) -> Load {
        self.leader_cores -= other.leader_cores;
        self.follower_cores -= other.follower_cores;
        self.leader_rate -= other.leader_rate;
        self.replicas -= other.replicas;
        self.leaders -= other.leaders;
        self
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub id: NodeId,
    pub zone: usize,
    pub capacity_cores: f64,
    pub price_per_hour: f64,
    pub state: NodeState,
    pub curve: LatencyCurve,
    pub load: Load,
    /// Partitions with a replica here (indices into `State::parts`).
    pub parts: Vec<usize>,
}

impl Node {
    pub fn is_up(&self) -> bool {
        self.state == NodeState::Up
    }

    pub fn is_leaving(&self) -> bool {
        matches!(self.state, NodeState::Down | NodeState::Draining | NodeState::Removed)
    }

    pub fn utilisation(&self, load: &Load) -> f64 {
        utilisation(load.cores(), self.capacity_cores)
    }

    pub fn in_use(&self) -> bool {
        self.load.replicas > 0
    }
}

pub(crate) fn utilisation(cores: f64, capacity_cores: f64) -> f64 {
    if capacity_cores > 0.0 {
        cores / capacity_cores
    } else if cores > 0.0 {
        // A node without capacity that carries work is as overloaded as it gets.
        1e6
    } else {
        0.0
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Part {
    pub id: eddy_core::PartitionId,
    pub replicas: Vec<usize>,
    pub leader: Option<usize>,
    pub rate: f64,
    pub leader_cores: f64,
    pub follower_cores: f64,
    pub size_bytes: u64,
    /// An operation is under way: leave it alone.
    pub frozen: bool,
}

impl Part {
    /// What the replica on a node brings to it, as leader or as follower.
    pub fn load_of(&self, leader: bool) -> Load {
        if leader {
            Load { leader_cores: self.leader_cores, leader_rate: self.rate, replicas: 1, leaders: 1, ..Load::default() }
        } else {
            Load { follower_cores: self.follower_cores, replicas: 1, ..Load::default() }
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct State {
    pub nodes: Vec<Node>,
    pub parts: Vec<Part>,
    pub zones: Vec<String>,
    pub rf: usize,
    pub total_rate: f64,
    /// Price of all up workers: the scale of the cost term.
    pub up_price_per_hour: f64,
}

impl State {
    pub fn new(snapshot: &ClusterSnapshot, models: &Models, policy: &Policy) -> State {
        let mean_cost = snapshot.mean_cpu_ms_per_event();
        let mut zones: Vec<String> = Vec::new();
        let mut index: BTreeMap<NodeId, usize> = BTreeMap::new();
        let mut nodes: Vec<Node> = Vec::with_capacity(snapshot.nodes.len());
        let mut views: Vec<&NodeView> = snapshot.nodes.iter().collect();
        views.sort_by_key(|n| n.id);
        views.dedup_by_key(|n| n.id);
        for view in views {
            let zone = zone_index(&mut zones, &view.zone);
            index.insert(view.id, nodes.len());
            nodes.push(Node {
                id: view.id,
                zone,
                capacity_cores: finite(view.capacity_cores),
                price_per_hour: finite(view.price_per_hour),
                state: view.state,
                curve: curve_for(models, view, mean_cost),
                load: Load::default(),
                parts: Vec::new(),
            });
        }
        let mut parts = Vec::with_capacity(snapshot.partitions.len());
        for p in &snapshot.partitions {
            let mut replicas = Vec::with_capacity(p.replicas.len());
            for id in &p.replicas {
                // A replica on a node the snapshot does not list is on a
                // node that is gone.
                let at = *index.entry(*id).or_insert_with(|| {
                    let zone = zone_index(&mut zones, "");
                    nodes.push(ghost(*id, zone));
                    nodes.len() - 1
                });
                if !replicas.contains(&at) {
                    replicas.push(at);
                }
            }
            let leader = p.leader.and_then(|l| index.get(&l).copied()).filter(|l| replicas.contains(l));
            let leader_cores = p.leader_cores();
            parts.push(Part {
                id: p.id,
                replicas,
                leader,
                rate: finite(p.events_per_s),
                leader_cores,
                follower_cores: leader_cores * policy.follower_cpu_share,
                size_bytes: p.size_bytes,
                frozen: snapshot.in_flight.contains(&p.id),
            });
        }
        for (at, part) in parts.iter().enumerate() {
            for &node in &part.replicas {
                let load = part.load_of(part.leader == Some(node));
                nodes[node].load = nodes[node].load.plus(&load);
                nodes[node].parts.push(at);
            }
        }
        let total_rate = parts.iter().map(|p| p.rate).sum();
        let up_price_per_hour = nodes.iter().filter(|n| n.is_up()).map(|n| n.price_per_hour).sum();
        State { nodes, parts, zones, rf: snapshot.replication_factor.max(1) as usize, total_rate, up_price_per_hour }
    }

    /// Zones that hold an up node.
    pub fn up_zones(&self) -> usize {
        let mut seen = vec![false; self.zones.len()];
        for n in self.nodes.iter().filter(|n| n.is_up()) {
            seen[n.zone] = true;
        }
        seen.iter().filter(|s| **s).count()
    }

    /// Distinct zones of a partition's replicas, with `without` left out
    /// and `with` added.
    pub fn zone_count(&self, part: usize, without: Option<usize>, with: Option<usize>) -> usize {
        // Called for every candidate of every search: counted in place,
        // without allocating, over the few replicas of one partition.
        let members = || self.parts[part].replicas.iter().copied().filter(move |r| Some(*r) != without).chain(with);
        let zone = |r: usize| self.nodes[r].zone;
        members().enumerate().filter(|(i, r)| !members().take(*i).any(|o| zone(o) == zone(*r))).count()
    }

    /// Applies a move to the working copy. The caller has checked it.
    pub fn apply(&mut self, change: &Move, index: &BTreeMap<NodeId, usize>) {
        let at = |id: &NodeId| index[id];
        let part = self.part_index(change.partition());
        match *change {
            Move::TransferLeader { to, .. } => self.transfer(part, at(&to)),
            Move::AddReplica { node, .. } => self.add(part, at(&node)),
            Move::RemoveReplica { node, .. } => self.remove(part, at(&node)),
            Move::MoveReplica { from, to, .. } => {
                let was_leader = self.parts[part].leader == Some(at(&from));
                self.remove(part, at(&from));
                self.add(part, at(&to));
                if was_leader {
                    self.transfer(part, at(&to));
                }
            }
        }
    }

    pub fn index(&self) -> BTreeMap<NodeId, usize> {
        self.nodes.iter().enumerate().map(|(i, n)| (n.id, i)).collect()
    }

    fn part_index(&self, id: eddy_core::PartitionId) -> usize {
        // Partitions are listed by id in every snapshot the cluster makes;
        // search anyway so that any order works.
        match self.parts.get(id as usize) {
            Some(p) if p.id == id => id as usize,
            _ => self.parts.iter().position(|p| p.id == id).unwrap_or(0),
        }
    }

    fn transfer(&mut self, part: usize, to: usize) {
        let old = self.parts[part].leader;
        if old == Some(to) {
            return;
        }
        let (as_leader, as_follower) = (self.parts[part].load_of(true), self.parts[part].load_of(false));
        if let Some(old) = old {
            self.nodes[old].load = self.nodes[old].load.minus(&as_leader).plus(&as_follower);
        }
        self.nodes[to].load = self.nodes[to].load.minus(&as_follower).plus(&as_leader);
        self.parts[part].leader = Some(to);
    }

    fn add(&mut self, part: usize, node: usize) {
        let load = self.parts[part].load_of(false);
        self.nodes[node].load = self.nodes[node].load.plus(&load);
        // Kept in partition order, as a fresh snapshot lists them, so that
        // a plan on the planner's own output walks them in the same order.
        let parts = &mut self.nodes[node].parts;
        let at = parts.binary_search(&part).unwrap_or_else(|at| at);
        parts.insert(at, part);
        self.parts[part].replicas.push(node);
    }

    fn remove(&mut self, part: usize, node: usize) {
        let leader = self.parts[part].leader == Some(node);
        let load = self.parts[part].load_of(leader);
        self.nodes[node].load = self.nodes[node].load.minus(&load);
        if let Ok(at) = self.nodes[node].parts.binary_search(&part) {
            self.nodes[node].parts.remove(at);
        }
        self.parts[part].replicas.retain(|r| *r != node);
        if leader {
            self.parts[part].leader = None;
        }
    }
}

fn zone_index(zones: &mut Vec<String>, zone: &str) -> usize {
    match zones.iter().position(|z| z == zone) {
        Some(at) => at,
        None => {
            zones.push(zone.to_owned());
            zones.len() - 1
        }
    }
}

fn ghost(id: NodeId, zone: usize) -> Node {
    Node {
        id,
        zone,
        capacity_cores: 0.0,
        price_per_hour: 0.0,
        state: NodeState::Removed,
        curve: LatencyCurve::from_fn(|_| 0.0),
        load: Load::default(),
        parts: Vec::new(),
    }
}
