//! The cluster map: node registry, partition table and settings, and the
//! rules by which placement operations change it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{ClusterSettings, NodeId, NodeRecord, Operation, PartitionId, Role};

/// One partition's replica set and leader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionAssignment {
    pub id: PartitionId,
    /// Replica nodes; the order carries no meaning.
    pub replicas: Vec<NodeId>,
    pub leader: Option<NodeId>,
    /// Table epoch of the last change to this partition.
    pub epoch: u64,
    /// Raft term in which `leader` was seen leading the partition's group
    /// (0 while it is only the placer's choice).
    pub leader_term: u64,
}

/// All partitions, with an epoch that increases with every change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionTable {
    pub epoch: u64,
    pub partitions: Vec<PartitionAssignment>,
}

impl PartitionTable {
    /// A table of `count` partitions with no replicas yet.
    pub fn unassigned(count: u32) -> Self {
        let partitions = (0..count)
            .map(|id| PartitionAssignment { id, replicas: Vec::new(), leader: None, epoch: 0, leader_term: 0 })
            .collect();
        PartitionTable { epoch: 0, partitions }
    }

    pub fn get(&self, id: PartitionId) -> Option<&PartitionAssignment> {
        self.partitions.get(id as usize).filter(|p| p.id == id)
    }
}

/// A node saying it leads a partition's Raft group in a term.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderReport {
    pub partition: PartitionId,
    pub node: NodeId,
    pub term: u64,
}

/// A node saying it leads a partition's Raft group in a term, with the
/// group's committed voters: how the controller sees a move complete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupLead {
    pub partition: PartitionId,
    pub term: u64,
    pub voters: Vec<NodeId>,
}

/// Why a batch of operations was refused. Nothing of a refused batch is applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OperationError {
    #[error("partition {0} does not exist")]
    NoSuchPartition(PartitionId),
    #[error("node {0} is not a registered worker")]
    NotAWorker(NodeId),
    #[error("node {node} already holds a replica of partition {partition}")]
    AlreadyReplica { partition: PartitionId, node: NodeId },
    #[error("node {node} holds no replica of partition {partition}")]
    NotAReplica { partition: PartitionId, node: NodeId },
    #[error("partition {partition} already has {replication_factor} replicas")]
    TooManyReplicas { partition: PartitionId, replication_factor: u32 },
}

/// Everything the controller replicates about the cluster's shape.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterMap {
    /// Set once, at bootstrap.
    pub cluster_id: Option<String>,
    pub settings: Option<ClusterSettings>,
    pub nodes: BTreeMap<NodeId, NodeRecord>,
    /// Increases with every change of `nodes`.
    pub nodes_version: u64,
    pub table: PartitionTable,
    /// What the planner aims for and whether plans are carried out.
    pub placement: crate::PlacementSettings,
    /// The latest changes of the table, with their reasons.
    pub history: crate::TableHistory,
}

impl ClusterMap {
    pub fn workers(&self) -> impl Iterator<Item = &NodeRecord> {
        self.nodes.values().filter(|n| n.spec.has_role(Role::Worker))
    }

    /// Records leaders that partition groups elected. A report counts only
    /// when its term is newer than the recorded one, so a late report from
    /// an old term never undoes a newer one. Returns whether anything changed.
    pub fn observe_leaders(&mut self, reports: &[LeaderReport]) -> bool {
        let epoch = self.table.epoch + 1;
        let mut changed = false;
        for report in reports {
            let Some(p) = self.table.partitions.get_mut(report.partition as usize) else { continue };
            let newer = report.term > p.leader_term;
            let differs = p.leader != Some(report.node) || p.leader_term != report.term;
            if newer && differs && p.replicas.contains(&report.node) {
                p.leader = Some(report.node);
                p.leader_term = report.term;
                p.epoch = epoch;
                changed = true;
            }
        }
        if changed {
            self.table.epoch = epoch;
        }
        changed
    }

    /// Applies a batch of operations atomically: all of them, with one epoch
    /// step, or none. Returns the new table epoch.
    pub fn apply_operations(&mut self, ops: &[Operation]) -> Result<u64, OperationError> {
        let mut table = self.table.clone();
        let epoch = table.epoch + 1;
        let max_replicas = self.settings.map_or(u32::MAX, |s| s.replication_factor);
        for op in ops {
            let partition = table
                .partitions
                .get_mut(op.partition() as usize)
                .filter(|p| p.id == op.partition())
                .ok_or(OperationError::NoSuchPartition(op.partition()))?;
            apply_one(&self.nodes, partition, op, max_replicas)?;
            partition.epoch = epoch;
        }
        if !ops.is_empty() {
            table.epoch = epoch;
            self.table = table;
            self.history.record(epoch, ops);
        }
        Ok(self.table.epoch)
    }
}

fn apply_one(
    nodes: &BTreeMap<NodeId, NodeRecord>,
    partition: &mut PartitionAssignment,
    op: &Operation,
    max_replicas: u32,
) -> Result<(), OperationError> {
    let id = partition.id;
    match op {
        Operation::AddReplica { node, .. } => {
            if !nodes.get(node).is_some_and(|n| n.spec.has_role(Role::Worker)) {
                return Err(OperationError::NotAWorker(*node));
            }
            if partition.replicas.contains(node) {
                return Err(OperationError::AlreadyReplica { partition: id, node: *node });
            }
            if partition.replicas.len() >= max_replicas as usize {
                return Err(OperationError::TooManyReplicas { partition: id, replication_factor: max_replicas });
            }
            partition.replicas.push(*node);
        }
        Operation::RemoveReplica { node, .. } => {
            let before = partition.replicas.len();
            partition.replicas.retain(|r| r != node);
            if partition.replicas.len() == before {
                return Err(OperationError::NotAReplica { partition: id, node: *node });
            }
            if partition.leader == Some(*node) {
                partition.leader = None;
            }
        }
        Operation::TransferLeader { to, .. } => {
            if !partition.replicas.contains(to) {
                return Err(OperationError::NotAReplica { partition: id, node: *to });
            }
            partition.leader = Some(*to);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{NodeSpec, NodeState};

    fn worker(id: NodeId) -> NodeRecord {
        NodeRecord {
            spec: NodeSpec {
                id,
                addr: format!("127.0.0.1:{}", 7000 + id),
                zone: format!("z{id}"),
                capacity_cores: 2.0,
                price_per_hour: 0.1,
                roles: vec![Role::Worker],
            },
            state: NodeState::Up,
            state_since_ms: 0,
        }
    }

    fn map() -> ClusterMap {
        ClusterMap {
            cluster_id: Some("c".into()),
            settings: Some(ClusterSettings { partition_count: 2, replication_factor: 2 }),
            nodes: (1..=3).map(|id| (id, worker(id))).collect(),
            nodes_version: 3,
            table: PartitionTable::unassigned(2),
            placement: Default::default(),
            history: Default::default(),
        }
    }

    fn add(partition: PartitionId, node: NodeId) -> Operation {
        Operation::AddReplica { partition, node, reason: "test".into() }
    }

    #[test]
    fn a_batch_moves_the_epoch_once_and_stamps_changed_partitions() {
        let mut map = map();
        let epoch = map.apply_operations(&[add(0, 1), add(0, 2)]).unwrap();
        assert_eq!(epoch, 1);
        assert_eq!(map.table.partitions[0].replicas, vec![1, 2]);
        assert_eq!(map.table.partitions[0].epoch, 1);
        assert_eq!(map.table.partitions[1].epoch, 0);
        let lead = Operation::TransferLeader { partition: 0, to: 2, reason: "t".into() };
        assert_eq!(map.apply_operations(&[lead]).unwrap(), 2);
        assert_eq!(map.table.partitions[0].leader, Some(2));
    }

    #[test]
    fn a_bad_operation_refuses_the_whole_batch() {
        let mut map = map();
        let before = map.clone();
        let err = map.apply_operations(&[add(0, 1), add(0, 1)]).unwrap_err();
        assert_eq!(err, OperationError::AlreadyReplica { partition: 0, node: 1 });
        assert_eq!(map, before);
        assert!(map.apply_operations(&[add(5, 1)]).is_err());
        assert!(map.apply_operations(&[add(0, 9)]).is_err());
        assert!(map.apply_operations(&[add(0, 1), add(0, 2), add(0, 3)]).is_err());
        assert_eq!(map, before);
    }

    #[test]
    fn removing_the_leader_leaves_the_partition_leaderless() {
        let mut map = map();
        map.apply_operations(&[add(1, 1), add(1, 2)]).unwrap();
        let lead = Operation::TransferLeader { partition: 1, to: 1, reason: "t".into() };
        map.apply_operations(&[lead]).unwrap();
        let remove = Operation::RemoveReplica { partition: 1, node: 1, reason: "t".into() };
        map.apply_operations(&[remove]).unwrap();
        assert_eq!(map.table.partitions[1].leader, None);
        assert_eq!(map.table.partitions[1].replicas, vec![2]);
    }

    #[test]
    fn leader_reports_apply_only_forward_in_term() {
        let mut map = map();
        map.apply_operations(&[add(0, 1), add(0, 2)]).unwrap();
        let epoch = map.table.epoch;
        let report = |node, term| LeaderReport { partition: 0, node, term };
        assert!(map.observe_leaders(&[report(2, 3)]));
        assert_eq!(map.table.partitions[0].leader, Some(2));
        assert_eq!(map.table.epoch, epoch + 1);
        assert!(!map.observe_leaders(&[report(1, 2)]), "an older term is ignored");
        assert!(!map.observe_leaders(&[report(2, 3)]), "a repeated report changes nothing");
        assert!(!map.observe_leaders(&[report(3, 9)]), "a node without a replica is ignored");
        assert!(map.observe_leaders(&[report(1, 4)]));
        assert_eq!((map.table.partitions[0].leader, map.table.partitions[0].leader_term), (Some(1), 4));
    }

    #[test]
    fn the_map_survives_postcard() {
        let mut map = map();
        map.apply_operations(&[add(0, 1)]).unwrap();
        let bytes = postcard::to_allocvec(&map).unwrap();
        let back: ClusterMap = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, map);
    }
}
