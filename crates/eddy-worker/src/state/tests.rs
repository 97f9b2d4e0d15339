use bytes::Bytes;
use openraft::LogId;
use openraft::impls::leader_id_adv::LeaderId;

use super::*;

fn log_id(index: u64) -> LogIdOf<C> {
    LogId::new(LeaderId { term: 1, node_id: 1 }, index)
}

fn event(key: &str) -> Event {
    Event {
        key: Bytes::from(key.to_owned()),
        event_type: "t".into(),
        payload: Bytes::from_static(b"{}"),
        ..Event::default()
    }
}

fn request(producer: Option<(u64, u64)>, keys: &[&str], now: u64) -> AppendRequest {
    AppendRequest {
        producer: producer.map(|(id, sequence)| ProducerStamp { id, sequence }),
        proposed_ms: now,
        events: keys.iter().map(|k| event(k)).collect(),
    }
}

#[test]
fn batches_get_dense_offsets_and_rising_hlcs() {
    let mut state = PartitionState::default();
    let (record, response) =
        state.apply_append(log_id(1), &[request(None, &["a", "b"], 1000), request(None, &["c"], 900)]);
    let (header, record) = record.expect("events are logged");
    assert_eq!((header.first_offset, header.count), (0, 3));
    let acks: Vec<BatchAck> = response
        .outcomes
        .iter()
        .map(|o| match o {
            AppendOutcome::Stored(ack) => *ack,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(acks[0].first_offset, 0);
    assert_eq!(acks[1].first_offset, 2);
    assert_eq!(acks[0].first_hlc, Hlc::from_millis(1000));
    // A batch proposed with an older clock still gets a later hlc.
    assert_eq!(acks[1].first_hlc, Hlc(Hlc::from_millis(1000).0 + 2));
    assert_eq!(header.first_hlc, acks[0].first_hlc.0);
    assert_eq!(header.last_hlc, acks[1].first_hlc.0);
    assert_eq!(state.next_offset, 3);
    assert_eq!(record.log_id(), log_id(1));
}

#[test]
fn a_retried_batch_is_stored_once_and_answered_the_same() {
    let mut state = PartitionState::default();
    let (_, first) = state.apply_append(log_id(1), &[request(Some((9, 0)), &["a", "b"], 10)]);
    let (record, again) = state.apply_append(log_id(2), &[request(Some((9, 0)), &["a", "b"], 20)]);
    assert!(record.is_none(), "nothing new is logged");
    let AppendOutcome::Stored(ack) = first.outcomes[0] else { panic!() };
    assert_eq!(again.outcomes, vec![AppendOutcome::Duplicate(ack)]);
    assert_eq!(state.next_offset, 2);
    assert_eq!(state.last_applied, Some(log_id(2)));
    let (_, gap) = state.apply_append(log_id(3), &[request(Some((9, 5)), &["c"], 30)]);
    assert_eq!(gap.outcomes, vec![AppendOutcome::OutOfOrder { expected: 2 }]);
}

#[test]
fn replaying_the_records_rebuilds_the_same_state() {
    let mut live = PartitionState::default();
    let mut records = Vec::new();
    let mut index = 0;
    for round in 0..20u64 {
        index += 1;
        let reqs = [
            request(Some((round % 3, live_sequence(&live, round % 3))), &["k", "l"], round * 7),
            request(None, &["x"], 5),
        ];
        let (record, _) = live.apply_append(log_id(index), &reqs);
        records.extend(record.map(|(_, r)| r));
        if round % 5 == 0 {
            index += 1;
            live.apply_blank(log_id(index));
        }
    }
    let mut replayed = PartitionState::default();
    for record in &records {
        replayed.replay(record);
        replayed.replay(record); // twice: the second is skipped
    }
    assert_eq!(replayed.next_offset, live.next_offset);
    assert_eq!(replayed.last_hlc, live.last_hlc);
    assert_eq!(replayed.producers, live.producers);
}

fn live_sequence(state: &PartitionState, producer: u64) -> u64 {
    // Each producer sends two events per round it appears in.
    match state.producers.check(ProducerStamp { id: producer, sequence: 0 }, 2) {
        crate::producers::Check::Accept => 0,
        crate::producers::Check::OutOfOrder { expected }
        | crate::producers::Check::Stale { next_expected: expected } => expected,
        crate::producers::Check::Duplicate(ack) => ack.first_offset,
        crate::producers::Check::Overflow => 0,
    }
}

#[test]
fn a_sequence_that_overflows_is_refused_on_every_replica_alike() {
    let mut state = PartitionState::default();
    let near_end = u64::MAX - 1;
    let (record, response) = state.apply_append(log_id(1), &[request(Some((7, near_end)), &["a", "b"], 10)]);
    assert!(record.is_none(), "nothing is stored");
    assert_eq!(response.outcomes, vec![AppendOutcome::SequenceOverflow]);
    assert_eq!(state.next_offset, 0);
    // The last sequences that fit are taken, and the next one is refused.
    let (_, fits) = state.apply_append(log_id(2), &[request(Some((7, u64::MAX - 2)), &["a", "b"], 10)]);
    assert!(matches!(fits.outcomes[0], AppendOutcome::Stored(_)), "{fits:?}");
    let (_, after) = state.apply_append(log_id(3), &[request(Some((7, u64::MAX)), &["c"], 10)]);
    assert_eq!(after.outcomes, vec![AppendOutcome::SequenceOverflow]);
}
