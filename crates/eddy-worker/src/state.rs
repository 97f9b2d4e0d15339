//! The replicated state of a partition and how a committed entry changes
//! it. Pure and deterministic: the same entries give the same state, the
//! same records and the same answers on every replica.
//!
//! Each applied entry becomes at most one record of the event log: its
//! accepted events with their hlcs, or a membership marker. Replaying the
//! records after a snapshot rebuilds the state, so the state itself is
//! written only with snapshots.

use eddy_core::{Event, Hlc};
use eddy_storage::eventlog::RecordHeader;
use openraft::Membership;
use openraft::type_config::alias::{LogIdOf, StoredMembershipOf};
use serde::{Deserialize, Serialize};

use crate::processors::Checkpoint;
use crate::producers::{Check, ProducerTable};
use crate::types::{AppendOutcome, AppendRequest, BatchAck, PartitionResponse, PartitionTypes as C, ProducerStamp};

/// A membership of a partition group.
pub type MembershipOf<C> = Membership<u64, <C as openraft::RaftTypeConfig>::Node>;

/// Record tags in the event log.
pub const TAG_EVENTS: u8 = 1;
pub const TAG_MEMBERSHIP: u8 = 2;
pub const TAG_CHECKPOINT: u8 = 3;

/// An event as the log keeps it: with its commit hlc.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedEvent {
    pub hlc: Hlc,
    pub event: Event,
}

/// The events of one accepted client batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedBatch {
    pub producer: Option<ProducerStamp>,
    pub events: Vec<LoggedEvent>,
}

/// The payload of an event log record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum LogRecord {
    Events { log_id: LogIdOf<C>, batches: Vec<LoggedBatch> },
    Membership { log_id: LogIdOf<C>, membership: MembershipOf<C> },
    Checkpoint { log_id: LogIdOf<C>, checkpoint: Checkpoint },
}

impl LogRecord {
    pub fn log_id(&self) -> LogIdOf<C> {
        match self {
            LogRecord::Events { log_id, .. }
            | LogRecord::Membership { log_id, .. }
            | LogRecord::Checkpoint { log_id, .. } => *log_id,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PartitionState {
    pub last_applied: Option<LogIdOf<C>>,
    pub membership: StoredMembershipOf<C>,
    pub next_offset: u64,
    pub last_hlc: Hlc,
    pub producers: ProducerTable,
    /// The newest processor checkpoint.
    pub checkpoint: Option<Checkpoint>,
}

impl PartitionState {
    /// Applies client batches committed at `log_id`: returns the record to
    /// append (when any event was accepted) and the answer per batch.
    pub fn apply_append(
        &mut self,
        log_id: LogIdOf<C>,
        requests: &[AppendRequest],
    ) -> (Option<(RecordHeader, LogRecord)>, PartitionResponse) {
        let first_offset = self.next_offset;
        let mut batches = Vec::new();
        let mut outcomes = Vec::with_capacity(requests.len());
        for request in requests {
            let count = request.events.len() as u32;
            let check = match request.producer {
                Some(stamp) => self.producers.check(stamp, count),
                None => Check::Accept,
            };
            let outcome = match check {
                Check::Accept => {
                    let events: Vec<LoggedEvent> = request
                        .events
                        .iter()
                        .map(|event| {
                            self.last_hlc = self.last_hlc.tick(request.proposed_ms);
                            LoggedEvent { hlc: self.last_hlc, event: event.clone() }
                        })
                        .collect();
                    let batch = LoggedBatch { producer: request.producer, events };
                    let ack = self.accept(&batch);
                    batches.push(batch);
                    AppendOutcome::Stored(ack)
                }
                Check::Duplicate(ack) => AppendOutcome::Duplicate(ack),
                Check::OutOfOrder { expected } => AppendOutcome::OutOfOrder { expected },
                Check::Stale { next_expected } => AppendOutcome::Stale { next_expected },
            };
            outcomes.push(outcome);
        }
        self.last_applied = Some(log_id);
        let first_hlc = batches.iter().flat_map(|b| b.events.first()).map(|e| e.hlc.0).next();
        let record = first_hlc.map(|first_hlc| {
            let count = (self.next_offset - first_offset) as u32;
            let header = RecordHeader { tag: TAG_EVENTS, first_offset, count, first_hlc, last_hlc: self.last_hlc.0 };
            (header, LogRecord::Events { log_id, batches })
        });
        (record, PartitionResponse { outcomes })
    }

    /// Applies a membership change: returns the marker record.
    pub fn apply_membership(&mut self, log_id: LogIdOf<C>, membership: MembershipOf<C>) -> (RecordHeader, LogRecord) {
        self.membership = StoredMembershipOf::<C>::new(Some(log_id), membership.clone());
        self.last_applied = Some(log_id);
        let header = RecordHeader {
            tag: TAG_MEMBERSHIP,
            first_offset: self.next_offset,
            count: 0,
            first_hlc: self.last_hlc.0,
            last_hlc: self.last_hlc.0,
        };
        (header, LogRecord::Membership { log_id, membership })
    }

    /// Applies a processor checkpoint: returns the marker record, or none
    /// when a newer checkpoint is already held.
    pub fn apply_checkpoint(
        &mut self,
        log_id: LogIdOf<C>,
        checkpoint: &Checkpoint,
    ) -> Option<(RecordHeader, LogRecord)> {
        self.last_applied = Some(log_id);
        if self.checkpoint.as_ref().is_some_and(|held| held.offset > checkpoint.offset)
            || checkpoint.offset > self.next_offset
        {
            return None;
        }
        self.checkpoint = Some(checkpoint.clone());
        let header = RecordHeader {
            tag: TAG_CHECKPOINT,
            first_offset: self.next_offset,
            count: 0,
            first_hlc: self.last_hlc.0,
            last_hlc: self.last_hlc.0,
        };
        Some((header, LogRecord::Checkpoint { log_id, checkpoint: checkpoint.clone() }))
    }

    /// Applies an entry that changes nothing but the applied position.
    pub fn apply_blank(&mut self, log_id: LogIdOf<C>) {
        self.last_applied = Some(log_id);
    }

    /// Takes in an accepted batch: offsets, hlc and the producer table.
    fn accept(&mut self, batch: &LoggedBatch) -> BatchAck {
        let ack = BatchAck {
            first_offset: self.next_offset,
            count: batch.events.len() as u32,
            first_hlc: batch.events.first().map_or(self.last_hlc, |e| e.hlc),
        };
        self.next_offset += u64::from(ack.count);
        if let Some(last) = batch.events.last() {
            self.last_hlc = self.last_hlc.max(last.hlc);
        }
        if let Some(stamp) = batch.producer
            && ack.count > 0
        {
            self.producers.record(stamp, ack, self.last_hlc);
        }
        ack
    }

    /// Re-applies a record read back from the log (after a restart or a
    /// snapshot); records at or before `last_applied` are skipped.
    pub fn replay(&mut self, record: &LogRecord) {
        if self.last_applied.is_some_and(|applied| record.log_id() <= applied) {
            return;
        }
        match record {
            LogRecord::Events { log_id, batches } => {
                for batch in batches {
                    self.accept(batch);
                }
                self.last_applied = Some(*log_id);
            }
            LogRecord::Membership { log_id, membership } => {
                self.apply_membership(*log_id, membership.clone());
            }
            LogRecord::Checkpoint { log_id, checkpoint } => {
                self.apply_checkpoint(*log_id, checkpoint);
            }
        }
    }
}

#[cfg(test)]
mod tests;
