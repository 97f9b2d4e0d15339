//! Idempotent producers: per producer, the next expected sequence number
//! and the acknowledgements of its last few batches, so a retried batch is
//! answered with its original acknowledgement instead of being stored twice.
//!
//! Part of the replicated partition state: every replica applies the same
//! batches in the same order and holds the same table.

use std::collections::{BTreeMap, VecDeque};

use eddy_core::Hlc;
use serde::{Deserialize, Serialize};

use crate::types::{BatchAck, ProducerStamp};

/// Producers remembered per partition; past this the least recently seen is
/// forgotten (a retry from it would then be stored again).
pub const MAX_PRODUCERS: usize = 10_000;
/// Recent batches remembered per producer, as many as a producer may have
/// in flight.
pub const RECENT_BATCHES: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Recent {
    sequence: u64,
    ack: BatchAck,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Producer {
    next_sequence: u64,
    recent: VecDeque<Recent>,
    last_seen: Hlc,
}

/// What to do with a stamped batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    Accept,
    Duplicate(BatchAck),
    OutOfOrder {
        expected: u64,
    },
    Stale {
        next_expected: u64,
    },
    /// The batch's sequence plus its count does not fit a u64: no producer
    /// can send it, and accepting it would break the table's arithmetic on
    /// every replica alike.
    Overflow,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerTable {
    producers: BTreeMap<u64, Producer>,
}

impl ProducerTable {
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    pub fn check(&self, stamp: ProducerStamp, count: u32) -> Check {
        if stamp.sequence.checked_add(u64::from(count)).is_none() {
            return Check::Overflow;
        }
        let Some(producer) = self.producers.get(&stamp.id) else {
            return Check::Accept;
        };
        if stamp.sequence == producer.next_sequence {
            return Check::Accept;
        }
        if let Some(recent) = producer.recent.iter().find(|r| r.sequence == stamp.sequence && r.ack.count == count) {
            return Check::Duplicate(recent.ack);
        }
        if stamp.sequence < producer.next_sequence {
            Check::Stale { next_expected: producer.next_sequence }
        } else {
            Check::OutOfOrder { expected: producer.next_sequence }
        }
    }

    /// Records an accepted batch.
    pub fn record(&mut self, stamp: ProducerStamp, ack: BatchAck, seen: Hlc) {
        let producer = self.producers.entry(stamp.id).or_insert_with(|| Producer {
            next_sequence: stamp.sequence,
            recent: VecDeque::new(),
            last_seen: seen,
        });
        producer.next_sequence = stamp.sequence.saturating_add(u64::from(ack.count));
        producer.last_seen = seen;
        producer.recent.push_back(Recent { sequence: stamp.sequence, ack });
        while producer.recent.len() > RECENT_BATCHES {
            producer.recent.pop_front();
        }
        if self.producers.len() > MAX_PRODUCERS {
            // Deterministic on every replica: the oldest by hlc, then by id.
            let oldest = self.producers.iter().min_by_key(|(id, p)| (p.last_seen, **id)).map(|(id, _)| *id);
            if let Some(oldest) = oldest {
                self.producers.remove(&oldest);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(first_offset: u64, count: u32) -> BatchAck {
        BatchAck { first_offset, count, first_hlc: Hlc(first_offset) }
    }

    fn stamp(id: u64, sequence: u64) -> ProducerStamp {
        ProducerStamp { id, sequence }
    }

    #[test]
    fn a_new_producer_starts_anywhere_then_must_continue() {
        let mut table = ProducerTable::default();
        assert_eq!(table.check(stamp(1, 40), 5), Check::Accept);
        table.record(stamp(1, 40), ack(0, 5), Hlc(1));
        assert_eq!(table.check(stamp(1, 45), 2), Check::Accept);
        assert_eq!(table.check(stamp(1, 47), 2), Check::OutOfOrder { expected: 45 });
    }

    #[test]
    fn a_retry_gets_the_original_acknowledgement() {
        let mut table = ProducerTable::default();
        table.record(stamp(1, 0), ack(10, 5), Hlc(1));
        table.record(stamp(1, 5), ack(20, 5), Hlc(2));
        assert_eq!(table.check(stamp(1, 0), 5), Check::Duplicate(ack(10, 5)));
        assert_eq!(table.check(stamp(1, 5), 5), Check::Duplicate(ack(20, 5)));
        for i in 0..RECENT_BATCHES as u64 {
            table.record(stamp(1, 10 + i), ack(30 + i, 1), Hlc(3 + i));
        }
        assert_eq!(table.check(stamp(1, 0), 5), Check::Stale { next_expected: 10 + RECENT_BATCHES as u64 });
    }

    #[test]
    fn the_table_forgets_the_least_recently_seen_producer() {
        let mut table = ProducerTable::default();
        for id in 0..=MAX_PRODUCERS as u64 {
            table.record(stamp(id, 0), ack(id, 1), Hlc(id + 100));
        }
        assert_eq!(table.len(), MAX_PRODUCERS);
        assert_eq!(table.check(stamp(0, 0), 1), Check::Accept, "producer 0 was forgotten");
        assert_eq!(table.check(stamp(1, 0), 1), Check::Duplicate(ack(1, 1)));
    }
}
