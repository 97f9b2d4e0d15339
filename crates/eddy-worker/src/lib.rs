//! Eddy's workers: each partition is a Raft group whose state machine is a
//! durable event log. A worker opens the replicas the controller's table
//! places on it, creates new groups, and serves submits and reads on the
//! partitions it leads.

pub mod api;
pub mod checkpoint;
pub mod config;
pub mod cpu;
pub mod dir;
mod error;
pub mod membership;
pub mod metrics;
pub mod panics;
pub mod processors;
pub mod producers;
pub mod proposer;
pub mod replica;
pub mod sm;
pub mod snapshot;
pub mod state;
pub mod telemetry;
pub mod types;
pub mod worker;

pub use error::WorkerError;
pub use worker::Worker;
