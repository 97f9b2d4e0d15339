use eddy_placement::{Effect, PlannedOperation};

use super::*;
use crate::test_maps::three_of_four as map;

fn planned(change: Move) -> PlannedOperation {
    PlannedOperation { change, reason: "test".into(), effect: Effect::default() }
}

fn moved(partition: PartitionId) -> PlannedOperation {
    planned(Move::MoveReplica { partition, from: 3, to: 4 })
}

/// Commits `ops` to `map` the way the control loop does and tracks them.
fn commit(executor: &mut Executor, map: &mut ClusterMap, ops: &[PlannedOperation], now_ms: u64) {
    let plan = eddy_placement::Plan { operations: ops.to_vec(), ..Default::default() };
    let epoch = map.apply_operations(&crate::planning::table_operations(map, &plan)).expect("fits");
    executor.start(map, ops, epoch, now_ms, |_| 1_000);
}

fn report(leader: NodeId, term: u64, voters: &[NodeId]) -> GroupReport {
    GroupReport { leader, term, voters: voters.iter().copied().collect() }
}

#[test]
fn copies_wait_while_their_nodes_are_busy() {
    let mut executor = Executor::default();
    let mut map = map();
    let first = executor.admit(&map, &[moved(0), moved(1), moved(2)], 2);
    assert_eq!(first.admitted.len(), 2);
    assert_eq!(first.deferred, vec![2]);
    commit(&mut executor, &mut map, &first.admitted, 0);
    // Nodes 1 and 4 copy twice already: moves onto 4 wait, transfers do not.
    let transfer = planned(Move::TransferLeader { partition: 3, from: Some(1), to: 2 });
    let second = executor.admit(&map, &[moved(4), transfer.clone()], 2);
    assert_eq!(second.deferred, vec![4]);
    assert_eq!(second.admitted.len(), 1);
    assert_eq!(second.admitted[0].change, transfer.change);
    assert_eq!(executor.in_flight(), [0, 1].into());
}

#[test]
fn a_move_completes_when_its_group_reports_the_new_voters() {
    let mut executor = Executor::default();
    let mut map = map();
    commit(&mut executor, &mut map, &[moved(0)], 0);
    let mut reports = BTreeMap::from([(0, report(1, 3, &[1, 2, 3]))]);
    assert!(executor.observe(&map, &reports, 10, true).is_empty());
    assert_eq!(executor.records()[0].outcome, OpOutcome::InFlight);
    reports.insert(0, report(1, 3, &[1, 2, 4]));
    assert!(executor.observe(&map, &reports, 20, true).is_empty());
    assert!(executor.in_flight().is_empty());
    let record = &executor.records()[0];
    assert_eq!((record.outcome, record.finished_ms), (OpOutcome::Completed, Some(20)));
}

#[test]
fn a_transfer_completes_when_the_new_leader_reports() {
    let mut executor = Executor::default();
    let mut map = map();
    commit(&mut executor, &mut map, &[planned(Move::TransferLeader { partition: 0, from: Some(1), to: 2 })], 0);
    let mut reports = BTreeMap::from([(0, report(1, 3, &[1, 2, 3]))]);
    executor.observe(&map, &reports, 10, true);
    assert_eq!(executor.in_flight(), [0].into());
    reports.insert(0, report(2, 4, &[1, 2, 3]));
    executor.observe(&map, &reports, 20, true);
    assert_eq!(executor.records()[0].outcome, OpOutcome::Completed);
}

#[test]
fn an_overdue_move_is_undone_back_to_the_groups_voters() {
    let mut executor = Executor::default();
    let mut map = map();
    commit(&mut executor, &mut map, &[moved(0)], 0);
    let reports = BTreeMap::from([(0, report(1, 3, &[1, 2, 3]))]);
    assert!(executor.observe(&map, &reports, 999, true).is_empty());
    let undo = executor.observe(&map, &reports, 1_000, true);
    assert_eq!(executor.records()[0].outcome, OpOutcome::TimedOut { undone: true });
    map.apply_operations(&undo).expect("the undo fits the table");
    let mut replicas = map.table.partitions[0].replicas.clone();
    replicas.sort_unstable();
    assert_eq!(replicas, vec![1, 2, 3]);
    assert_eq!(map.table.partitions[0].leader, Some(1));
}

#[test]
fn an_overdue_move_without_a_report_is_left_to_the_table() {
    let mut executor = Executor::default();
    let mut map = map();
    commit(&mut executor, &mut map, &[moved(0)], 0);
    assert!(executor.observe(&map, &BTreeMap::new(), 5_000, true).is_empty());
    assert_eq!(executor.records()[0].outcome, OpOutcome::TimedOut { undone: false });
}

#[test]
fn a_move_the_table_left_behind_is_superseded() {
    let mut executor = Executor::default();
    let mut map = map();
    commit(&mut executor, &mut map, &[moved(0)], 0);
    let drain = [Operation::RemoveReplica { partition: 0, node: 4, reason: "drain".into() }];
    map.apply_operations(&drain).expect("fits");
    executor.observe(&map, &BTreeMap::new(), 10, true);
    assert_eq!(executor.records()[0].outcome, OpOutcome::Superseded);
}

#[test]
fn an_election_since_the_commit_does_not_keep_a_move_open() {
    let mut executor = Executor::default();
    let mut map = map();
    // Moving the leader's replica names the new replica as leader...
    commit(&mut executor, &mut map, &[planned(Move::MoveReplica { partition: 0, from: 1, to: 4 })], 0);
    assert_eq!(map.table.partitions[0].leader, Some(4));
    // ...but the group elected node 2, and the table followed.
    let elected = [eddy_core::LeaderReport { partition: 0, node: 2, term: 4 }];
    assert!(map.observe_leaders(&elected));
    executor.observe(&map, &BTreeMap::from([(0, report(2, 4, &[2, 3, 4]))]), 10, true);
    assert_eq!(executor.records()[0].outcome, OpOutcome::Completed);
}

#[test]
fn timeouts_grow_with_the_bytes_to_copy() {
    let times = MoveTimes { copy_bytes_per_s: 1e6, replica_fixed_s: 1.0, leader_transfer_s: 0.5 };
    let copy = Move::AddReplica { partition: 0, node: 4 };
    assert!(timeout_ms(&copy, 100_000_000, &times) > timeout_ms(&copy, 1_000, &times));
    assert_eq!(timeout_ms(&copy, 1_000_000, &times), COPY_TIMEOUT_FIXED_MS + 8_000);
    let transfer = Move::TransferLeader { partition: 0, from: None, to: 2 };
    assert_eq!(timeout_ms(&transfer, u64::MAX, &times), TRANSFER_TIMEOUT_MS);
}

#[test]
fn a_change_begun_elsewhere_is_followed_until_it_converges() {
    // A new controller leader finds partition 0 moving from 3 to 4.
    let mut map = map();
    let begun = [
        Operation::RemoveReplica { partition: 0, node: 3, reason: "earlier leader".into() },
        Operation::AddReplica { partition: 0, node: 4, reason: "earlier leader".into() },
    ];
    map.apply_operations(&begun).expect("fits");
    let mut executor = Executor::default();
    let settled = BTreeMap::from([(1, report(1, 3, &[1, 2, 3]))]);
    let mut reports = BTreeMap::from([(0, report(1, 3, &[1, 2, 3]))]);
    reports.extend(settled);
    executor.observe(&map, &reports, 0, true);
    assert_eq!(executor.in_flight(), [0].into(), "only the unconverged partition is followed");
    reports.insert(0, report(1, 3, &[1, 2, 4]));
    executor.observe(&map, &reports, 10, true);
    assert!(executor.in_flight().is_empty());
    // Listed for `eddyctl ops` too, as what it was doing.
    let records = executor.records();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].change, Move::MoveReplica { partition: 0, from: 3, to: 4 });
    assert_eq!(records[0].outcome, OpOutcome::Completed);
}

#[test]
fn a_newer_leader_the_table_has_not_taken_in_is_not_a_move() {
    let map = map();
    let mut executor = Executor::default();
    executor.observe(&map, &BTreeMap::from([(0, report(2, 4, &[1, 2, 3]))]), 0, true);
    assert!(executor.in_flight().is_empty());
}

#[test]
fn a_change_begun_elsewhere_that_never_converges_is_undone() {
    let mut map = map();
    map.apply_operations(&[Operation::TransferLeader { partition: 0, to: 2, reason: "operator".into() }])
        .expect("fits");
    let mut executor = Executor::default();
    let reports = BTreeMap::from([(0, report(1, 3, &[1, 2, 3]))]);
    assert!(executor.observe(&map, &reports, 0, true).is_empty());
    let undo = executor.observe(&map, &reports, ADOPTED_TIMEOUT_MS, true);
    assert!(matches!(undo.as_slice(), [Operation::TransferLeader { to: 1, .. }]), "{undo:?}");
}

#[test]
fn without_leave_to_undo_an_overdue_move_is_only_reported() {
    let mut executor = Executor::default();
    let mut map = map();
    commit(&mut executor, &mut map, &[moved(0)], 0);
    let reports = BTreeMap::from([(0, report(1, 3, &[1, 2, 3]))]);
    assert!(executor.observe(&map, &reports, 1_000, false).is_empty());
    assert_eq!(executor.records()[0].outcome, OpOutcome::TimedOut { undone: false });
}

#[test]
fn an_operators_move_is_booked_with_its_reason_and_followed_to_its_end() {
    let mut executor = Executor::default();
    let mut map = map();
    let mut reports = BTreeMap::from([(2, report(1, 3, &[1, 2, 3]))]);
    assert!(executor.observe(&map, &reports, 0, true).is_empty());
    let ops = crate::operator::move_replica(&map, 2, 3, 4).expect("a valid move");
    map.apply_operations(&ops).expect("fits");
    executor.observe(&map, &reports, 10, true);
    assert_eq!(executor.in_flight(), [2].into(), "left out of planning while it runs");
    let record = &executor.records()[0];
    assert_eq!(record.change, Move::MoveReplica { partition: 2, from: 3, to: 4 });
    assert_eq!((record.reason.as_str(), record.outcome), ("moved by the operator", OpOutcome::InFlight));
    reports.insert(2, report(1, 3, &[1, 2, 4]));
    executor.observe(&map, &reports, 30, true);
    let record = &executor.records()[0];
    assert_eq!((record.outcome, record.at_ms, record.finished_ms), (OpOutcome::Completed, 10, Some(30)));
}

#[test]
fn the_books_own_commits_are_not_booked_twice_and_earlier_changes_are_described() {
    let mut executor = Executor::default();
    let mut map = map();
    // A move begun under an earlier leader: the group still has node 3.
    map.table.partitions[1].replicas = vec![1, 2, 4];
    let reports = BTreeMap::from([(1, report(1, 3, &[1, 2, 3]))]);
    executor.observe(&map, &reports, 0, true);
    let adopted = executor.records();
    assert_eq!(adopted.len(), 1);
    assert_eq!(adopted[0].change, Move::MoveReplica { partition: 1, from: 3, to: 4 });
    commit(&mut executor, &mut map, &[moved(0)], 5);
    executor.observe(&map, &reports, 10, true);
    assert_eq!(executor.records().len(), 2, "the book's own move once, the adopted one once");
}
