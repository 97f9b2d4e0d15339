//! The node's database: keyspaces, key layout and durable writes.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use fjall::{Database, Keyspace, KeyspaceCreateOptions};

use crate::StorageError;
use crate::flusher::{FlushCallback, Flusher};

/// Raft metadata records, one of each per group.
#[derive(Debug, Clone, Copy)]
pub(crate) enum MetaKey {
    Vote = 1,
    Committed = 2,
    LastPurged = 3,
    Snapshot = 16,
}

#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub cache_bytes: u64,
    /// Background threads for flushing and compaction.
    pub worker_threads: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        // Modest: a node shares its cores with Raft, gRPC and processors.
        StoreOptions { cache_bytes: 16 * 1024 * 1024, worker_threads: 1 }
    }
}

/// One database per node, shared by every Raft group on it. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    db: Database,
    logs: Keyspace,
    raft_meta: Keyspace,
    node: Keyspace,
    flusher: Flusher,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.inner.path).finish()
    }
}

impl Store {
    /// Opens (or creates) the database under `dir`, recovering after a crash.
    pub fn open(dir: &Path, options: &StoreOptions) -> Result<Self, StorageError> {
        let path = dir.join("db");
        let shown = path.display().to_string();
        let db = Database::builder(&path)
            .cache_size(options.cache_bytes)
            .worker_threads(options.worker_threads.max(1))
            .max_journaling_size(64 * 1024 * 1024)
            .open()
            .map_err(|source| match source {
                fjall::Error::Locked => StorageError::Locked { path: shown.clone() },
                source => StorageError::Open { path: shown.clone(), source },
            })?;
        let small = || KeyspaceCreateOptions::default().max_memtable_size(8 * 1024 * 1024);
        let logs = db.keyspace("raft_log", small)?;
        let raft_meta = db.keyspace("raft_meta", small)?;
        let node = db.keyspace("node", small)?;
        let flusher = Flusher::start(db.clone(), path.clone())
            .map_err(|e| StorageError::Open { path: shown.clone(), source: fjall::Error::Io(e) })?;
        Ok(Store { inner: Arc::new(Inner { path, db, logs, raft_meta, node, flusher }) })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    pub(crate) fn db(&self) -> &Database {
        &self.inner.db
    }

    pub(crate) fn logs(&self) -> &Keyspace {
        &self.inner.logs
    }

    pub(crate) fn raft_meta(&self) -> &Keyspace {
        &self.inner.raft_meta
    }

    /// Commits `batch` to fjall's journal (not yet durable). The flusher
    /// never holds the journal lock across an fsync, so this is a short
    /// buffered write and runs in place: handing it to another thread cost
    /// more in wake-ups than the write itself.
    pub(crate) async fn commit(&self, batch: fjall::OwnedWriteBatch) -> Result<(), StorageError> {
        batch.commit()?;
        Ok(())
    }

    /// Runs `callback` once every write issued so far is durable.
    pub(crate) async fn after_durable(&self, callback: FlushCallback) -> std::io::Result<()> {
        self.inner.flusher.after_durable(callback).await
    }

    /// fsyncs and the writes they made durable, since the node started.
    pub fn sync_stats(&self) -> &crate::flusher::SyncStats {
        self.inner.flusher.stats()
    }

    /// Waits until every write issued so far is durable.
    pub async fn sync(&self) -> std::io::Result<()> {
        self.inner.flusher.sync().await
    }

    /// A node-level value (not tied to a Raft group), such as the id of the
    /// cluster the node belongs to.
    pub fn node_value(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.inner.node.get(key.as_bytes())?.map(|v| v.to_vec()))
    }

    /// Writes a node-level value and waits until it is durable.
    pub async fn put_node_value(&self, key: &str, value: &[u8]) -> Result<(), StorageError> {
        let mut batch = self.inner.db.batch();
        batch.insert(&self.inner.node, key.as_bytes(), value);
        self.commit(batch).await?;
        self.sync().await.map_err(|e| StorageError::Engine(fjall::Error::Io(e)))
    }

    /// A group's snapshot blob, as last written by [`Store::put_snapshot`].
    pub fn snapshot(&self, group: u64) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.inner.raft_meta.get(meta_key(group, MetaKey::Snapshot))?.map(|v| v.to_vec()))
    }

    /// Replaces a group's snapshot blob and waits until it is durable.
    pub async fn put_snapshot(&self, group: u64, bytes: &[u8]) -> Result<(), StorageError> {
        let mut batch = self.inner.db.batch();
        batch.insert(&self.inner.raft_meta, meta_key(group, MetaKey::Snapshot), bytes);
        self.commit(batch).await?;
        self.sync().await.map_err(|e| StorageError::Engine(fjall::Error::Io(e)))
    }
}

pub(crate) fn meta_key(group: u64, key: MetaKey) -> [u8; 9] {
    let mut out = [0u8; 9];
    out[..8].copy_from_slice(&group.to_be_bytes());
    out[8] = key as u8;
    out
}

pub(crate) fn log_key(group: u64, index: u64) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&group.to_be_bytes());
    out[8..].copy_from_slice(&index.to_be_bytes());
    out
}

pub(crate) fn index_of(key: &[u8]) -> Option<u64> {
    let bytes: [u8; 8] = key.get(8..16)?.try_into().ok()?;
    Some(u64::from_be_bytes(bytes))
}

impl Store {
    /// Deletes everything of a Raft group: its log, vote, committed and
    /// purged ids and snapshot. For a replica that left its group.
    pub async fn drop_group(&self, group: u64) -> Result<(), StorageError> {
        let logs: Vec<fjall::UserKey> = self
            .inner
            .logs
            .range(log_key(group, 0).as_slice()..=log_key(group, u64::MAX).as_slice())
            .map(|g| g.key())
            .collect::<Result<_, _>>()?;
        let mut batch = self.inner.db.batch();
        for key in logs {
            batch.remove(&self.inner.logs, key);
        }
        for key in [MetaKey::Vote, MetaKey::Committed, MetaKey::LastPurged, MetaKey::Snapshot] {
            batch.remove(&self.inner.raft_meta, meta_key(group, key));
        }
        self.commit(batch).await?;
        self.sync().await.map_err(|e| StorageError::Engine(fjall::Error::Io(e)))
    }
}
