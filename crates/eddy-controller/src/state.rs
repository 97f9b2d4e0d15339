//! How a committed command changes the cluster map. Pure and deterministic:
//! every replica applies the same commands to the same map with the same
//! result.

use eddy_core::{ClusterMap, NodeRecord, NodeSpec, NodeState, PartitionTable};

use crate::types::{Command, CommandResponse, Outcome};

/// Applies `command` to `map` and says what it did.
pub fn apply(map: &mut ClusterMap, command: &Command) -> CommandResponse {
    let outcome = match command {
        Command::InitCluster { cluster_id, settings } => init(map, cluster_id, *settings),
        Command::RegisterNode { spec, at_ms } => register(map, spec, *at_ms),
        Command::SetNodeState { node, from, to, at_ms } => set_state(map, *node, *from, *to, *at_ms),
        Command::ApplyOperations { expected_epoch, operations } => {
            if map.settings.is_none() {
                Outcome::Refused("the cluster is not initialized".into())
            } else if *expected_epoch != map.table.epoch {
                Outcome::Refused(format!(
                    "plan made at epoch {expected_epoch} but the table is at epoch {}",
                    map.table.epoch
                ))
            } else if operations.is_empty() {
                Outcome::Unchanged
            } else {
                match map.apply_operations(operations) {
                    Ok(_) => Outcome::Applied,
                    Err(err) => Outcome::Refused(err.to_string()),
                }
            }
        }
        Command::SetPlacement { placement } => match placement.policy.validate() {
            Err(err) => Outcome::Refused(format!("bad policy: {err}")),
            Ok(()) if map.placement == *placement => Outcome::Unchanged,
            Ok(()) => {
                map.placement = placement.clone();
                Outcome::Applied
            }
        },
        Command::ObserveLeaders { reports } => {
            if map.observe_leaders(reports) {
                Outcome::Applied
            } else {
                Outcome::Unchanged
            }
        }
    };
    CommandResponse { outcome, epoch: map.table.epoch, nodes_version: map.nodes_version }
}

fn init(map: &mut ClusterMap, cluster_id: &str, settings: eddy_core::ClusterSettings) -> Outcome {
    if let Some(existing) = &map.cluster_id {
        return Outcome::Refused(format!("the cluster is already initialized as {existing}"));
    }
    if let Err(err) = settings.validate() {
        return Outcome::Refused(err.to_string());
    }
    map.cluster_id = Some(cluster_id.to_owned());
    map.settings = Some(settings);
    map.table = PartitionTable::unassigned(settings.partition_count);
    map.table.epoch = 1;
    Outcome::Applied
}

fn register(map: &mut ClusterMap, spec: &NodeSpec, at_ms: u64) -> Outcome {
    if map.settings.is_none() {
        return Outcome::Refused("the cluster is not initialized".into());
    }
    let record = match map.nodes.get(&spec.id) {
        Some(existing) if existing.state == NodeState::Removed => {
            return Outcome::Refused(format!("node id {} was removed; start the node with a new id", spec.id));
        }
        Some(existing) if existing.spec == *spec && existing.state == NodeState::Up => {
            return Outcome::Unchanged;
        }
        Some(existing) => {
            // A draining node stays draining: only the operator ends a drain.
            let returning = existing.state != NodeState::Up && existing.state != NodeState::Draining;
            let (state, since) =
                if returning { (NodeState::Up, at_ms) } else { (existing.state, existing.state_since_ms) };
            NodeRecord { spec: spec.clone(), state, state_since_ms: since }
        }
        None => NodeRecord { spec: spec.clone(), state: NodeState::Up, state_since_ms: at_ms },
    };
    map.nodes.insert(spec.id, record);
    map.nodes_version += 1;
    Outcome::Applied
}

fn set_state(map: &mut ClusterMap, node: u64, from: NodeState, to: NodeState, at_ms: u64) -> Outcome {
    let Some(record) = map.nodes.get_mut(&node) else {
        return Outcome::Refused(format!("node {node} is not registered"));
    };
    if record.state == to {
        return Outcome::Unchanged;
    }
    if record.state != from {
        return Outcome::Refused(format!("node {node} is {} now, not {from}", record.state));
    }
    if !from.can_become(to) {
        return Outcome::Refused(format!("node {node} cannot go from {from} to {to}"));
    }
    record.state = to;
    record.state_since_ms = at_ms;
    map.nodes_version += 1;
    Outcome::Applied
}

#[cfg(test)]
mod tests {
    use eddy_core::{ClusterSettings, Operation, Role};

    use super::*;

    fn spec(id: u64) -> NodeSpec {
        NodeSpec {
            id,
            addr: format!("127.0.0.1:{}", 7100 + id),
            zone: format!("zone-{id}"),
            capacity_cores: 2.0,
            price_per_hour: 0.1,
            roles: vec![Role::Controller, Role::Worker],
        }
    }

    fn initialized() -> ClusterMap {
        let mut map = ClusterMap::default();
        let settings = ClusterSettings { partition_count: 4, replication_factor: 1 };
        let init = Command::InitCluster { cluster_id: "c1".into(), settings };
        assert_eq!(apply(&mut map, &init).outcome, Outcome::Applied);
        map
    }

    #[test]
    fn init_happens_once() {
        let mut map = initialized();
        let before = map.clone();
        let again = Command::InitCluster {
            cluster_id: "c2".into(),
            settings: ClusterSettings { partition_count: 8, replication_factor: 1 },
        };
        assert!(matches!(apply(&mut map, &again).outcome, Outcome::Refused(_)));
        assert_eq!(map, before);
        assert_eq!(map.table.partitions.len(), 4);
    }

    #[test]
    fn nothing_registers_before_init() {
        let mut map = ClusterMap::default();
        let out = apply(&mut map, &Command::RegisterNode { spec: spec(1), at_ms: 5 });
        assert!(matches!(out.outcome, Outcome::Refused(_)));
        assert!(map.nodes.is_empty());
    }

    #[test]
    fn registration_is_idempotent_and_updates_labels() {
        let mut map = initialized();
        assert_eq!(apply(&mut map, &Command::RegisterNode { spec: spec(1), at_ms: 5 }).outcome, Outcome::Applied);
        let version = map.nodes_version;
        assert_eq!(apply(&mut map, &Command::RegisterNode { spec: spec(1), at_ms: 9 }).outcome, Outcome::Unchanged);
        assert_eq!(map.nodes_version, version);
        let mut moved = spec(1);
        moved.zone = "zone-9".into();
        assert_eq!(apply(&mut map, &Command::RegisterNode { spec: moved, at_ms: 9 }).outcome, Outcome::Applied);
        assert_eq!(map.nodes[&1].spec.zone, "zone-9");
        assert_eq!(map.nodes[&1].state_since_ms, 5, "an up node re-registering keeps its state time");
    }

    #[test]
    fn state_changes_are_compare_and_set() {
        let mut map = initialized();
        apply(&mut map, &Command::RegisterNode { spec: spec(1), at_ms: 1 });
        let suspect = Command::SetNodeState { node: 1, from: NodeState::Up, to: NodeState::Suspect, at_ms: 2 };
        assert_eq!(apply(&mut map, &suspect).outcome, Outcome::Applied);
        // A stale proposal made while the node was still up does not apply twice.
        let stale = Command::SetNodeState { node: 1, from: NodeState::Up, to: NodeState::Down, at_ms: 3 };
        assert!(matches!(apply(&mut map, &stale).outcome, Outcome::Refused(_)));
        let down = Command::SetNodeState { node: 1, from: NodeState::Suspect, to: NodeState::Down, at_ms: 3 };
        assert_eq!(apply(&mut map, &down).outcome, Outcome::Applied);
        assert_eq!(map.nodes[&1].state, NodeState::Down);
        assert_eq!(map.nodes[&1].state_since_ms, 3);
        // Registering again brings a down node back up.
        apply(&mut map, &Command::RegisterNode { spec: spec(1), at_ms: 4 });
        assert_eq!(map.nodes[&1].state, NodeState::Up);
    }

    #[test]
    fn removed_nodes_cannot_come_back() {
        let mut map = initialized();
        apply(&mut map, &Command::RegisterNode { spec: spec(1), at_ms: 1 });
        let remove = Command::SetNodeState { node: 1, from: NodeState::Up, to: NodeState::Removed, at_ms: 2 };
        assert_eq!(apply(&mut map, &remove).outcome, Outcome::Applied);
        let back = apply(&mut map, &Command::RegisterNode { spec: spec(1), at_ms: 3 });
        assert!(matches!(back.outcome, Outcome::Refused(_)));
        assert_eq!(map.nodes[&1].state, NodeState::Removed);
    }

    #[test]
    fn placement_settings_are_checked_and_replaced_whole() {
        let mut map = initialized();
        let policy = eddy_core::Policy { slo_p99_ms: 25.0, ..Default::default() };
        let placement = eddy_core::PlacementSettings { mode: eddy_core::PlacementMode::Auto, policy };
        let set = Command::SetPlacement { placement: placement.clone() };
        assert_eq!(apply(&mut map, &set).outcome, Outcome::Applied);
        assert_eq!(apply(&mut map, &set).outcome, Outcome::Unchanged);
        let mut bad = placement.clone();
        bad.policy.utilisation_ceiling = 0.0;
        let refused = apply(&mut map, &Command::SetPlacement { placement: bad }).outcome;
        assert!(matches!(refused, Outcome::Refused(ref why) if why.contains("utilisation_ceiling")), "{refused:?}");
        assert_eq!(map.placement, placement);
    }

    #[test]
    fn stale_plans_are_refused() {
        let mut map = initialized();
        apply(&mut map, &Command::RegisterNode { spec: spec(1), at_ms: 1 });
        let op = Operation::AddReplica { partition: 0, node: 1, reason: "t".into() };
        let stale = Command::ApplyOperations { expected_epoch: 0, operations: vec![op.clone()] };
        assert!(matches!(apply(&mut map, &stale).outcome, Outcome::Refused(_)));
        let fresh = Command::ApplyOperations { expected_epoch: map.table.epoch, operations: vec![op] };
        let out = apply(&mut map, &fresh);
        assert_eq!(out.outcome, Outcome::Applied);
        assert_eq!(out.epoch, 2);
        assert_eq!(map.table.partitions[0].replicas, vec![1]);
    }
}
