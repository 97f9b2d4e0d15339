//! Makes each partition group's voters follow the controller's table: the
//! group's leader adds a new replica as a learner, waits until it has caught
//! up (from the log, or from a snapshot of the whole event log), then
//! changes the membership in one step; a replica the table dropped leaves
//! the group the same way. One change at a time per group.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use eddy_core::NodeId;
use eddy_raft::RaftNode;
use openraft::async_runtime::WatchReceiver;

use crate::replica::Replica;

/// How long a new replica may take to catch up before the change is
/// abandoned (and tried again at the next reconcile).
const CATCH_UP: Duration = Duration::from_secs(300);

/// The group's voters now.
pub fn voters(replica: &Replica) -> BTreeSet<NodeId> {
    replica.raft.metrics().borrow_watched().membership_config.membership().voter_ids().collect()
}

/// Whether `node` is in the group's membership, as a voter or a learner.
pub fn is_member(replica: &Replica, node: NodeId) -> bool {
    let metrics = replica.raft.metrics().borrow_watched().clone();
    let membership = metrics.membership_config.membership();
    membership.voter_ids().any(|id| id == node) || membership.learner_ids().any(|id| id == node)
}

/// The group's committed voters and learners, as this replica knows them.
pub fn committed_members(replica: &Replica) -> (Vec<NodeId>, Vec<NodeId>) {
    let metrics = replica.raft.metrics().borrow_watched().clone();
    let membership = metrics.committed_membership_config.membership();
    (membership.voter_ids().collect(), membership.learner_ids().collect())
}

/// Brings the voters of a group this node leads to `wanted`. Returns
/// whether anything changed.
pub async fn converge(replica: &Replica, wanted: BTreeMap<NodeId, RaftNode>) -> Result<bool, String> {
    let current = voters(replica);
    let wanted_ids: BTreeSet<NodeId> = wanted.keys().copied().collect();
    if current == wanted_ids || wanted_ids.is_empty() {
        return Ok(false);
    }
    let partition = replica.partition;
    for (id, node) in wanted.iter().filter(|(id, _)| !current.contains(id)) {
        tracing::info!(partition, node = id, "adding a replica: it catches up as a learner first");
        let added = tokio::time::timeout(CATCH_UP, replica.raft.add_learner(*id, node.clone(), true)).await;
        match added {
            Ok(Ok(_)) => {}
            Ok(Err(err)) => return Err(format!("adding node {id} as a learner: {err}")),
            Err(_) => return Err(format!("node {id} did not catch up within {CATCH_UP:?}")),
        }
    }
    replica.raft.change_membership(wanted_ids.clone(), false).await.map_err(|e| format!("changing membership: {e}"))?;
    tracing::info!(partition, voters = ?wanted_ids, "partition membership changed");
    Ok(true)
}
