//! Makes each partition group's voters follow the controller's table: the
//! group's leader adds a new replica as a learner, waits until it has caught
//! up (from the log, or from a snapshot of the whole event log), then
//! changes the membership in one step; a replica the table dropped leaves
//! the group the same way, and a leader the table dropped hands its
//! leadership over first. One change at a time per group.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use eddy_core::NodeId;
use eddy_raft::RaftNode;
use openraft::ChangeMembers;
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
/// whether anything changed. `wanted_now` reads the table's replicas
/// again: when the table moved on during a long catch-up (the controller
/// undid an overdue move), the change stops rather than carry out a stale
/// one.
///
/// When this node itself leaves the group it keeps its vote until
/// `next_leader` (or another wanted voter) leads: it adds the new replicas,
/// hands the leadership over, and the new leader removes it. Removing a
/// leader's own vote first would leave the group to an election whose
/// winner nobody chose, with the processors' state not checkpointed.
pub async fn converge(
    replica: &Replica,
    wanted: BTreeMap<NodeId, RaftNode>,
    next_leader: Option<NodeId>,
    wanted_now: impl Fn() -> BTreeSet<NodeId>,
) -> Result<bool, String> {
    let current = voters(replica);
    let wanted_ids: BTreeSet<NodeId> = wanted.keys().copied().collect();
    if current == wanted_ids || wanted_ids.is_empty() {
        return Ok(false);
    }
    let partition = replica.partition;
    for (id, node) in wanted.iter().filter(|(id, _)| !current.contains(id)) {
        tracing::info!(partition, node = id, "adding a replica: it catches up as a learner first");
        let caught_up = async {
            replica
                .raft
                .add_learner(*id, node.clone(), false)
                .await
                .map_err(|err| format!("adding node {id} as a learner: {err}"))?;
            caught_up(replica, *id).await
        };
        let added = tokio::select! {
            added = tokio::time::timeout(CATCH_UP, caught_up) => added,
            () = table_moved_on(&wanted_ids, &wanted_now) => {
                return Err(format!("the table no longer places a replica on node {id}"));
            }
        };
        match added {
            Ok(Ok(index)) => tracing::info!(partition, node = id, index, "new replica caught up"),
            Ok(Err(err)) => return Err(err),
            Err(_) => return Err(format!("node {id} did not catch up within {CATCH_UP:?}")),
        }
    }
    if wanted_now() != wanted_ids {
        return Err("the table changed while the new replicas caught up".into());
    }
    let me = replica.node_id;
    if wanted_ids.contains(&me) {
        replica
            .raft
            .change_membership(wanted_ids.clone(), false)
            .await
            .map_err(|e| format!("changing membership: {e}"))?;
        tracing::info!(partition, voters = ?wanted_ids, "partition membership changed");
        return Ok(true);
    }
    let mut interim = wanted_ids.clone();
    interim.insert(me);
    if current != interim {
        replica
            .raft
            .change_membership(interim.clone(), false)
            .await
            .map_err(|e| format!("changing membership: {e}"))?;
        tracing::info!(partition, voters = ?interim, "new replicas are voters; handing the leadership over");
    }
    let Some(to) = next_leader.filter(|n| wanted_ids.contains(n)).or_else(|| wanted_ids.first().copied()) else {
        return Ok(true);
    };
    checkpoint_before_hand_over(replica, partition).await;
    replica
        .raft
        .trigger()
        .transfer_leader(to)
        .await
        .map_err(|e| format!("handing the leadership to node {to}: {e}"))?;
    // The new leader removes this replica; give the election time before
    // this node would try again.
    tokio::time::sleep(HAND_OVER_SETTLE).await;
    Ok(true)
}

/// Waits until the learner `node` holds everything the group had
/// committed when it was last checked; answers that index. Not "within a
/// few entries" (openraft's blocking add_learner): a learner frozen right
/// after it joined passes that on a short log, and the membership would
/// then change to a voter that holds nothing. The first check is made when
/// the wait begins; entries committed while the learner copied are checked
/// again (a few rounds: under load the commit index never stands still).
async fn caught_up(replica: &Replica, node: NodeId) -> Result<u64, String> {
    let mut metrics = replica.raft.metrics();
    let committed =
        |m: &openraft::RaftMetrics<crate::types::PartitionTypes>| m.local_committed.as_ref().map_or(0, |id| id.index);
    let mut target = committed(&metrics.borrow_watched());
    for round in 1..=CATCH_UP_ROUNDS {
        loop {
            let matched = {
                let m = metrics.borrow_watched();
                if m.state != openraft::ServerState::Leader {
                    return Err("this node stopped leading the group while the new replica caught up".into());
                }
                m.replication.as_ref().and_then(|r| r.get(&node).cloned().flatten()).map(|id| id.index)
            };
            if matched.is_some_and(|index| index >= target) {
                break;
            }
            metrics.changed().await.map_err(|_| "the group stopped".to_owned())?;
        }
        let now = committed(&metrics.borrow_watched());
        if now == target || round == CATCH_UP_ROUNDS {
            break;
        }
        target = now;
    }
    Ok(target)
}

/// Checks of the commit index a new replica must reach before it votes.
const CATCH_UP_ROUNDS: usize = 3;

/// How long a leader leaving its group waits after asking for the transfer.
const HAND_OVER_SETTLE: Duration = Duration::from_secs(2);

/// Resolves once the table's replicas differ from `wanted`.
async fn table_moved_on(wanted: &BTreeSet<NodeId>, wanted_now: &impl Fn() -> BTreeSet<NodeId>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        if wanted_now() != *wanted {
            return;
        }
    }
}

/// Learners of the group that the table does not place: left behind by a
/// move that was undone while its new replica caught up.
pub fn stray_learners(replica: &Replica, wanted: &BTreeMap<NodeId, RaftNode>) -> BTreeSet<NodeId> {
    let (_, learners) = committed_members(replica);
    learners.into_iter().filter(|id| !wanted.contains_key(id)).collect()
}

/// Takes stray learners out of the group, so that its leader stops
/// sending them the log and their nodes can drop the replica.
pub async fn remove_learners(replica: &Replica, learners: BTreeSet<NodeId>) {
    let partition = replica.partition;
    match replica.raft.change_membership(ChangeMembers::RemoveNodes(learners.clone()), false).await {
        Ok(_) => tracing::info!(partition, learners = ?learners, "stray learners removed"),
        Err(err) => tracing::warn!(partition, error = %err, "cannot remove stray learners; will try again"),
    }
}

/// How long a hand-over waits for the processors' checkpoint.
const HAND_OVER_CHECKPOINT_WAIT: Duration = Duration::from_secs(3);

/// Commits the processors' current state before the leadership goes: the
/// next leader's processors then start from it rather than replaying the
/// events since the last periodic checkpoint at their full cost, which
/// for costly processors took seconds and showed as a latency spike after
/// every planned transfer. Best effort: without it the next leader
/// replays, as after a failover.
pub async fn checkpoint_before_hand_over(replica: &Replica, partition: eddy_core::PartitionId) {
    let Some(asks) = replica.with_runner(|r| r.checkpoint_asks()) else { return };
    let (answer, offset) = tokio::sync::oneshot::channel();
    if asks.send(answer).await.is_err() {
        return;
    }
    match tokio::time::timeout(HAND_OVER_CHECKPOINT_WAIT, offset).await {
        Ok(Ok(offset)) => tracing::info!(partition, offset, "processor checkpoint committed before hand-over"),
        _ => tracing::info!(partition, "no processor checkpoint before hand-over; the next leader replays"),
    }
}
