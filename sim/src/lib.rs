//! Eddy's simulator: runs the real placement planner and models
//! (`eddy-placement`, `eddy-model`) against simulated nodes, workloads,
//! failures and prices, for load tests and capacity planning. Pure crates
//! only: no network, no storage, no async runtime.

mod cluster;
pub mod compare;
mod curves;
pub mod exact;
pub mod fast;
mod histogram;
pub mod html;
pub mod plan;
pub mod replay;
pub mod report;
pub mod scenario;
mod spread;
mod telemetry;
mod validate;
pub mod workload;

pub use scenario::{Scenario, ScenarioError};

#[cfg(test)]
mod exact_tests;
#[cfg(test)]
mod fast_tests;
#[cfg(test)]
mod scenario_tests;
#[cfg(test)]
mod test_scenarios;
