//! Processor panics the nodes reported in their heartbeats, as the
//! controller leader shows them in the status. Leader-local soft state,
//! each node's list as its latest heartbeat said, bounded.

use std::collections::BTreeMap;

use eddy_core::{NodeId, PartitionId};

/// Reports kept per node, and the longest description kept.
const PER_NODE: usize = 16;
const DESCRIPTION_CHARS: usize = 500;

/// One processor panic, as a node reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PanicReport {
    pub partition: PartitionId,
    pub processor: String,
    pub description: String,
    pub at_ms: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessorPanics {
    by_node: BTreeMap<NodeId, Vec<PanicReport>>,
}

impl ProcessorPanics {
    /// Takes a node's report, replacing what it said before. A report is
    /// input from the network: cut to size.
    pub fn hear(&mut self, node: NodeId, mut panics: Vec<PanicReport>) {
        if panics.is_empty() {
            self.by_node.remove(&node);
            return;
        }
        panics.truncate(PER_NODE);
        for panic in &mut panics {
            panic.processor = panic.processor.chars().take(DESCRIPTION_CHARS).collect();
            panic.description = panic.description.chars().take(DESCRIPTION_CHARS).collect();
        }
        self.by_node.insert(node, panics);
    }

    /// Every report: (node, panic).
    pub fn list(&self) -> Vec<(NodeId, PanicReport)> {
        self.by_node.iter().flat_map(|(node, panics)| panics.iter().map(move |p| (*node, p.clone()))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_nodes_latest_report_is_kept_within_bounds() {
        let mut panics = ProcessorPanics::default();
        let report =
            |n: u64| PanicReport { partition: 1, processor: "stats".into(), description: "x".repeat(10_000), at_ms: n };
        panics.hear(2, (0..100).map(report).collect());
        let listed = panics.list();
        assert_eq!(listed.len(), PER_NODE);
        assert!(listed.iter().all(|(node, p)| *node == 2 && p.description.len() == DESCRIPTION_CHARS));
        panics.hear(2, Vec::new());
        assert!(panics.list().is_empty());
    }
}
