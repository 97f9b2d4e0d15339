//! An Eddy node (`eddyd`): reads its manifest, opens its storage, runs the
//! roles it has (controller, worker) and serves the gRPC APIs.

mod agent;
pub mod config;
mod meta;
pub mod metrics;
mod node;
mod services;
mod status;
mod telemetry;

pub use node::{NodeError, RunningNode};
