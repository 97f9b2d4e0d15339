//! The latest changes of the partition table, with their reasons: which
//! moves were committed, by whom (the reason says: the planner, a repair,
//! a drain, an operator), at which table epoch. Kept in the replicated map,
//! so that a controller leader follows every move to its end, whoever
//! started it, and a new leader knows them too.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::Operation;

/// Operations kept, all changes together; the oldest changes go first.
const OPERATIONS_KEPT: usize = 500;

/// One committed batch of table operations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableChange {
    /// The table epoch the batch produced.
    pub epoch: u64,
    pub operations: Vec<Operation>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableHistory {
    changes: VecDeque<TableChange>,
}

impl TableHistory {
    /// Records a batch committed at `epoch`; a batch larger than what is
    /// kept is kept in part.
    pub fn record(&mut self, epoch: u64, operations: &[Operation]) {
        let operations = operations.iter().take(OPERATIONS_KEPT).cloned().collect();
        self.changes.push_back(TableChange { epoch, operations });
        let mut kept: usize = self.changes.iter().map(|c| c.operations.len()).sum();
        while kept > OPERATIONS_KEPT {
            match self.changes.pop_front() {
                Some(oldest) => kept -= oldest.operations.len(),
                None => break,
            }
        }
    }

    /// Changes committed after `epoch`, oldest first.
    pub fn since(&self, epoch: u64) -> impl Iterator<Item = &TableChange> {
        self.changes.iter().filter(move |c| c.epoch > epoch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(partition: u32) -> Operation {
        Operation::AddReplica { partition, node: 1, reason: "r".into() }
    }

    #[test]
    fn the_newest_changes_are_kept_within_the_bound() {
        let mut history = TableHistory::default();
        history.record(1, &vec![add(0); 400]);
        history.record(2, &vec![add(1); 200]);
        assert_eq!(history.since(0).map(|c| c.epoch).collect::<Vec<_>>(), vec![2], "the oldest change went");
        history.record(3, &vec![add(2); 2_000]);
        let kept: Vec<&TableChange> = history.since(0).collect();
        assert_eq!((kept.len(), kept[0].epoch, kept[0].operations.len()), (1, 3, OPERATIONS_KEPT));
        assert_eq!(history.since(3).count(), 0);
    }
}
