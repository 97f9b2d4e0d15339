//! Conversions between the wire messages and Eddy's core types, kept in one
//! place so that both ends of every call agree on them.

use eddy_core::{ClusterMap, ClusterSettings, NodeRecord, NodeSpec, NodeState, PartitionAssignment, Role};

use crate::v1;

pub fn node_state_to_wire(state: NodeState) -> v1::NodeState {
    match state {
        NodeState::Up => v1::NodeState::Up,
        NodeState::Suspect => v1::NodeState::Suspect,
        NodeState::Down => v1::NodeState::Down,
        NodeState::Draining => v1::NodeState::Draining,
        NodeState::Removed => v1::NodeState::Removed,
    }
}

/// `None` for `UNSPECIFIED` and for values this build does not know.
pub fn node_state_from_wire(value: i32) -> Option<NodeState> {
    match v1::NodeState::try_from(value).ok()? {
        v1::NodeState::Unspecified => None,
        v1::NodeState::Up => Some(NodeState::Up),
        v1::NodeState::Suspect => Some(NodeState::Suspect),
        v1::NodeState::Down => Some(NodeState::Down),
        v1::NodeState::Draining => Some(NodeState::Draining),
        v1::NodeState::Removed => Some(NodeState::Removed),
    }
}

pub fn spec_to_wire(spec: &NodeSpec) -> v1::NodeSpec {
    v1::NodeSpec {
        id: spec.id,
        addr: spec.addr.clone(),
        zone: spec.zone.clone(),
        capacity_cores: spec.capacity_cores,
        price_per_hour: spec.price_per_hour,
        roles: spec.roles.iter().map(|r| r.as_str().to_owned()).collect(),
    }
}

/// Fails with a description of the first field that does not parse.
pub fn spec_from_wire(spec: &v1::NodeSpec) -> Result<NodeSpec, String> {
    let roles = spec
        .roles
        .iter()
        .map(|r| r.parse::<Role>().map_err(|e| format!("roles: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(NodeSpec {
        id: spec.id,
        addr: spec.addr.clone(),
        zone: spec.zone.clone(),
        capacity_cores: spec.capacity_cores,
        price_per_hour: spec.price_per_hour,
        roles,
    })
}

pub fn node_to_wire(node: &NodeRecord) -> v1::Node {
    v1::Node {
        id: node.spec.id,
        addr: node.spec.addr.clone(),
        zone: node.spec.zone.clone(),
        capacity_cores: node.spec.capacity_cores,
        price_per_hour: node.spec.price_per_hour,
        state: node_state_to_wire(node.state) as i32,
        roles: node.spec.roles.iter().map(|r| r.as_str().to_owned()).collect(),
        state_since_ms: node.state_since_ms,
    }
}

pub fn partition_to_wire(p: &PartitionAssignment) -> v1::Partition {
    v1::Partition { id: p.id, replicas: p.replicas.clone(), leader: p.leader.unwrap_or(0), epoch: p.epoch }
}

pub fn settings_to_wire(s: &ClusterSettings) -> v1::ClusterSettings {
    v1::ClusterSettings { partition_count: s.partition_count, replication_factor: s.replication_factor }
}

pub fn map_to_wire(map: &ClusterMap) -> v1::PartitionMap {
    v1::PartitionMap {
        epoch: map.table.epoch,
        settings: map.settings.as_ref().map(settings_to_wire),
        partitions: map.table.partitions.iter().map(partition_to_wire).collect(),
        nodes: map.nodes.values().map(node_to_wire).collect(),
        nodes_version: map.nodes_version,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_states_round_trip() {
        for state in NodeState::ALL {
            assert_eq!(node_state_from_wire(node_state_to_wire(state) as i32), Some(state));
        }
        assert_eq!(node_state_from_wire(0), None);
        assert_eq!(node_state_from_wire(99), None);
    }

    #[test]
    fn specs_round_trip_and_bad_roles_are_named() {
        let spec = NodeSpec {
            id: 3,
            addr: "127.0.0.1:1".into(),
            zone: "z".into(),
            capacity_cores: 2.0,
            price_per_hour: 0.3,
            roles: vec![Role::Worker],
        };
        assert_eq!(spec_from_wire(&spec_to_wire(&spec)), Ok(spec.clone()));
        let mut wire = spec_to_wire(&spec);
        wire.roles.push("janitor".into());
        assert!(spec_from_wire(&wire).unwrap_err().contains("janitor"));
    }
}
