//! Placement of partition replicas on nodes.
//!
//! Everything here is a pure function of a [`Snapshot`]: no I/O, no clock, no
//! randomness, so the live controller and the simulator get the same plan for
//! the same input. Placers share one interface, [`Placer`]; the initial placer
//! fills empty or under-replicated partitions, and the adaptive planner will
//! sit behind the same trait.

mod initial;

pub use initial::InitialPlacer;

use eddy_core::{ClusterMap, Plan};

/// What a placer sees of the cluster.
#[derive(Debug, Clone, Copy)]
pub struct Snapshot<'a> {
    pub map: &'a ClusterMap,
}

/// A placement policy: maps a snapshot to a plan.
///
/// Implementations must be deterministic, and planning again on a map to
/// which their own plan was applied must propose nothing.
pub trait Placer {
    fn name(&self) -> &'static str;
    fn plan(&self, snapshot: &Snapshot<'_>) -> Plan;
}
