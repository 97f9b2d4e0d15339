//! Durable storage of an Eddy node.
//!
//! One fjall database per node holds the Raft logs, votes and snapshots of
//! every Raft group on the node (the controller group now, partition groups
//! later), keyed by group id. Writes go to fjall's journal unsynced; one
//! flusher thread makes them durable with a single fsync for everything
//! pending, and only then tells Raft that its entries are on disk (group
//! commit).

pub mod eventlog;
pub mod flusher;
mod log_cache;
mod log_store;
pub mod metrics;
mod store;

pub use log_store::RaftLogStore;
pub use store::{Store, StoreOptions};

/// Storage failures. A failed fsync leaves the database refusing writes: the
/// node must restart.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("cannot open the data directory {path}: {source}")]
    Open { path: String, source: fjall::Error },
    #[error("the data directory {path} is in use by another eddyd process; stop it or pick another --data-dir")]
    Locked { path: String },
    #[error("storage engine: {0}")]
    Engine(#[from] fjall::Error),
    #[error("corrupt record under {key}: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("the storage flusher has stopped")]
    FlusherStopped,
}

impl From<StorageError> for std::io::Error {
    fn from(err: StorageError) -> Self {
        std::io::Error::other(err)
    }
}
