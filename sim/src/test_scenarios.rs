//! Scenarios for the engines' unit tests.

use crate::scenario::Scenario;

/// One node of `cores` cores, one partition without replicas, Poisson
/// arrivals of exponential 1 ms events at `events_per_s`, no planner: the
/// M/M/c reference case.
pub fn one_node(cores: u32, events_per_s: f64, duration_s: u32, seed: u64) -> Scenario {
    let text = format!(
        r#"
name = "one-node"
seed = {seed}
duration_s = {duration_s}
partitions = 1
replication_factor = 1
[[node_types]]
name = "n"
cores = {cores}
price_per_hour = 1.0
zones = ["a"]
count = 1
[workload]
rate = {{ shape = "constant", events_per_s = {events_per_s} }}
[[workload.costs]]
event_type = "default"
share = 1
cpu_ms = 1
[placement]
mode = "off"
"#
    );
    Scenario::parse(&text, "one-node.toml").unwrap_or_else(|e| panic!("{e}"))
}
