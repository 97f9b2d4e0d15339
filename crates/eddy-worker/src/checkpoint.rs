//! Processor checkpoints in pieces: how a leader cuts its processors'
//! states into bounded Raft entries, how the replicated state keeps track
//! of them, and how a new leader reads them back from the event log.
//!
//! A checkpoint's size follows the processors' state, which has no bound a
//! Raft entry could respect (tens of megabytes for the latest events of a
//! few thousand keys). So the leader proposes it as pieces of at most
//! [`CHUNK_BYTES`], each stored as a marker record of the event log, then a
//! small seal naming them. Readers of events pass over the pieces unread,
//! whatever their number; only a leader restoring its processors reads
//! them, from the seal's reference. Pieces of a checkpoint that was never
//! sealed (its leader lost the leadership midway) are ignored.
//!
//! Pure: the types and the cutting. The state applies pieces and seals
//! (`state.rs`); reading a checkpoint back is the state machine's
//! (`sm::read_checkpoint`).

use std::collections::BTreeMap;

use eddy_storage::eventlog::EventLogError;
use serde::{Deserialize, Serialize};

/// Every processor's state at an offset: what a checkpoint holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Events before this offset are folded in.
    pub offset: u64,
    pub states: BTreeMap<String, Vec<u8>>,
}

/// Largest piece of a checkpoint, and so of a Raft entry that carries one.
pub const CHUNK_BYTES: usize = 1 << 20;

/// One piece of a checkpoint, as a Raft entry carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointChunk {
    /// Names the checkpoint; its pieces share it.
    pub id: u64,
    /// Pieces are numbered from 0 and committed in order.
    pub index: u32,
    pub bytes: Vec<u8>,
}

/// Closes a checkpoint whose pieces all committed before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointSeal {
    pub id: u64,
    /// Events before this offset are folded in.
    pub offset: u64,
    pub chunks: u32,
    /// Bytes of the encoded checkpoint, all pieces together.
    pub len: u64,
    /// xxh3 of the encoded checkpoint.
    pub digest: u64,
}

/// Where a sealed checkpoint's pieces are in the event log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointRef {
    pub seal: CheckpointSeal,
    /// Offset of the first piece's record: a scan for the pieces starts here.
    pub chunks_from: u64,
    /// Offset of the last piece's record: the scan ends past it.
    pub chunks_to: u64,
}

impl CheckpointRef {
    pub fn offset(&self) -> u64 {
        self.seal.offset
    }
}

/// A checkpoint whose pieces are arriving.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PendingCheckpoint {
    pub id: u64,
    pub chunks: u32,
    pub len: u64,
    pub chunks_from: u64,
    pub chunks_to: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("the processors' checkpoint is {len} bytes, above processors.max_checkpoint_bytes = {max}")]
    TooLarge { len: usize, max: u64 },
    #[error("encoding the checkpoint: {0}")]
    Encode(String),
    #[error("reading the checkpoint's pieces: {0}")]
    Log(#[from] EventLogError),
    #[error("the checkpoint at offset {offset} is damaged: {why}")]
    Damaged { offset: u64, why: String },
}

/// Cuts a checkpoint into pieces and the seal that closes them.
pub fn split(
    checkpoint: &Checkpoint,
    id: u64,
    max_bytes: u64,
) -> Result<(Vec<CheckpointChunk>, CheckpointSeal), CheckpointError> {
    let bytes = postcard::to_allocvec(checkpoint).map_err(|e| CheckpointError::Encode(e.to_string()))?;
    if bytes.len() as u64 > max_bytes {
        return Err(CheckpointError::TooLarge { len: bytes.len(), max: max_bytes });
    }
    let chunks: Vec<CheckpointChunk> = bytes
        .chunks(CHUNK_BYTES)
        .enumerate()
        .map(|(index, piece)| CheckpointChunk { id, index: index as u32, bytes: piece.to_vec() })
        .collect();
    let seal = CheckpointSeal {
        id,
        offset: checkpoint.offset,
        chunks: chunks.len() as u32,
        len: bytes.len() as u64,
        digest: xxhash_rust::xxh3::xxh3_64(&bytes),
    };
    Ok((chunks, seal))
}

/// A fresh checkpoint id: pieces of two leaders' checkpoints never mix.
pub fn fresh_id() -> u64 {
    u64::from_le_bytes(uuid::Uuid::new_v4().as_bytes()[..8].try_into().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use openraft::LogId;
    use openraft::impls::leader_id_adv::LeaderId;

    use super::*;
    use crate::sm::read_checkpoint as read;
    use crate::state::{LogRecord, PartitionState};
    use crate::types::{AppendRequest, PartitionTypes as C};
    use eddy_storage::eventlog::{EventLog, EventLogConfig};

    fn log_id(index: u64) -> openraft::type_config::alias::LogIdOf<C> {
        LogId::new(LeaderId { term: 1, node_id: 1 }, index)
    }

    /// A replica's state and log, applying entries as the state machine does.
    struct Replica {
        state: PartitionState,
        log: EventLog,
        index: u64,
        _dir: tempfile::TempDir,
    }

    impl Replica {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let config = EventLogConfig { segment_bytes: 4 << 20, ..EventLogConfig::default() };
            let (log, _) = EventLog::open(dir.path(), config, 0).unwrap();
            Replica { state: PartitionState::default(), log, index: 0, _dir: dir }
        }

        fn next_id(&mut self) -> openraft::type_config::alias::LogIdOf<C> {
            self.index += 1;
            log_id(self.index)
        }

        fn append(&mut self, record: Option<(eddy_storage::eventlog::RecordHeader, LogRecord)>) {
            if let Some((header, record)) = record {
                self.log.append(&header, &postcard::to_allocvec(&record).unwrap()).unwrap();
            }
        }

        fn events(&mut self, count: usize) {
            let id = self.next_id();
            let request =
                AppendRequest { producer: None, proposed_ms: 1, events: vec![eddy_core::Event::default(); count] };
            let (record, _) = self.state.apply_append(id, &[request]);
            self.append(record);
        }

        fn chunk(&mut self, chunk: &CheckpointChunk) {
            let id = self.next_id();
            let record = self.state.apply_checkpoint_chunk(id, chunk);
            self.append(record);
        }

        fn seal(&mut self, seal: &CheckpointSeal) {
            let id = self.next_id();
            let record = self.state.apply_checkpoint_seal(id, seal);
            self.append(record);
        }
    }

    /// A checkpoint of about `bytes` bytes at `offset`.
    fn checkpoint(offset: u64, bytes: usize) -> Checkpoint {
        let states: BTreeMap<String, Vec<u8>> =
            [("big".to_owned(), (0..bytes).map(|i| (i % 251) as u8).collect()), ("small".to_owned(), vec![7; 3])]
                .into_iter()
                .collect();
        Checkpoint { offset, states }
    }

    #[test]
    fn a_checkpoint_larger_than_a_read_is_stored_in_pieces_and_read_back_whole() {
        let mut replica = Replica::new();
        replica.events(5);
        let wanted = checkpoint(5, 3 * CHUNK_BYTES + 100);
        let (chunks, seal) = split(&wanted, 42, u64::MAX).unwrap();
        assert_eq!(chunks.len(), 4);
        assert!(chunks.iter().all(|c| c.bytes.len() <= CHUNK_BYTES));
        // Events keep arriving between the pieces.
        for chunk in &chunks {
            replica.chunk(chunk);
            replica.events(2);
        }
        replica.seal(&seal);
        replica.events(1);
        let reference = replica.state.checkpoint.expect("sealed");
        assert_eq!(reference.offset(), 5);
        assert_eq!(read(&replica.log, &reference).unwrap(), wanted);
        // Readers of events pass over every piece.
        let mut next = 0;
        let mut seen = 0;
        loop {
            let records = replica.log.read_events(next, 1).unwrap();
            let Some((last, _)) = records.last() else { break };
            assert!(records.iter().all(|(h, _)| h.tag == crate::state::TAG_EVENTS));
            seen += records.len();
            next = last.end_offset();
        }
        assert_eq!((next, seen), (14, 6));
        // The state replayed from the log equals the applied one.
        let mut replayed = PartitionState::default();
        for (_, payload) in replica.log.read(0, usize::MAX).unwrap() {
            replayed.replay(&postcard::from_bytes(&payload).unwrap());
        }
        assert_eq!(replayed, replica.state);
        assert_eq!(replica.state.retain_from(), Some(reference.chunks_from));
    }

    #[test]
    fn pieces_of_an_abandoned_checkpoint_are_ignored() {
        let mut replica = Replica::new();
        replica.events(3);
        let (first, first_seal) = split(&checkpoint(3, 2 * CHUNK_BYTES), 1, u64::MAX).unwrap();
        // The first leader committed one piece, then lost the leadership.
        replica.chunk(&first[0]);
        let (second, second_seal) = split(&checkpoint(3, 10), 2, u64::MAX).unwrap();
        replica.chunk(&second[0]);
        // A late piece of the first checkpoint, and its seal, change nothing.
        replica.chunk(&first[1]);
        replica.seal(&first_seal);
        assert_eq!(replica.state.checkpoint, None);
        replica.seal(&second_seal);
        let reference = replica.state.checkpoint.expect("the second checkpoint is sealed");
        assert_eq!(reference.seal.id, 2);
        assert_eq!(read(&replica.log, &reference).unwrap(), checkpoint(3, 10));
        // A seal whose pieces never came is ignored too.
        let (_, orphan) = split(&checkpoint(3, 10), 3, u64::MAX).unwrap();
        replica.seal(&orphan);
        assert_eq!(replica.state.checkpoint, Some(reference));
    }

    #[test]
    fn a_damaged_piece_is_reported_not_restored() {
        let mut replica = Replica::new();
        let (chunks, seal) = split(&checkpoint(0, 100), 5, u64::MAX).unwrap();
        replica.chunk(&chunks[0]);
        replica.seal(&seal);
        let mut reference = replica.state.checkpoint.expect("sealed");
        reference.seal.digest ^= 1;
        assert!(matches!(read(&replica.log, &reference), Err(CheckpointError::Damaged { .. })));
    }

    #[test]
    fn a_checkpoint_above_the_limit_is_refused_with_the_limit_named() {
        let err = split(&checkpoint(0, 5000), 1, 4096).unwrap_err();
        assert!(err.to_string().contains("processors.max_checkpoint_bytes"), "{err}");
    }
}
