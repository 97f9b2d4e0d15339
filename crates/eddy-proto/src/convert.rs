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
    v1::Partition {
        id: p.id,
        replicas: p.replicas.clone(),
        leader: p.leader.unwrap_or(0),
        epoch: p.epoch,
        leader_term: p.leader_term,
    }
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
        cluster_id: map.cluster_id.clone().unwrap_or_default(),
    }
}

/// The cluster map a wire partition map describes. Fails on a node state
/// or role this build does not know.
pub fn map_from_wire(map: &v1::PartitionMap) -> Result<ClusterMap, String> {
    let mut nodes = std::collections::BTreeMap::new();
    for n in &map.nodes {
        let state = node_state_from_wire(n.state).ok_or_else(|| format!("node {}: unknown state {}", n.id, n.state))?;
        let roles = n
            .roles
            .iter()
            .map(|r| r.parse::<Role>().map_err(|e| format!("node {}: {e}", n.id)))
            .collect::<Result<Vec<_>, _>>()?;
        let spec = NodeSpec {
            id: n.id,
            addr: n.addr.clone(),
            zone: n.zone.clone(),
            capacity_cores: n.capacity_cores,
            price_per_hour: n.price_per_hour,
            roles,
        };
        nodes.insert(n.id, NodeRecord { spec, state, state_since_ms: n.state_since_ms });
    }
    let partitions = map
        .partitions
        .iter()
        .map(|p| PartitionAssignment {
            id: p.id,
            replicas: p.replicas.clone(),
            leader: (p.leader != 0).then_some(p.leader),
            epoch: p.epoch,
            leader_term: p.leader_term,
        })
        .collect();
    Ok(ClusterMap {
        cluster_id: (!map.cluster_id.is_empty()).then(|| map.cluster_id.clone()),
        settings: map
            .settings
            .map(|s| ClusterSettings { partition_count: s.partition_count, replication_factor: s.replication_factor }),
        nodes,
        nodes_version: map.nodes_version,
        table: eddy_core::PartitionTable { epoch: map.epoch, partitions },
        // Workers and clients do not need the placement settings or the
        // table's history; the controller's own map holds them.
        placement: Default::default(),
        history: Default::default(),
    })
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
    fn maps_round_trip() {
        let mut map = ClusterMap {
            cluster_id: Some("c".into()),
            settings: Some(ClusterSettings { partition_count: 2, replication_factor: 1 }),
            nodes: Default::default(),
            nodes_version: 1,
            table: eddy_core::PartitionTable::unassigned(2),
            placement: Default::default(),
            history: Default::default(),
        };
        let spec = NodeSpec {
            id: 1,
            addr: "a:1".into(),
            zone: "z".into(),
            capacity_cores: 1.0,
            price_per_hour: 0.5,
            roles: vec![Role::Worker],
        };
        map.nodes.insert(1, NodeRecord { spec, state: NodeState::Up, state_since_ms: 9 });
        map.table.partitions[1].replicas = vec![1];
        map.table.partitions[1].leader = Some(1);
        map.table.partitions[1].leader_term = 4;
        assert_eq!(map_from_wire(&map_to_wire(&map)), Ok(map));
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
