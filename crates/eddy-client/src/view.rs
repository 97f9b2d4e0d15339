//! Plain views of the cluster, as `eddyctl --json` prints them.

use eddy_proto::convert::node_state_from_wire;
use eddy_proto::v1;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusView {
    /// `None` until the cluster is bootstrapped.
    pub cluster_id: Option<String>,
    /// Controller leader, `None` when no leader is known.
    pub leader: Option<u64>,
    pub leader_addr: Option<String>,
    pub term: u64,
    pub voters: Vec<u64>,
    pub served_by: u64,
    /// The answering node is the leader and its lease holds: the view is current.
    pub confirmed_leader: bool,
    /// The answering node's map (at `epoch`) may lag the leader's: it is a
    /// follower, or has just restarted. Ask the leader for the current one.
    pub map_may_be_stale: bool,
    /// Replicas their nodes cannot open (as the controller leader heard
    /// them; empty from other nodes). The controller rebuilds them.
    pub broken_replicas: Vec<BrokenReplicaView>,
    /// Processor panics in the last ten minutes (as the controller leader
    /// heard them; empty from other nodes).
    pub processor_panics: Vec<ProcessorPanicView>,
    pub epoch: u64,
    pub nodes_version: u64,
    pub settings: Option<SettingsView>,
    pub nodes: Vec<NodeView>,
    pub partitions: Vec<PartitionView>,
    /// The answering node's controller log; `None` on worker-only nodes.
    pub controller_log: Option<ControllerLogView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokenReplicaView {
    pub node: u64,
    pub partition: u32,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessorPanicView {
    pub node: u64,
    pub partition: u32,
    pub processor: String,
    pub description: String,
    pub at_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControllerLogView {
    pub last_log_index: u64,
    pub last_applied_index: u64,
    pub snapshot_index: u64,
    pub purged_index: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingsView {
    pub partition_count: u32,
    pub replication_factor: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeView {
    pub id: u64,
    pub addr: String,
    pub zone: String,
    /// up, suspect, down, draining, removed
    pub state: String,
    pub capacity_cores: f64,
    pub price_per_hour: f64,
    pub roles: Vec<String>,
    pub state_since_ms: u64,
    /// Every node serves Prometheus metrics on its own address.
    pub metrics_url: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionView {
    pub id: u32,
    pub leader: Option<u64>,
    pub replicas: Vec<u64>,
    pub epoch: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MapView {
    pub epoch: u64,
    pub nodes_version: u64,
    pub settings: Option<SettingsView>,
    pub nodes: Vec<NodeView>,
    pub partitions: Vec<PartitionView>,
}

impl MapView {
    pub fn from_wire(map: v1::PartitionMap) -> Result<Self, String> {
        let nodes = map.nodes.into_iter().map(NodeView::from_wire).collect::<Result<Vec<_>, _>>()?;
        Ok(MapView {
            epoch: map.epoch,
            nodes_version: map.nodes_version,
            settings: map
                .settings
                .map(|s| SettingsView { partition_count: s.partition_count, replication_factor: s.replication_factor }),
            nodes,
            partitions: map.partitions.into_iter().map(PartitionView::from_wire).collect(),
        })
    }
}

impl NodeView {
    fn from_wire(node: v1::Node) -> Result<Self, String> {
        let state = node_state_from_wire(node.state)
            .ok_or_else(|| format!("node {} has unknown state {}", node.id, node.state))?;
        Ok(NodeView {
            metrics_url: eddy_core::node::metrics_url(&node.addr),
            id: node.id,
            addr: node.addr,
            zone: node.zone,
            state: state.as_str().to_owned(),
            capacity_cores: node.capacity_cores,
            price_per_hour: node.price_per_hour,
            roles: node.roles,
            state_since_ms: node.state_since_ms,
        })
    }
}

impl PartitionView {
    fn from_wire(p: v1::Partition) -> Self {
        PartitionView { id: p.id, leader: (p.leader != 0).then_some(p.leader), replicas: p.replicas, epoch: p.epoch }
    }
}

impl StatusView {
    pub fn from_wire(status: v1::ClusterStatusResponse) -> Result<Self, String> {
        let map = MapView::from_wire(status.map.unwrap_or_default())?;
        Ok(StatusView {
            cluster_id: (!status.cluster_id.is_empty()).then_some(status.cluster_id),
            leader: (status.leader_id != 0).then_some(status.leader_id),
            leader_addr: (!status.leader_addr.is_empty()).then_some(status.leader_addr),
            term: status.term,
            voters: status.voters,
            served_by: status.served_by,
            confirmed_leader: status.confirmed_leader,
            map_may_be_stale: status.map_may_be_stale,
            broken_replicas: status
                .broken_replicas
                .into_iter()
                .map(|b| BrokenReplicaView { node: b.node, partition: b.partition, reason: b.reason })
                .collect(),
            processor_panics: status
                .processor_panics
                .into_iter()
                .map(|p| ProcessorPanicView {
                    node: p.node,
                    partition: p.partition,
                    processor: p.processor,
                    description: p.description,
                    at_ms: p.at_ms,
                })
                .collect(),
            epoch: map.epoch,
            nodes_version: map.nodes_version,
            settings: map.settings,
            nodes: map.nodes,
            partitions: map.partitions,
            controller_log: status.controller_log.map(|l| ControllerLogView {
                last_log_index: l.last_log_index,
                last_applied_index: l.last_applied_index,
                snapshot_index: l.snapshot_index,
                purged_index: l.purged_index,
            }),
        })
    }

    pub fn node(&self, id: u64) -> Option<&NodeView> {
        self.nodes.iter().find(|n| n.id == id)
    }
}
