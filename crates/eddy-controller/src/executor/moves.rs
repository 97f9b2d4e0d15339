//! Table operations read back as moves: a committed batch's operations on
//! one partition (removals, additions, a leader named) as the moves they
//! make, for the book of a change the executor did not start.

use std::collections::{BTreeMap, BTreeSet};

use eddy_core::{NodeId, Operation, PartitionId};
use eddy_placement::Move;

/// The moves a batch of operations makes, per partition, each with the
/// reason its operations gave. A removal and an addition on the same
/// partition pair up as a replica move.
pub fn moves_of(operations: &[Operation]) -> BTreeMap<PartitionId, Vec<(Move, String)>> {
    let mut removed: BTreeMap<PartitionId, Vec<(NodeId, &str)>> = BTreeMap::new();
    let mut added: BTreeMap<PartitionId, Vec<(NodeId, &str)>> = BTreeMap::new();
    let mut leaders: BTreeMap<PartitionId, (NodeId, &str)> = BTreeMap::new();
    for op in operations {
        match op {
            Operation::RemoveReplica { partition, node, reason } => {
                removed.entry(*partition).or_default().push((*node, reason));
            }
            Operation::AddReplica { partition, node, reason } => {
                added.entry(*partition).or_default().push((*node, reason));
            }
            Operation::TransferLeader { partition, to, reason } => {
                leaders.insert(*partition, (*to, reason));
            }
        }
    }
    let partitions: BTreeSet<PartitionId> = removed.keys().chain(added.keys()).chain(leaders.keys()).copied().collect();
    partitions
        .into_iter()
        .map(|partition| {
            let removed = removed.remove(&partition).unwrap_or_default();
            let added = added.remove(&partition).unwrap_or_default();
            let mut moves = Vec::new();
            for i in 0..removed.len().max(added.len()) {
                let change = match (removed.get(i), added.get(i)) {
                    (Some((from, why)), Some((to, _))) => (Move::MoveReplica { partition, from: *from, to: *to }, why),
                    (Some((node, why)), None) => (Move::RemoveReplica { partition, node: *node }, why),
                    (None, Some((node, why))) => (Move::AddReplica { partition, node: *node }, why),
                    (None, None) => continue,
                };
                moves.push((change.0, (*change.1).to_owned()));
            }
            // A new replica named leader is part of its move.
            if let Some((to, why)) = leaders.remove(&partition).filter(|(to, _)| !added.iter().any(|(a, _)| a == to)) {
                moves.push((Move::TransferLeader { partition, from: None, to }, why.to_owned()));
            }
            (partition, moves)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_removal_and_an_addition_read_as_a_replica_move() {
        let ops = vec![
            Operation::RemoveReplica { partition: 3, node: 1, reason: "moved by the operator".into() },
            Operation::AddReplica { partition: 3, node: 4, reason: "moved by the operator".into() },
            Operation::TransferLeader { partition: 3, to: 4, reason: "moved by the operator".into() },
            Operation::TransferLeader { partition: 5, to: 2, reason: "transferred by the operator".into() },
            Operation::AddReplica { partition: 6, node: 2, reason: "fill".into() },
        ];
        let moves = moves_of(&ops);
        assert_eq!(
            moves[&3],
            vec![(Move::MoveReplica { partition: 3, from: 1, to: 4 }, "moved by the operator".to_owned())]
        );
        assert_eq!(moves[&5][0].0, Move::TransferLeader { partition: 5, from: None, to: 2 });
        assert_eq!(moves[&6][0].0, Move::AddReplica { partition: 6, node: 2 });
    }
}
