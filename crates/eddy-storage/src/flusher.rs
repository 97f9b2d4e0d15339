//! Group commit: one thread makes every write issued so far durable with one
//! fsync and then completes all the callbacks that waited for it.
//!
//! fjall's own `persist(SyncData)` holds its journal lock for the whole
//! fsync, so every write waits for the fsync in progress and writes never
//! pile up behind one fsync. Instead the flusher hands fjall's buffer to the
//! OS (a short step under the lock) and then fsyncs the active journal file
//! through its own descriptor, outside the lock, while writers go on. This
//! is as durable: fjall fsyncs a journal before it rotates to the next one,
//! so whatever was written before the flusher's step is either in the file
//! it syncs or already synced by the rotation.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::Instant;

use fjall::{Database, PersistMode};
use tokio::sync::mpsc;

/// Called once the writes issued before it was queued are durable (or failed).
pub type FlushCallback = Box<dyn FnOnce(io::Result<()>) + Send>;

/// How many callbacks may wait for the flusher before writers wait too.
const QUEUE_DEPTH: usize = 4096;

#[derive(Debug, Clone)]
pub struct Flusher {
    queue: mpsc::Sender<FlushCallback>,
    stats: Arc<SyncStats>,
}

/// What the flusher has done since the node started.
#[derive(Debug, Default)]
pub struct SyncStats {
    /// fsyncs of the journal.
    pub syncs: AtomicU64,
    /// Writes made durable by them (each write waits for one fsync).
    pub writes: AtomicU64,
    /// Time spent in fsync, microseconds.
    pub sync_micros: AtomicU64,
}

impl Flusher {
    /// Starts the flusher thread; it ends when every `Flusher` is dropped.
    pub fn start(db: Database, dir: PathBuf) -> io::Result<Self> {
        let (queue, pending) = mpsc::channel(QUEUE_DEPTH);
        let stats = Arc::new(SyncStats::default());
        let counting = stats.clone();
        thread::Builder::new().name("eddy-flusher".into()).spawn(move || run(&db, dir, pending, &counting))?;
        Ok(Flusher { queue, stats })
    }

    pub fn stats(&self) -> &SyncStats {
        &self.stats
    }

    /// Queues `callback` behind every write already issued.
    pub async fn after_durable(&self, callback: FlushCallback) -> io::Result<()> {
        self.queue.send(callback).await.map_err(|_| io::Error::other(crate::StorageError::FlusherStopped))
    }

    /// Waits until every write issued so far is durable.
    pub async fn sync(&self) -> io::Result<()> {
        let (done, wait) = tokio::sync::oneshot::channel();
        self.after_durable(Box::new(move |result| {
            let _ = done.send(result);
        }))
        .await?;
        wait.await.map_err(|_| io::Error::other(crate::StorageError::FlusherStopped))?
    }
}

/// The active journal file of a fjall database, followed across rotations.
struct ActiveJournal {
    dir: PathBuf,
    current: Option<(u64, File)>,
}

impl ActiveJournal {
    fn journal_id(path: &Path) -> Option<u64> {
        path.file_name()?.to_str()?.strip_suffix(".jnl")?.parse().ok()
    }

    /// Makes everything written to the active journal durable.
    fn sync(&mut self) -> io::Result<()> {
        let mut id = match &self.current {
            Some((id, _)) => *id,
            None => fs::read_dir(&self.dir)?
                .filter_map(|e| e.ok().and_then(|e| Self::journal_id(&e.path())))
                .max()
                .ok_or_else(|| io::Error::other("the storage has no journal file"))?,
        };
        // A newer journal means fjall rotated (after syncing the old one).
        while self.dir.join(format!("{}.jnl", id + 1)).exists() {
            id += 1;
        }
        if self.current.as_ref().is_none_or(|(current, _)| *current != id) {
            self.current = Some((id, File::open(self.dir.join(format!("{id}.jnl")))?));
        }
        match &self.current {
            Some((_, file)) => file.sync_data(),
            None => Ok(()),
        }
    }
}

/// Hands fjall's buffered journal bytes to the OS, then syncs the journal.
fn persist(db: &Database, journal: &mut ActiveJournal) -> io::Result<()> {
    db.persist(PersistMode::Buffer).map_err(io::Error::other)?;
    journal.sync()
}

fn run(db: &Database, dir: PathBuf, mut pending: mpsc::Receiver<FlushCallback>, stats: &SyncStats) {
    let mut journal = ActiveJournal { dir, current: None };
    let mut batch = Vec::new();
    while let Some(first) = pending.blocking_recv() {
        batch.push(first);
        while let Ok(more) = pending.try_recv() {
            batch.push(more);
        }
        let started = Instant::now();
        let result = persist(db, &mut journal);
        stats.syncs.fetch_add(1, Ordering::Relaxed);
        stats.writes.fetch_add(batch.len() as u64, Ordering::Relaxed);
        stats
            .sync_micros
            .fetch_add(u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
        crate::metrics::group_commit(batch.len(), started.elapsed(), result.is_err());
        if let Err(err) = &result {
            tracing::error!(error = %err, "fsync of the storage journal failed; the node must restart");
        }
        for callback in batch.drain(..) {
            callback(result.as_ref().map(|_| ()).map_err(|e| io::Error::other(e.to_string())));
        }
    }
}
