//! How the workload falls on the nodes between two changes of placement:
//! each node's share of the events it leads, the CPU it carries (as leader
//! and as follower) per event per second of the total rate, whether it
//! hosts any replica; and each partition's log bytes. These change only
//! when placement, leadership or the key shares change, so the fast
//! engine keeps them between steps and a step costs in the number of nodes
//! rather than of partitions.

use std::collections::BTreeMap;

use eddy_core::{NodeId, PartitionId};
use eddy_placement::ClusterSnapshot;

/// The nodes' part of the workload, per unit of total rate.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Spread {
    /// By node index: share of all events the node leads.
    pub(crate) led_share: Vec<f64>,
    /// By node index: mean CPU ms of the events it leads (0 if none).
    pub(crate) led_cost_ms: Vec<f64>,
    /// By node index: cores busy per event per second of the total rate.
    pub(crate) cores_per_rate: Vec<f64>,
    /// By node index: the node holds a replica of some partition.
    pub(crate) hosts: Vec<bool>,
    /// Share of all events whose partition has no serving leader.
    pub(crate) unserved_share: f64,
}

/// Index of node `id` among `n` nodes numbered from 1.
pub(crate) fn index_of(id: NodeId, n: usize) -> Option<usize> {
    (id as usize).checked_sub(1).filter(|i| *i < n)
}

impl Spread {
    /// The spread of `shares` over `cluster`'s `n` nodes, for events of
    /// `costs_ms[p]` CPU each; partitions in `leaderless` are not served.
    pub(crate) fn of(
        cluster: &ClusterSnapshot,
        leaderless: &BTreeMap<PartitionId, f64>,
        shares: &[f64],
        costs_ms: &[f64],
        follower_cpu_share: f64,
        n: usize,
    ) -> Spread {
        let mut spread = Spread {
            led_share: vec![0.0; n],
            led_cost_ms: vec![0.0; n],
            cores_per_rate: vec![0.0; n],
            hosts: vec![false; n],
            unserved_share: 0.0,
        };
        for (p, share) in cluster.partitions.iter().zip(shares) {
            for r in &p.replicas {
                if let Some(i) = index_of(*r, n) {
                    spread.hosts[i] = true;
                }
            }
            let serving = p.leader.filter(|_| !leaderless.contains_key(&p.id)).and_then(|l| index_of(l, n));
            let Some(leader) = serving else {
                spread.unserved_share += share;
                continue;
            };
            let cost_ms = costs_ms.get(p.id as usize).copied().unwrap_or(0.0);
            let cores = share * cost_ms / 1000.0;
            spread.led_share[leader] += share;
            spread.led_cost_ms[leader] += share * cost_ms;
            spread.cores_per_rate[leader] += cores;
            for r in p.replicas.iter().filter(|r| Some(**r) != p.leader) {
                if let Some(i) = index_of(*r, n) {
                    spread.cores_per_rate[i] += cores * follower_cpu_share;
                }
            }
        }
        for (cost, share) in spread.led_cost_ms.iter_mut().zip(&spread.led_share) {
            *cost = if *share > 0.0 { *cost / share } else { 0.0 };
        }
        spread
    }
}

/// Each partition's log bytes: a base plus its share of the events since
/// the shares last changed, so that adding a step's events is one sum.
#[derive(Debug, Clone)]
pub(crate) struct LogBytes {
    base: Vec<f64>,
    shares: Vec<f64>,
    events_since: f64,
    bytes_per_event: f64,
}

impl LogBytes {
    pub(crate) fn new(shares: Vec<f64>, bytes_per_event: f64) -> Self {
        LogBytes { base: vec![0.0; shares.len()], shares, events_since: 0.0, bytes_per_event }
    }

    pub(crate) fn add_events(&mut self, events: f64) {
        self.events_since += events;
    }

    /// From now on events fall by `shares`.
    pub(crate) fn set_shares(&mut self, shares: &[f64]) {
        for (p, base) in self.base.iter_mut().enumerate() {
            *base += self.shares[p] * self.events_since * self.bytes_per_event;
        }
        self.shares = shares.to_vec();
        self.events_since = 0.0;
    }

    pub(crate) fn of(&self, partition: PartitionId) -> f64 {
        let p = partition as usize;
        match (self.base.get(p), self.shares.get(p)) {
            (Some(base), Some(share)) => base + share * self.events_since * self.bytes_per_event,
            _ => 0.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_bytes_follow_the_shares_of_their_time() {
        let mut bytes = LogBytes::new(vec![0.5, 0.5], 10.0);
        bytes.add_events(100.0);
        bytes.set_shares(&[1.0, 0.0]);
        bytes.add_events(100.0);
        assert!((bytes.of(0) - 1500.0).abs() < 1e-9);
        assert!((bytes.of(1) - 500.0).abs() < 1e-9);
        assert_eq!(bytes.of(7), 0.0);
    }
}
