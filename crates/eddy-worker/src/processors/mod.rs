//! Processors: state folded from a partition's events, on the partition's
//! leader only, so the CPU cost of a partition follows its leader.
//!
//! A processor must be deterministic: its state may depend only on the
//! events it was given, in order (use event hlcs, never the clock). That is
//! what lets a new leader restore the latest checkpoint, replay the events
//! after it, and reach exactly the state a replay from offset 0 gives.
//! Checkpoints travel through the partition's Raft log, so every replica
//! holds the latest one and any of them can take over.

mod latest;
mod restore;
pub mod runner;
mod stats;
mod synthetic;

use std::collections::BTreeMap;
use std::sync::Arc;

pub use crate::checkpoint::Checkpoint;
use eddy_core::{PartitionId, StoredEvent};
pub use latest::Latest;
pub use runner::{ProcessorRunner, ProcessorStatus};
use serde::{Deserialize, Serialize};
pub use stats::Stats;
pub use synthetic::Synthetic;

/// State folded from a partition's events.
pub trait Processor: Send + 'static {
    /// Stable name: checkpoints and queries find the processor by it.
    fn name(&self) -> &str;
    /// Folds one committed event in. Deterministic: no clock, no randomness.
    fn apply(&mut self, event: &StoredEvent);
    /// The state, encoded, for a checkpoint. Equal states encode equally.
    fn checkpoint(&self) -> Vec<u8>;
    /// Replaces the state with a checkpoint's.
    fn restore(&mut self, checkpoint: &[u8]) -> Result<(), String>;
    /// Answers a query: JSON in, JSON out.
    fn query(&self, request: &serde_json::Value) -> Result<serde_json::Value, String>;
}

/// Makes a partition's processors; the worker calls it when it starts
/// leading a partition.
pub trait ProcessorFactory: Send + Sync + 'static {
    fn create(&self, partition: PartitionId) -> Box<dyn Processor>;
}

impl<F> ProcessorFactory for F
where
    F: Fn(PartitionId) -> Box<dyn Processor> + Send + Sync + 'static,
{
    fn create(&self, partition: PartitionId) -> Box<dyn Processor> {
        self(partition)
    }
}

/// Settings of the built-in processors.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessorsConfig {
    /// The JSON field of a payload that `stats` aggregates.
    pub stats_field: String,
    pub stats_window_ms: u64,
    /// Windows `stats` keeps per key and type.
    pub stats_windows_kept: usize,
    /// Events `latest` keeps per key.
    pub latest_per_key: usize,
    /// CPU time `synthetic` spends per event, by type; `default` for the rest.
    pub synthetic_cost_us: BTreeMap<String, u64>,
    /// A checkpoint is proposed after this many events...
    pub checkpoint_every_events: u64,
    /// ...or this long, whichever comes first.
    pub checkpoint_every_ms: u64,
    /// A checkpoint larger than this is not taken (a new leader replays
    /// the log instead): it bounds the memory a checkpoint takes to build
    /// and to restore.
    pub max_checkpoint_bytes: u64,
}

impl Default for ProcessorsConfig {
    fn default() -> Self {
        ProcessorsConfig {
            stats_field: "value".into(),
            stats_window_ms: 60_000,
            stats_windows_kept: 60,
            latest_per_key: 10,
            synthetic_cost_us: BTreeMap::new(),
            checkpoint_every_events: 10_000,
            checkpoint_every_ms: 30_000,
            max_checkpoint_bytes: 1 << 30,
        }
    }
}

/// The built-in processors with `config`, then `extra` ones.
pub fn processors(
    partition: PartitionId,
    config: &ProcessorsConfig,
    extra: &[Arc<dyn ProcessorFactory>],
) -> Vec<Box<dyn Processor>> {
    let mut all: Vec<Box<dyn Processor>> = vec![
        Box::new(Stats::new(&config.stats_field, config.stats_window_ms, config.stats_windows_kept)),
        Box::new(Latest::new(config.latest_per_key)),
        Box::new(Synthetic::new(config.synthetic_cost_us.clone())),
    ];
    all.extend(extra.iter().map(|f| f.create(partition)));
    all
}

/// Encodes a processor state; the encoding of equal values is equal.
pub fn encode_state<T: Serialize>(state: &T) -> Vec<u8> {
    postcard::to_allocvec(state).unwrap_or_default()
}

/// Decodes a processor state.
pub fn decode_state<T: for<'a> Deserialize<'a>>(bytes: &[u8]) -> Result<T, String> {
    postcard::from_bytes(bytes).map_err(|e| e.to_string())
}

/// A digest of processor states: equal states, equal digests.
pub fn digest(processors: &[Box<dyn Processor>]) -> u64 {
    let mut bytes = Vec::new();
    for p in processors {
        bytes.extend_from_slice(p.name().as_bytes());
        bytes.extend_from_slice(&p.checkpoint());
    }
    xxhash_rust::xxh3::xxh3_64(&bytes)
}
