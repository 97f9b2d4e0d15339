//! A partition's state machine: applying a committed entry appends its
//! record to the partition's event log; the event log plus a small state
//! file is the snapshot a new or lagging replica receives.
//!
//! The log is written without fsync as entries apply. Building a snapshot
//! syncs it and then writes the state file; only then may Raft drop the
//! log entries the snapshot covers. After a crash the unsynced tail of the
//! event log may be gone or torn: opening cuts it, replays the records
//! after the state file, and Raft re-applies the rest from its own log.

use std::io;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::Arc;

use eddy_core::{Hlc, PartitionId};
use eddy_storage::eventlog::{EventLog, EventLogConfig, FileSpan, Pick};
use futures::{Stream, TryStreamExt};
use openraft::storage::{EntryResponder, RaftSnapshotBuilder, RaftStateMachine};
use openraft::type_config::alias::{LogIdOf, SnapshotMetaOf, SnapshotOf, StoredMembershipOf};
use openraft::{EntryPayload, OptionalSend};
use tokio::sync::{Mutex, watch};

use crate::checkpoint::{CHUNK_BYTES, Checkpoint, CheckpointError, CheckpointRef};
use crate::dir::{PartitionDir, state_path, write_atomic};
use crate::state::{LogRecord, PartitionState, TAG_CHECKPOINT_CHUNK};
use crate::types::{PartitionCommand, PartitionResponse, PartitionTypes as C};

/// A partition snapshot.
#[derive(Debug, Clone)]
pub enum PartitionSnapshot {
    /// This replica's log as of the snapshot: the encoded state and the
    /// files with their lengths at that moment.
    Local { state: Vec<u8>, files: Vec<FileSpan> },
    /// Received from a leader into a staging directory.
    Staged { dir: PathBuf },
}

pub type Snapshot = SnapshotOf<C, PartitionSnapshot>;

/// What readers of the partition see: the log and how far it is applied.
#[derive(Debug, Clone)]
pub struct LogView {
    pub log: Arc<EventLog>,
    pub next_offset: u64,
    pub last_hlc: Hlc,
    /// Grows each time the log is replaced by an installed snapshot.
    pub generation: u64,
    /// The newest sealed processor checkpoint.
    pub checkpoint: Option<CheckpointRef>,
    /// Records from this offset on must stay (the checkpoints' pieces).
    pub retain_from: Option<u64>,
}

pub struct PartitionStateMachine {
    partition: PartitionId,
    dir: PartitionDir,
    generation: PathBuf,
    log: Arc<EventLog>,
    log_config: EventLogConfig,
    state: PartitionState,
    view: watch::Sender<LogView>,
    /// Serialises writes of the state file between the snapshot builder and
    /// snapshot installs, and keeps them moving forward.
    snapshot_lock: Arc<Mutex<()>>,
}

fn invalid(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

fn encode<T: serde::Serialize>(value: &T) -> io::Result<Vec<u8>> {
    postcard::to_allocvec(value).map_err(|e| invalid(format!("encode: {e}")))
}

/// Opens the log of `generation` and rebuilds the state: the state file,
/// then every record after it.
fn load(
    partition: PartitionId,
    generation: &std::path::Path,
    config: EventLogConfig,
) -> io::Result<(Arc<EventLog>, PartitionState)> {
    let (log, recovery) = EventLog::open(generation, config, 0).map_err(io::Error::other)?;
    if recovery.cut_bytes > 0 || recovery.dropped_segments > 0 {
        tracing::warn!(
            partition,
            cut_bytes = recovery.cut_bytes,
            dropped_segments = recovery.dropped_segments,
            reason = recovery.reason.as_deref().unwrap_or(""),
            "event log had a damaged tail; it was cut and will be filled again from the raft log"
        );
    }
    let mut state = match std::fs::read(state_path(generation)) {
        Ok(bytes) => postcard::from_bytes::<PartitionState>(&bytes)
            .map_err(|e| invalid(format!("partition {partition} state file: {e}")))?,
        Err(err) if err.kind() == io::ErrorKind::NotFound => PartitionState::default(),
        Err(err) => return Err(err),
    };
    if log.next_offset() < state.next_offset || log.start_offset() > state.next_offset {
        return Err(invalid(format!(
            "partition {partition}: the event log holds offsets {}..{} but its state file expects {}; \
             remove the partition's directory to fetch it again from the other replicas",
            log.start_offset(),
            log.next_offset(),
            state.next_offset
        )));
    }
    // Every record after the state file, markers included: an offset alone
    // cannot tell the markers that share it apart, a scan can.
    log.scan::<io::Error>(
        state.next_offset,
        8 << 20,
        |_| Pick::Take,
        |_, payload| {
            let record: LogRecord = postcard::from_bytes(&payload)
                .map_err(|e| invalid(format!("partition {partition}: undecodable record: {e}")))?;
            state.replay(&record);
            Ok(ControlFlow::Continue(()))
        },
    )?;
    Ok((Arc::new(log), state))
}

impl PartitionStateMachine {
    pub fn open(
        partition: PartitionId,
        dir: PartitionDir,
        log_config: EventLogConfig,
    ) -> io::Result<(Self, watch::Receiver<LogView>)> {
        let generation = dir.open_current()?;
        let (log, state) = load(partition, &generation, log_config)?;
        // Raft may drop its log up to what this replica has applied, so what
        // the event log holds now must survive a crash of the machine.
        log.sync().map_err(io::Error::other)?;
        let view = LogView {
            log: log.clone(),
            next_offset: state.next_offset,
            last_hlc: state.last_hlc,
            generation: 0,
            checkpoint: state.checkpoint,
            retain_from: state.retain_from(),
        };
        let (view, receiver) = watch::channel(view);
        let sm = PartitionStateMachine {
            partition,
            dir,
            generation,
            log,
            log_config,
            state,
            view,
            snapshot_lock: Arc::new(Mutex::new(())),
        };
        Ok((sm, receiver))
    }

    fn publish(&self, new_generation: bool) {
        self.view.send_modify(|view| {
            if new_generation {
                view.generation += 1;
                view.log = self.log.clone();
            }
            view.next_offset = self.state.next_offset;
            view.last_hlc = self.state.last_hlc;
            view.checkpoint = self.state.checkpoint;
            view.retain_from = self.state.retain_from();
        });
    }

    fn local_snapshot(&self) -> io::Result<Snapshot> {
        let meta = SnapshotMetaOf::<C> {
            last_log_id: self.state.last_applied,
            last_membership: self.state.membership.clone(),
        };
        let data = PartitionSnapshot::Local { state: encode(&self.state)?, files: self.log.files() };
        Ok(Snapshot { meta, snapshot: data })
    }

    fn append(&self, header: &eddy_storage::eventlog::RecordHeader, record: &LogRecord) -> io::Result<()> {
        self.log.append(header, &encode(record)?).map_err(io::Error::other)
    }
}

/// Reads a sealed checkpoint back from the event log: its pieces, in order,
/// checked against the seal's length and digest.
pub fn read_checkpoint(log: &EventLog, reference: &CheckpointRef) -> Result<Checkpoint, CheckpointError> {
    let seal = reference.seal;
    let damaged = |why: String| CheckpointError::Damaged { offset: seal.offset, why };
    let mut bytes = Vec::with_capacity(usize::try_from(seal.len).unwrap_or(0).min(1 << 30));
    let mut next_index = 0u32;
    let mut problem = None;
    log.scan::<CheckpointError>(
        reference.chunks_from,
        8 * CHUNK_BYTES,
        |header| {
            if header.first_offset > reference.chunks_to {
                Pick::Stop
            } else if header.tag == TAG_CHECKPOINT_CHUNK {
                Pick::Take
            } else {
                Pick::Skip
            }
        },
        |_, payload| {
            let piece = match postcard::from_bytes::<LogRecord>(&payload) {
                Ok(LogRecord::CheckpointChunk { chunk, .. }) => chunk,
                Ok(_) => return Ok(ControlFlow::Continue(())),
                Err(err) => {
                    problem = Some(format!("undecodable piece: {err}"));
                    return Ok(ControlFlow::Break(()));
                }
            };
            if piece.id == seal.id && piece.index == next_index {
                bytes.extend_from_slice(&piece.bytes);
                next_index += 1;
            }
            Ok(if next_index == seal.chunks { ControlFlow::Break(()) } else { ControlFlow::Continue(()) })
        },
    )?;
    if let Some(why) = problem {
        return Err(damaged(why));
    }
    if next_index != seal.chunks || bytes.len() as u64 != seal.len {
        return Err(damaged(format!(
            "found {next_index} of {} pieces, {} of {} bytes",
            seal.chunks,
            bytes.len(),
            seal.len
        )));
    }
    if xxhash_rust::xxh3::xxh3_64(&bytes) != seal.digest {
        return Err(damaged("its digest does not match".into()));
    }
    postcard::from_bytes(&bytes).map_err(|e| damaged(format!("undecodable: {e}")))
}

/// Writes the snapshot's state file, unless the generation was replaced or
/// already holds a newer one.
pub struct PartitionSnapshotBuilder {
    partition: PartitionId,
    dir: PartitionDir,
    generation: PathBuf,
    lock: Arc<Mutex<()>>,
    snapshot: Snapshot,
}

impl RaftSnapshotBuilder<C> for PartitionSnapshotBuilder {
    type SnapshotData = PartitionSnapshot;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let PartitionSnapshot::Local { state, files } = &self.snapshot.snapshot else {
            return Err(invalid("a snapshot to build must be local".into()));
        };
        for span in files {
            span.file.sync_data()?;
        }
        let _writing = self.lock.lock().await;
        if self.dir.open_current_name()? == self.generation {
            let path = state_path(&self.generation);
            let newer_on_disk = match std::fs::read(&path) {
                Ok(bytes) => postcard::from_bytes::<PartitionState>(&bytes)
                    .is_ok_and(|on_disk| on_disk.last_applied >= self.snapshot.meta.last_log_id),
                Err(_) => false,
            };
            if !newer_on_disk {
                write_atomic(&path, state)?;
            }
        }
        tracing::debug!(partition = self.partition, last_log = ?self.snapshot.meta.last_log_id, "partition snapshot built");
        Ok(self.snapshot.clone())
    }
}

impl RaftStateMachine<C> for PartitionStateMachine {
    type SnapshotData = PartitionSnapshot;
    type SnapshotBuilder = PartitionSnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogIdOf<C>>, StoredMembershipOf<C>), io::Error> {
        Ok((self.state.last_applied, self.state.membership.clone()))
    }

    async fn apply<S>(&mut self, mut entries: S) -> Result<(), io::Error>
    where
        S: Stream<Item = Result<EntryResponder<C>, io::Error>> + Unpin + OptionalSend,
    {
        let mut answers = Vec::new();
        while let Some((entry, responder)) = entries.try_next().await? {
            let log_id = entry.log_id;
            let response = match &entry.payload {
                EntryPayload::Blank => {
                    self.state.apply_blank(log_id);
                    PartitionResponse::default()
                }
                EntryPayload::Normal(PartitionCommand::Append(requests)) => {
                    crate::metrics::applied(self.partition, requests.iter().map(|r| r.events.len()).sum());
                    let (record, response) = self.state.apply_append(log_id, requests);
                    if let Some((header, record)) = record {
                        self.append(&header, &record)?;
                    }
                    response
                }
                EntryPayload::Normal(PartitionCommand::CheckpointChunk(chunk)) => {
                    if let Some((header, record)) = self.state.apply_checkpoint_chunk(log_id, chunk) {
                        self.append(&header, &record)?;
                    }
                    PartitionResponse::default()
                }
                EntryPayload::Normal(PartitionCommand::Checkpoint(seal)) => {
                    if let Some((header, record)) = self.state.apply_checkpoint_seal(log_id, seal) {
                        self.append(&header, &record)?;
                    }
                    PartitionResponse::default()
                }
                EntryPayload::Membership(membership) => {
                    let (header, record) = self.state.apply_membership(log_id, membership.clone());
                    self.append(&header, &record)?;
                    PartitionResponse::default()
                }
            };
            if let Some(responder) = responder {
                answers.push((responder, response));
            }
        }
        self.publish(false);
        for (responder, response) in answers {
            responder.send(response);
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        let snapshot = self.local_snapshot().unwrap_or_else(|_| Snapshot {
            meta: SnapshotMetaOf::<C> { last_log_id: None, last_membership: StoredMembershipOf::<C>::default() },
            snapshot: PartitionSnapshot::Local { state: Vec::new(), files: Vec::new() },
        });
        PartitionSnapshotBuilder {
            partition: self.partition,
            dir: self.dir.clone(),
            generation: self.generation.clone(),
            lock: self.snapshot_lock.clone(),
            snapshot,
        }
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMetaOf<C>,
        snapshot: PartitionSnapshot,
    ) -> Result<(), io::Error> {
        let PartitionSnapshot::Staged { dir: staged } = snapshot else {
            return Err(invalid("only a received snapshot can be installed".into()));
        };
        let _writing = self.snapshot_lock.lock().await;
        let next = self.dir.next_generation(&self.generation);
        std::fs::rename(&staged, &next)?;
        let (log, state) = load(self.partition, &next, self.log_config)?;
        if state.last_applied != meta.last_log_id {
            return Err(invalid(format!(
                "partition {}: the received snapshot's state is at {:?}, its metadata at {:?}",
                self.partition, state.last_applied, meta.last_log_id
            )));
        }
        self.dir.switch_to(&next)?;
        self.dir.remove_all_but(&next)?;
        self.generation = next;
        self.log = log;
        self.state = state;
        self.publish(true);
        tracing::info!(partition = self.partition, last_log = ?meta.last_log_id, next_offset = self.state.next_offset, "partition snapshot installed");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        Ok(Some(self.local_snapshot()?))
    }
}

#[cfg(test)]
mod tests {
    use openraft::LogId;
    use openraft::impls::leader_id_adv::LeaderId;

    use super::*;
    use crate::checkpoint::split;
    use crate::types::AppendRequest;

    #[test]
    fn reopening_replays_past_checkpoint_pieces_larger_than_a_read() {
        let dir = tempfile::tempdir().unwrap();
        let generation = dir.path().join("gen-0");
        let config = EventLogConfig::default();
        let mut state = PartitionState::default();
        {
            let (log, _) = EventLog::open(&generation, config, 0).unwrap();
            let mut index = 0;
            let mut next_id = || {
                index += 1;
                LogId::new(LeaderId { term: 1, node_id: 1 }, index)
            };
            let append = |record: Option<(eddy_storage::eventlog::RecordHeader, LogRecord)>| {
                if let Some((header, record)) = record {
                    log.append(&header, &encode(&record).unwrap()).unwrap();
                }
            };
            // Twelve pieces at one offset: 12 MiB of markers, more than the
            // replay reads at a time, before the events that follow.
            let big = Checkpoint { offset: 0, states: [("p".to_owned(), vec![1u8; 12 * CHUNK_BYTES - 64])].into() };
            let (chunks, seal) = split(&big, 9, u64::MAX).unwrap();
            assert_eq!(chunks.len(), 12);
            for chunk in &chunks {
                append(state.apply_checkpoint_chunk(next_id(), chunk));
            }
            append(state.apply_checkpoint_seal(next_id(), &seal));
            let events = AppendRequest { producer: None, proposed_ms: 5, events: vec![eddy_core::Event::default(); 3] };
            append(state.apply_append(next_id(), &[events]).0);
        }
        let (log, loaded) = load(0, &generation, config).unwrap();
        assert_eq!(loaded.next_offset, 3);
        assert_eq!(loaded, state);
        assert_eq!(log.next_offset(), 3);
    }
}
