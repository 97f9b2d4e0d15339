//! The client-facing cluster API: status, partition map, map changes,
//! bootstrap.

use std::pin::Pin;
use std::sync::Arc;

use eddy_controller::Controller;
use eddy_core::NodeId;
use eddy_proto::v1::cluster_service_server::ClusterService;
use eddy_proto::v1::{self, BootstrapRequest, BootstrapResponse, ClusterStatusRequest, GetPartitionMapRequest};
use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::meta::Meta;
use crate::status::controller_status;

/// How many map versions a slow watcher may lag before it is sent the latest only.
const WATCH_BUFFER: usize = 16;

pub struct ClusterApi {
    pub node_id: NodeId,
    pub meta: Arc<Meta>,
    pub controller: Option<Arc<Controller>>,
    pub store: eddy_storage::Store,
}

type MapStream = Pin<Box<dyn Stream<Item = Result<v1::PartitionMap, Status>> + Send>>;

#[tonic::async_trait]
impl ClusterService for ClusterApi {
    async fn cluster_status(
        &self,
        _request: Request<ClusterStatusRequest>,
    ) -> Result<Response<v1::ClusterStatusResponse>, Status> {
        self.meta.cluster_status().await.map(Response::new)
    }

    async fn get_partition_map(
        &self,
        _request: Request<GetPartitionMapRequest>,
    ) -> Result<Response<v1::PartitionMap>, Status> {
        let map = self.meta.partition_maps().borrow().clone();
        if map.settings.is_none() {
            return Err(Status::unavailable(format!(
                "node {} does not know the partition map yet: the cluster is not bootstrapped, \
                 or this node has not heard from a controller; retry shortly",
                self.node_id
            )));
        }
        Ok(Response::new(map.as_ref().clone()))
    }

    type WatchPartitionMapStream = MapStream;

    async fn watch_partition_map(
        &self,
        request: Request<v1::WatchPartitionMapRequest>,
    ) -> Result<Response<Self::WatchPartitionMapStream>, Status> {
        let request = request.into_inner();
        let mut maps = self.meta.partition_maps();
        let (send, receive) = mpsc::channel(WATCH_BUFFER);
        tokio::spawn(async move {
            let mut sent = (request.after_epoch, request.after_nodes_version);
            let mut first = sent == (0, 0);
            loop {
                let map = maps.borrow_and_update().clone();
                let version = (map.epoch, map.nodes_version);
                let newer = version.0 >= sent.0 && version.1 >= sent.1 && version != sent;
                // A map without settings is no map yet: wait for a real one.
                if map.settings.is_some() && (first || newer) {
                    first = false;
                    sent = version;
                    if send.send(Ok(map.as_ref().clone())).await.is_err() {
                        return;
                    }
                }
                tokio::select! {
                    changed = maps.changed() => if changed.is_err() { return },
                    () = send.closed() => return,
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(receive))))
    }

    async fn node_metrics(
        &self,
        _request: Request<v1::NodeMetricsRequest>,
    ) -> Result<Response<v1::NodeMetricsResponse>, Status> {
        use std::sync::atomic::Ordering::Relaxed;
        let stats = self.store.sync_stats();
        Ok(Response::new(v1::NodeMetricsResponse {
            node_id: self.node_id,
            fsyncs: stats.syncs.load(Relaxed),
            synced_writes: stats.writes.load(Relaxed),
            fsync_micros: stats.sync_micros.load(Relaxed),
        }))
    }

    async fn bootstrap(&self, _request: Request<BootstrapRequest>) -> Result<Response<BootstrapResponse>, Status> {
        let Some(controller) = &self.controller else {
            return Err(super::no_controller_role(self.node_id));
        };
        match controller.bootstrap().await {
            Ok(voters) => {
                tracing::info!(?voters, "bootstrapped by request");
                Ok(Response::new(BootstrapResponse { voters }))
            }
            Err(err) => Err(controller_status(&err)),
        }
    }
}
