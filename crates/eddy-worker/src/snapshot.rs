//! Moving a partition snapshot between replicas: the leader streams the
//! state and the event log files, the receiver writes them into a staging
//! directory and hands that to Raft to install.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use eddy_proto::v1::{RaftReply, SnapshotChunk};
use eddy_raft::{Peer, SnapshotSender};
use eddy_storage::eventlog::FileSpan;
use openraft::errors::{NetworkError, StreamingError, Unreachable};
use openraft::network::RPCOption;
use openraft::raft::SnapshotResponse;
use openraft::type_config::alias::{SnapshotMetaOf, VoteOf};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::dir::{state_path, write_atomic};
use crate::replica::PartitionRaft;
use crate::sm::{PartitionSnapshot, Snapshot};
use crate::types::PartitionTypes as C;

const CHUNK_BYTES: usize = 1 << 20;
/// A received snapshot larger than this is refused.
pub const MAX_SNAPSHOT_BYTES: u64 = 256 << 30;

#[derive(Debug, Clone, Copy, Default)]
pub struct FileSnapshots;

type Header = (VoteOf<C>, SnapshotMetaOf<C>, Vec<u8>);

impl SnapshotSender<C> for FileSnapshots {
    type Data = PartitionSnapshot;

    async fn send(
        &self,
        peer: &Peer,
        vote: VoteOf<C>,
        snapshot: Snapshot,
        option: RPCOption,
    ) -> Result<SnapshotResponse<C>, StreamingError<C>> {
        let PartitionSnapshot::Local { state, files } = snapshot.snapshot else {
            return Err(StreamingError::Network(NetworkError::from_string("only a local snapshot can be sent")));
        };
        let header: Header = (vote, snapshot.meta, state);
        let header = postcard::to_allocvec(&header).map_err(|e| NetworkError::new(&e))?;
        let (chunks, stream) = mpsc::channel(4);
        let first = SnapshotChunk { group: peer.group, cluster: peer.cluster(), header, ..Default::default() };
        // Reading files blocks; it runs beside the runtime and feeds the stream.
        tokio::task::spawn_blocking(move || stream_files(first, &files, &chunks));
        let mut client = peer.client::<C>().map_err(StreamingError::Unreachable)?;
        let call = client.install_snapshot_stream(ReceiverStream::new(stream));
        let reply = match tokio::time::timeout(option.hard_ttl(), call).await {
            Err(_) => {
                return Err(Unreachable::from_string(format!("snapshot to node {} timed out", peer.target)).into());
            }
            Ok(Err(status)) => {
                return Err(Unreachable::from_string(format!("snapshot to node {}: {status}", peer.target)).into());
            }
            Ok(Ok(reply)) => reply.into_inner(),
        };
        if reply.is_error {
            let msg = String::from_utf8_lossy(&reply.payload).into_owned();
            return Err(NetworkError::from_string(format!("node {} refused the snapshot: {msg}", peer.target)).into());
        }
        postcard::from_bytes(&reply.payload).map_err(|e| NetworkError::new(&e).into())
    }
}

fn stream_files(first: SnapshotChunk, files: &[FileSpan], chunks: &mpsc::Sender<SnapshotChunk>) {
    if chunks.blocking_send(first).is_err() {
        return;
    }
    for span in files {
        let mut offset = 0u64;
        loop {
            let len = (span.len - offset).min(CHUNK_BYTES as u64) as usize;
            let mut data = vec![0u8; len];
            if let Err(err) = span.file.read_exact_at(&mut data, offset) {
                tracing::warn!(file = %span.name, error = %err, "cannot read a snapshot file; the transfer stops");
                return;
            }
            let chunk = SnapshotChunk { file: span.name.clone(), offset, data, ..Default::default() };
            if chunks.blocking_send(chunk).is_err() {
                return;
            }
            offset += len as u64;
            if offset >= span.len {
                break;
            }
        }
    }
}

/// Writes a received snapshot into `staging` and installs it. The staging
/// directory is removed when anything fails.
pub async fn receive(
    raft: &PartitionRaft,
    staging: PathBuf,
    header: &[u8],
    rest: &mut tonic::Streaming<SnapshotChunk>,
) -> RaftReply {
    let result = receive_files(&staging, header, rest).await;
    let reply = match result {
        Ok((vote, meta)) => {
            let snapshot = Snapshot { meta, snapshot: PartitionSnapshot::Staged { dir: staging.clone() } };
            eddy_raft::receiver::reply(raft.install_full_snapshot(vote, snapshot).await)
        }
        Err(err) => eddy_raft::receiver::refused(err),
    };
    if staging.exists() {
        let _ = fs::remove_dir_all(&staging);
    }
    reply
}

async fn receive_files(
    staging: &Path,
    header: &[u8],
    rest: &mut tonic::Streaming<SnapshotChunk>,
) -> Result<(VoteOf<C>, SnapshotMetaOf<C>), String> {
    let (vote, meta, state): Header =
        postcard::from_bytes(header).map_err(|e| format!("undecodable snapshot header: {e}"))?;
    write_atomic(&state_path(staging), &state).map_err(|e| format!("writing the snapshot state: {e}"))?;
    let mut open: Option<(String, File, u64)> = None;
    let mut total = 0u64;
    while let Some(chunk) = rest.message().await.map_err(|e| format!("snapshot stream broke: {e}"))? {
        if eddy_storage::eventlog::parse_file_name(&chunk.file).is_none() {
            return Err(format!("refusing snapshot file name `{}`", chunk.file));
        }
        total += chunk.data.len() as u64;
        if total > MAX_SNAPSHOT_BYTES {
            return Err(format!("snapshot larger than {MAX_SNAPSHOT_BYTES} bytes"));
        }
        if open.as_ref().is_none_or(|(name, _, _)| *name != chunk.file) {
            if let Some((_, file, _)) = open.take() {
                file.sync_data().map_err(|e| e.to_string())?;
            }
            let file = File::create_new(staging.join(&chunk.file)).map_err(|e| format!("{}: {e}", chunk.file))?;
            open = Some((chunk.file.clone(), file, 0));
        }
        let Some((name, file, written)) = open.as_mut() else { continue };
        if chunk.offset != *written {
            return Err(format!("snapshot file {name}: chunk at {} but {written} bytes written", chunk.offset));
        }
        file.write_all(&chunk.data).map_err(|e| format!("{name}: {e}"))?;
        *written += chunk.data.len() as u64;
    }
    if let Some((_, file, _)) = open.take() {
        file.sync_data().map_err(|e| e.to_string())?;
    }
    File::open(staging).and_then(|dir| dir.sync_all()).map_err(|e: io::Error| e.to_string())?;
    Ok((vote, meta))
}
