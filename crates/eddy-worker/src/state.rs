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

use crate::checkpoint::{CheckpointChunk, CheckpointRef, CheckpointSeal, PendingCheckpoint};
use crate::producers::{Check, ProducerTable};
use crate::types::{AppendOutcome, AppendRequest, BatchAck, PartitionResponse, PartitionTypes as C, ProducerStamp};

/// A membership of a partition group.
pub type MembershipOf<C> = Membership<u64, <C as openraft::RaftTypeConfig>::Node>;

/// Record tags in the event log.
pub const TAG_EVENTS: u8 = 1;
pub const TAG_MEMBERSHIP: u8 = 2;
pub const TAG_CHECKPOINT: u8 = 3;
pub const TAG_CHECKPOINT_CHUNK: u8 = 4;

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
    Events {
        log_id: LogIdOf<C>,
        batches: Vec<LoggedBatch>,
    },
    Membership {
        log_id: LogIdOf<C>,
        membership: MembershipOf<C>,
    },
    /// A sealed processor checkpoint: where its pieces are.
    Checkpoint {
        log_id: LogIdOf<C>,
        checkpoint: CheckpointRef,
    },
    /// One piece of a processor checkpoint.
    CheckpointChunk {
        log_id: LogIdOf<C>,
        chunk: CheckpointChunk,
    },
}

impl LogRecord {
    pub fn log_id(&self) -> LogIdOf<C> {
        match self {
            LogRecord::Events { log_id, .. }
            | LogRecord::Membership { log_id, .. }
            | LogRecord::Checkpoint { log_id, .. }
            | LogRecord::CheckpointChunk { log_id, .. } => *log_id,
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
    /// The newest sealed processor checkpoint.
    pub checkpoint: Option<CheckpointRef>,
    /// The checkpoint whose pieces are arriving.
    pub pending_checkpoint: Option<PendingCheckpoint>,
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
                Check::Overflow => AppendOutcome::SequenceOverflow,
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
        (self.marker(TAG_MEMBERSHIP), LogRecord::Membership { log_id, membership })
    }

    /// Applies a piece of a processor checkpoint: returns its marker
    /// record, or none when it does not continue the checkpoint under way
    /// (a piece of a checkpoint whose leader stopped midway).
    pub fn apply_checkpoint_chunk(
        &mut self,
        log_id: LogIdOf<C>,
        chunk: &CheckpointChunk,
    ) -> Option<(RecordHeader, LogRecord)> {
        self.last_applied = Some(log_id);
        let at = self.next_offset;
        let len = chunk.bytes.len() as u64;
        match &mut self.pending_checkpoint {
            Some(pending) if pending.id == chunk.id && pending.chunks == chunk.index => {
                pending.chunks += 1;
                pending.len += len;
                pending.chunks_to = at;
            }
            _ if chunk.index == 0 => {
                self.pending_checkpoint =
                    Some(PendingCheckpoint { id: chunk.id, chunks: 1, len, chunks_from: at, chunks_to: at });
            }
            _ => return None,
        }
        let header = self.marker(TAG_CHECKPOINT_CHUNK);
        Some((header, LogRecord::CheckpointChunk { log_id, chunk: chunk.clone() }))
    }

    /// Applies the seal of a processor checkpoint: returns its marker
    /// record, or none when its pieces did not all arrive or a newer
    /// checkpoint is already held.
    pub fn apply_checkpoint_seal(
        &mut self,
        log_id: LogIdOf<C>,
        seal: &CheckpointSeal,
    ) -> Option<(RecordHeader, LogRecord)> {
        self.last_applied = Some(log_id);
        let pending = self.pending_checkpoint.as_ref()?;
        let whole = pending.id == seal.id && pending.chunks == seal.chunks && pending.len == seal.len;
        let older = self.checkpoint.as_ref().is_some_and(|held| held.offset() > seal.offset);
        if !whole || older || seal.offset > self.next_offset {
            return None;
        }
        let reference = CheckpointRef { seal: *seal, chunks_from: pending.chunks_from, chunks_to: pending.chunks_to };
        self.pending_checkpoint = None;
        self.checkpoint = Some(reference);
        Some((self.marker(TAG_CHECKPOINT), LogRecord::Checkpoint { log_id, checkpoint: reference }))
    }

    /// The header of a marker record at the log's end.
    fn marker(&self, tag: u8) -> RecordHeader {
        RecordHeader {
            tag,
            first_offset: self.next_offset,
            count: 0,
            first_hlc: self.last_hlc.0,
            last_hlc: self.last_hlc.0,
        }
    }

    /// The oldest offset whose records a replica must keep: the pieces of
    /// its latest checkpoint and of the one under way.
    pub fn retain_from(&self) -> Option<u64> {
        let sealed = self.checkpoint.as_ref().map(|c| c.chunks_from);
        let pending = self.pending_checkpoint.as_ref().map(|p| p.chunks_from);
        sealed.into_iter().chain(pending).min()
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
                self.apply_checkpoint_seal(*log_id, &checkpoint.seal);
            }
            LogRecord::CheckpointChunk { log_id, chunk } => {
                self.apply_checkpoint_chunk(*log_id, chunk);
            }
        }
    }
}

#[cfg(test)]
mod tests;
