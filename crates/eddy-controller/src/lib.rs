//! Eddy's controller: one Raft group over the controller voters replicating
//! the cluster map (node registry, partition table, settings), and the
//! leader-only control loop that watches liveness and places partitions.

pub mod broken;
pub mod control;
mod controller;
mod error;
pub mod executor;
pub mod liveness;
pub mod models;
mod operator;
pub mod panics;
pub mod planning;
pub mod sm;
pub mod state;
#[cfg(test)]
mod test_maps;
pub mod types;

pub use controller::{Controller, ControllerConfig, ControllerRaft, ControllerStatus, HeartbeatAnswer, LogPositions};
pub use error::ControllerError;
