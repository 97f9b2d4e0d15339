//! Group commit: one thread makes every write issued so far durable with one
//! fsync and then completes all the callbacks that waited for it.

use std::io;
use std::thread;

use fjall::{Database, PersistMode};
use tokio::sync::mpsc;

/// Called once the writes issued before it was queued are durable (or failed).
pub type FlushCallback = Box<dyn FnOnce(io::Result<()>) + Send>;

/// How many callbacks may wait for the flusher before writers wait too.
const QUEUE_DEPTH: usize = 4096;

#[derive(Debug, Clone)]
pub struct Flusher {
    queue: mpsc::Sender<FlushCallback>,
}

impl Flusher {
    /// Starts the flusher thread; it ends when every `Flusher` is dropped.
    pub fn start(db: Database) -> io::Result<Self> {
        let (queue, pending) = mpsc::channel(QUEUE_DEPTH);
        thread::Builder::new().name("eddy-flusher".into()).spawn(move || run(&db, pending))?;
        Ok(Flusher { queue })
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

fn run(db: &Database, mut pending: mpsc::Receiver<FlushCallback>) {
    let mut batch = Vec::new();
    while let Some(first) = pending.blocking_recv() {
        batch.push(first);
        while let Ok(more) = pending.try_recv() {
            batch.push(more);
        }
        let result = db.persist(PersistMode::SyncData);
        if let Err(err) = &result {
            tracing::error!(error = %err, "fsync of the storage journal failed; the node must restart");
        }
        for callback in batch.drain(..) {
            callback(result.as_ref().map(|_| ()).map_err(|e| io::Error::other(e.to_string())));
        }
    }
}
