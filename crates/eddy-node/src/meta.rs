//! The node's view of the cluster map, whatever its roles.
//!
//! A controller node reads its own replica of the controller state. A
//! worker-only node follows a controller's `WatchPartitionMap` stream and
//! forwards status questions to the controllers. Either way the node's
//! services read the map from one watch channel.

use std::sync::Arc;
use std::time::Duration;

use eddy_controller::Controller;
use eddy_core::NodeId;
use eddy_proto::channels::PeerChannels;
use eddy_proto::convert::map_to_wire;
use eddy_proto::v1::cluster_service_client::ClusterServiceClient;
use eddy_proto::v1::{self, ClusterStatusRequest, WatchPartitionMapRequest};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::Status;

const RETRY: Duration = Duration::from_millis(500);
const STATUS_TIMEOUT: Duration = Duration::from_secs(3);

pub struct Meta {
    node_id: NodeId,
    source: Source,
    maps: watch::Receiver<Arc<v1::PartitionMap>>,
    task: JoinHandle<()>,
}

enum Source {
    Local(Arc<Controller>),
    Remote { controllers: Vec<String>, channels: PeerChannels },
}

impl Meta {
    pub fn local(node_id: NodeId, controller: Arc<Controller>) -> Self {
        let mut cluster_maps = controller.watch_map();
        let (publish, maps) = watch::channel(Arc::new(map_to_wire(&cluster_maps.borrow_and_update())));
        let task = tokio::spawn(async move {
            while cluster_maps.changed().await.is_ok() {
                let wire = map_to_wire(&cluster_maps.borrow_and_update());
                publish.send_replace(Arc::new(wire));
            }
        });
        Meta { node_id, source: Source::Local(controller), maps, task }
    }

    pub fn remote(node_id: NodeId, controllers: Vec<String>, channels: PeerChannels) -> Self {
        let (publish, maps) = watch::channel(Arc::new(v1::PartitionMap::default()));
        let task = tokio::spawn(follow_controllers(controllers.clone(), channels.clone(), publish));
        Meta { node_id, source: Source::Remote { controllers, channels }, maps, task }
    }

    pub fn partition_maps(&self) -> watch::Receiver<Arc<v1::PartitionMap>> {
        self.maps.clone()
    }

    pub async fn cluster_status(&self) -> Result<v1::ClusterStatusResponse, Status> {
        match &self.source {
            Source::Local(controller) => {
                let status = controller.status();
                let (leader_id, leader_addr) = status.leader.unwrap_or((0, String::new()));
                Ok(v1::ClusterStatusResponse {
                    cluster_id: status.map.cluster_id.clone().unwrap_or_default(),
                    leader_id,
                    leader_addr,
                    term: status.term,
                    voters: status.voters,
                    map: Some(self.maps.borrow().as_ref().clone()),
                    served_by: self.node_id,
                    confirmed_leader: status.confirmed_leader,
                    map_may_be_stale: !status.confirmed_leader,
                    broken_replicas: status
                        .problems
                        .broken
                        .iter()
                        .map(|(node, partition, reason)| v1::BrokenReplica {
                            partition: *partition,
                            node: *node,
                            reason: reason.clone(),
                        })
                        .collect(),
                    processor_panics: status
                        .problems
                        .panics
                        .iter()
                        .map(|(node, p)| v1::ProcessorPanic {
                            partition: p.partition,
                            node: *node,
                            processor: p.processor.clone(),
                            description: p.description.clone(),
                            at_ms: p.at_ms,
                        })
                        .collect(),
                    controller_log: Some(v1::ControllerLog {
                        last_log_index: status.log.last_log_index,
                        last_applied_index: status.log.last_applied_index,
                        snapshot_index: status.log.snapshot_index,
                        purged_index: status.log.purged_index,
                    }),
                })
            }
            Source::Remote { controllers, channels } => remote_status(controllers, channels).await,
        }
    }
}

impl Drop for Meta {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn remote_status(controllers: &[String], channels: &PeerChannels) -> Result<v1::ClusterStatusResponse, Status> {
    let mut last = Status::unavailable("no controller configured");
    for addr in controllers {
        let channel = channels.get(addr)?;
        let mut client = ClusterServiceClient::new(channel);
        let call = client.cluster_status(ClusterStatusRequest {});
        match tokio::time::timeout(STATUS_TIMEOUT, call).await {
            Ok(Ok(status)) => return Ok(status.into_inner()),
            Ok(Err(status)) => last = status,
            Err(_) => last = Status::unavailable(format!("controller {addr} did not answer in time")),
        }
    }
    Err(Status::unavailable(format!("no controller answered; last error: {}", last.message())))
}

/// Whether `map` is a later state of the controller than `than`: both
/// counters only grow as the controller log advances.
pub(crate) fn is_newer(map: &v1::PartitionMap, than: &v1::PartitionMap) -> bool {
    map.epoch >= than.epoch && map.nodes_version >= than.nodes_version && map != than
}

/// Keeps `publish` up to date from the first controller that streams the map.
async fn follow_controllers(
    controllers: Vec<String>,
    channels: PeerChannels,
    publish: watch::Sender<Arc<v1::PartitionMap>>,
) {
    for addr in controllers.iter().cycle() {
        let Ok(channel) = channels.get(addr) else {
            tokio::time::sleep(RETRY).await;
            continue;
        };
        let current = publish.borrow().clone();
        let request =
            WatchPartitionMapRequest { after_epoch: current.epoch, after_nodes_version: current.nodes_version };
        match ClusterServiceClient::new(channel).watch_partition_map(request).await {
            Ok(stream) => {
                let mut stream = stream.into_inner();
                loop {
                    match stream.message().await {
                        Ok(Some(map)) => {
                            // A lagging controller may know an older map;
                            // never step back to it.
                            publish.send_if_modified(|current| {
                                let newer = is_newer(&map, current);
                                if newer {
                                    *current = Arc::new(map);
                                }
                                newer
                            });
                        }
                        Ok(None) => break,
                        Err(status) => {
                            tracing::debug!(controller = %addr, error = %status, "partition map stream ended");
                            break;
                        }
                    }
                }
            }
            Err(status) => tracing::debug!(controller = %addr, error = %status, "cannot follow partition map"),
        }
        tokio::time::sleep(RETRY).await;
    }
}
