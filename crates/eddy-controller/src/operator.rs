//! Operators' placement changes (`eddyctl move-replica`, `transfer-leader`):
//! checked against the current table and turned into table operations.

use eddy_core::{ClusterMap, NodeId, NodeRecord, Operation, PartitionAssignment, PartitionId};

use crate::ControllerError;

fn assignment(map: &ClusterMap, partition: PartitionId) -> Result<&PartitionAssignment, ControllerError> {
    map.table
        .get(partition)
        .ok_or_else(|| ControllerError::InvalidArgument(format!("partition {partition} does not exist")))
}

fn check_up_worker(map: &ClusterMap, node: NodeId) -> Result<(), ControllerError> {
    if map.nodes.get(&node).is_some_and(NodeRecord::accepts_replicas) {
        Ok(())
    } else {
        Err(ControllerError::InvalidArgument(format!("node {node} is not an up worker")))
    }
}

/// Moves the replica on `from` to `to`.
pub fn move_replica(
    map: &ClusterMap,
    partition: PartitionId,
    from: NodeId,
    to: NodeId,
) -> Result<Vec<Operation>, ControllerError> {
    let assignment = assignment(map, partition)?;
    if !assignment.replicas.contains(&from) {
        return Err(ControllerError::InvalidArgument(format!("node {from} holds no replica of partition {partition}")));
    }
    if assignment.replicas.contains(&to) {
        return Err(ControllerError::InvalidArgument(format!(
            "node {to} already holds a replica of partition {partition}"
        )));
    }
    check_up_worker(map, to)?;
    let reason = "moved by the operator".to_owned();
    // Removed first: the batch never holds more replicas than the factor.
    Ok(vec![
        Operation::RemoveReplica { partition, node: from, reason: reason.clone() },
        Operation::AddReplica { partition, node: to, reason },
    ])
}

/// Names the replica on `to` the partition's leader.
pub fn transfer_leader(
    map: &ClusterMap,
    partition: PartitionId,
    to: NodeId,
) -> Result<Vec<Operation>, ControllerError> {
    if !assignment(map, partition)?.replicas.contains(&to) {
        return Err(ControllerError::InvalidArgument(format!("node {to} holds no replica of partition {partition}")));
    }
    check_up_worker(map, to)?;
    Ok(vec![Operation::TransferLeader { partition, to, reason: "transferred by the operator".to_owned() }])
}

#[cfg(test)]
mod tests {
    use eddy_core::NodeState;

    use super::*;

    fn map() -> ClusterMap {
        let nodes = [(1, NodeState::Up), (2, NodeState::Up), (3, NodeState::Up), (4, NodeState::Down)];
        let mut map = crate::test_maps::cluster(&nodes, 1, 2);
        map.table.partitions[0].replicas = vec![1, 2];
        map.table.partitions[0].leader = Some(1);
        map
    }

    #[test]
    fn requests_that_do_not_fit_the_table_say_why() {
        let map = map();
        let refused = |r: Result<Vec<Operation>, ControllerError>| r.unwrap_err().to_string();
        assert!(refused(move_replica(&map, 7, 1, 3)).contains("partition 7 does not exist"));
        assert!(refused(move_replica(&map, 0, 3, 1)).contains("node 3 holds no replica"));
        assert!(refused(move_replica(&map, 0, 1, 2)).contains("node 2 already holds"));
        assert!(refused(move_replica(&map, 0, 1, 4)).contains("node 4 is not an up worker"));
        assert!(refused(transfer_leader(&map, 0, 3)).contains("node 3 holds no replica"));
        assert_eq!(move_replica(&map, 0, 1, 3).map(|ops| ops.len()).ok(), Some(2));
        assert!(matches!(transfer_leader(&map, 0, 2).as_deref(), Ok([Operation::TransferLeader { to: 2, .. }])));
    }
}
