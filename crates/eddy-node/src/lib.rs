//! An Eddy node (`eddyd`): reads its manifest, opens its storage, runs the
//! roles it has (controller, worker) and serves the gRPC APIs.

mod agent;
pub mod config;
mod meta;
mod node;
mod services;
mod status;

pub use node::{NodeError, RunningNode};
