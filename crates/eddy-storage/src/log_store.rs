//! The Raft log of one group, in the node's shared database.
//!
//! Entries are postcard-encoded under `group ++ index` (both big-endian, so
//! keys sort by index). Vote, committed id and last purged id sit in the
//! metadata keyspace. Appends are acknowledged to Raft only after the
//! flusher's fsync: an acknowledged entry is on disk. The newest entries
//! are also kept decoded in memory (see [`crate::log_cache`]).

use std::fmt::Debug;
use std::io;
use std::marker::PhantomData;
use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::type_config::alias::{LogIdOf, VoteOf};
use openraft::{OptionalSend, RaftTypeConfig};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::StorageError;
use crate::log_cache::LogCache;
use crate::store::{MetaKey, Store, index_of, log_key, meta_key};

/// Bytes of encoded entries a group keeps decoded in memory.
const CACHE_BYTES: usize = 1 << 20;

/// Log storage of group `group`. Clones share the same database and cache,
/// so a reader sees every append as soon as `append` returns.
pub struct RaftLogStore<C: RaftTypeConfig> {
    store: Store,
    group: u64,
    cache: Arc<Mutex<LogCache<C::Entry>>>,
    /// The latest committed id (encoded), until a write of the log carries it.
    committed: Arc<Mutex<Option<Vec<u8>>>>,
    _config: PhantomData<fn() -> C>,
}

impl<C: RaftTypeConfig> Clone for RaftLogStore<C> {
    fn clone(&self) -> Self {
        RaftLogStore {
            store: self.store.clone(),
            group: self.group,
            cache: self.cache.clone(),
            committed: self.committed.clone(),
            _config: PhantomData,
        }
    }
}

impl<C: RaftTypeConfig> Debug for RaftLogStore<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftLogStore").field("group", &self.group).finish()
    }
}

impl<C: RaftTypeConfig> RaftLogStore<C> {
    pub fn new(store: Store, group: u64) -> Self {
        let cache = Arc::new(Mutex::new(LogCache::new(CACHE_BYTES)));
        RaftLogStore { store, group, cache, committed: Arc::default(), _config: PhantomData }
    }

    /// Adds the committed id waiting to be written, if any, to `batch`.
    fn carry_committed(&self, batch: &mut fjall::OwnedWriteBatch) {
        let pending = self.committed.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(committed) = pending {
            batch.insert(self.store.raft_meta(), meta_key(self.group, MetaKey::Committed), committed);
        }
    }

    fn cache(&self) -> MutexGuard<'_, LogCache<C::Entry>> {
        // The cache holds no invariant a panicking holder could break
        // half-way that a read would trust: a poisoned one is emptied.
        self.cache.lock().unwrap_or_else(|poisoned| {
            let mut cache = poisoned.into_inner();
            cache.clear();
            cache
        })
    }

    fn bounds(&self, range: &impl RangeBounds<u64>) -> (Bound<[u8; 16]>, Bound<[u8; 16]>) {
        let start = match range.start_bound() {
            Bound::Included(i) => Bound::Included(log_key(self.group, *i)),
            Bound::Excluded(i) => Bound::Excluded(log_key(self.group, *i)),
            Bound::Unbounded => Bound::Included(log_key(self.group, 0)),
        };
        let end = match range.end_bound() {
            Bound::Included(i) => Bound::Included(log_key(self.group, *i)),
            Bound::Excluded(i) => Bound::Excluded(log_key(self.group, *i)),
            Bound::Unbounded => Bound::Included(log_key(self.group, u64::MAX)),
        };
        (start, end)
    }

    fn keys_in(&self, range: impl RangeBounds<u64>) -> Result<Vec<fjall::UserKey>, StorageError> {
        let (start, end) = self.bounds(&range);
        let keys = self.store.logs().range::<&[u8], _>((as_slice(&start), as_slice(&end)));
        Ok(keys.map(|g| g.key()).collect::<Result<Vec<_>, _>>()?)
    }

    async fn remove_keys(&self, keys: Vec<fjall::UserKey>, purged: Option<Vec<u8>>) -> Result<(), StorageError> {
        let mut batch = self.store.db().batch();
        self.carry_committed(&mut batch);
        if let Some(purged) = purged {
            batch.insert(self.store.raft_meta(), meta_key(self.group, MetaKey::LastPurged), purged);
        }
        for key in keys {
            batch.remove(self.store.logs(), key);
        }
        self.store.commit(batch).await
    }

    fn get_meta<T: DeserializeOwned>(&self, key: MetaKey) -> Result<Option<T>, StorageError> {
        let raw = self.store.raft_meta().get(meta_key(self.group, key))?;
        raw.map(|bytes| decode(&bytes, &format!("group {} {key:?}", self.group))).transpose()
    }

    async fn put_meta<T: Serialize>(&self, key: MetaKey, value: &T) -> Result<(), StorageError> {
        let mut batch = self.store.db().batch();
        batch.insert(self.store.raft_meta(), meta_key(self.group, key), encode(value)?);
        self.store.commit(batch).await
    }
}

fn as_slice(bound: &Bound<[u8; 16]>) -> Bound<&[u8]> {
    match bound {
        Bound::Included(k) => Bound::Included(k.as_slice()),
        Bound::Excluded(k) => Bound::Excluded(k.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StorageError> {
    postcard::to_allocvec(value).map_err(|e| StorageError::Corrupt { key: "(encode)".into(), reason: e.to_string() })
}

fn decode<T: DeserializeOwned>(bytes: &[u8], key: &str) -> Result<T, StorageError> {
    postcard::from_bytes(bytes).map_err(|e| StorageError::Corrupt { key: key.to_owned(), reason: e.to_string() })
}

impl<C: RaftTypeConfig> RaftLogReader<C> for RaftLogStore<C>
where
    C::Entry: Clone,
{
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<C::Entry>, io::Error> {
        if let Some(entries) = self.cache().get(&range) {
            return Ok(entries);
        }
        let (start, end) = self.bounds(&range);
        let mut entries = Vec::new();
        for guard in self.store.logs().range::<&[u8], _>((as_slice(&start), as_slice(&end))) {
            let (key, value) = guard.into_inner().map_err(StorageError::from)?;
            let index = index_of(&key).unwrap_or_default();
            entries.push(decode::<C::Entry>(&value, &format!("group {} log {index}", self.group))?);
        }
        Ok(entries)
    }

    async fn read_vote(&mut self) -> Result<Option<VoteOf<C>>, io::Error> {
        Ok(self.get_meta(MetaKey::Vote)?)
    }
}

impl<C: RaftTypeConfig> RaftLogStorage<C> for RaftLogStore<C>
where
    C::Entry: Clone,
{
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<C>, io::Error> {
        let last_purged_log_id: Option<LogIdOf<C>> = self.get_meta(MetaKey::LastPurged)?;
        let (start, end) = self.bounds(&(..));
        let last = self.store.logs().range::<&[u8], _>((as_slice(&start), as_slice(&end))).next_back();
        let last_log_id = match last {
            Some(guard) => {
                let value = guard.value().map_err(StorageError::from)?;
                let entry: C::Entry = decode(&value, &format!("group {} last log", self.group))?;
                Some(entry.log_id())
            }
            None => last_purged_log_id.clone(),
        };
        Ok(LogState { last_purged_log_id, last_log_id })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &VoteOf<C>) -> Result<(), io::Error> {
        self.put_meta(MetaKey::Vote, vote).await?;
        self.store.sync().await
    }

    async fn save_committed(&mut self, committed: Option<LogIdOf<C>>) -> Result<(), io::Error> {
        // Written with the group's next log write rather than on its own: a
        // write per commit cost a journal write per entry. Neither is synced
        // for it; a committed id that lags after a crash or a stop only
        // means applying a little more once a leader confirms it.
        let encoded = encode(&committed)?;
        *self.committed.lock().unwrap_or_else(|p| p.into_inner()) = Some(encoded);
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogIdOf<C>>, io::Error> {
        let pending = self.committed.lock().unwrap_or_else(|p| p.into_inner()).clone();
        match pending {
            Some(bytes) => Ok(decode::<Option<LogIdOf<C>>>(&bytes, &format!("group {} committed", self.group))?),
            None => Ok(self.get_meta::<Option<LogIdOf<C>>>(MetaKey::Committed)?.flatten()),
        }
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<C>) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = C::Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = self.store.db().batch();
        self.carry_committed(&mut batch);
        let mut appended = Vec::new();
        let mut appended_entries = Vec::new();
        for entry in entries {
            let bytes = encode(&entry)?;
            appended.push((entry.index(), bytes.len()));
            batch.insert(self.store.logs(), log_key(self.group, entry.index()), bytes);
            appended_entries.push(entry);
        }
        self.store.commit(batch).await?;
        self.cache().appended(appended_entries.into_iter().zip(appended).map(|(e, (i, n))| (i, e, n)));
        self.store.after_durable(Box::new(move |result| callback.io_completed(result))).await
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogIdOf<C>>) -> Result<(), io::Error> {
        let keys = match &last_log_id {
            Some(id) => self.keys_in((Bound::Excluded(id.index), Bound::Unbounded))?,
            None => self.keys_in(..)?,
        };
        self.cache().truncated_after(last_log_id.as_ref().map(|id| id.index));
        self.remove_keys(keys, None).await?;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogIdOf<C>) -> Result<(), io::Error> {
        // Start after the last purge: the keys before it are deleted, and
        // scanning their tombstones (until compaction drops them) made
        // every purge slower than the last.
        let purged: Option<LogIdOf<C>> = self.get_meta(MetaKey::LastPurged)?;
        let from = purged.map_or(0, |id| id.index.saturating_add(1));
        let keys = self.keys_in(from..=log_id.index)?;
        // The purged id and the deletions land in one atomic batch, so no
        // restart sees a hole without knowing it was purged.
        self.cache().purged(log_id.index);
        self.remove_keys(keys, Some(encode(&log_id)?)).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use openraft::entry::RaftEntry;
    use openraft::impls::leader_id_adv::LeaderId;
    use openraft::storage::{IOFlushed, RaftLogStorage};
    use openraft::{LogId, RaftTypeConfig};

    use super::RaftLogStore;
    use crate::{Store, StoreOptions};

    openraft::declare_raft_types!(Types);

    fn log_id(index: u64) -> LogId<LeaderId<u64, u64>> {
        LogId::new(LeaderId { term: 1, node_id: 1 }, index)
    }

    #[tokio::test]
    async fn a_committed_id_rides_with_the_next_append_and_survives_reopening() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let store = Store::open(dir.path(), &StoreOptions::default())?;
        let mut log = RaftLogStore::<Types>::new(store.clone(), 3);
        log.append([<Types as RaftTypeConfig>::Entry::new_blank(log_id(1))], IOFlushed::noop()).await?;
        log.save_committed(Some(log_id(1))).await?;
        assert_eq!(log.read_committed().await?, Some(log_id(1)), "a saved id is read back at once");
        log.append([<Types as RaftTypeConfig>::Entry::new_blank(log_id(2))], IOFlushed::noop()).await?;
        store.sync().await?;
        drop((log, store));

        let store = Store::open(dir.path(), &StoreOptions::default())?;
        let mut reopened = RaftLogStore::<Types>::new(store, 3);
        assert_eq!(reopened.read_committed().await?, Some(log_id(1)));
        Ok(())
    }
}
