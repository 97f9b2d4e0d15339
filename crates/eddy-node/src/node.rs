//! A running node: storage, controller (if it has the role), gRPC server
//! and agent, started in order and stopped in reverse.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use eddy_controller::control::ControlConfig;
use eddy_controller::liveness::LivenessConfig;
use eddy_controller::types::RaftNode;
use eddy_controller::{Controller, ControllerConfig, ControllerError};
use eddy_core::Role;
use eddy_proto::RAFT_MAX_MESSAGE_BYTES;
use eddy_proto::channels::PeerChannels;
use eddy_proto::v1::cluster_service_server::ClusterServiceServer;
use eddy_proto::v1::controller_service_server::ControllerServiceServer;
use eddy_proto::v1::event_service_server::EventServiceServer;
use eddy_proto::v1::fault_service_server::FaultServiceServer;
use eddy_proto::v1::raft_service_server::RaftServiceServer;
use eddy_storage::{StorageError, Store, StoreOptions};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;

use crate::agent::Agent;
use crate::config::NodeConfig;
use crate::meta::Meta;
use crate::services::{ClusterApi, ControllerApi, EventApi, FAULT_INJECTION_ENV, FaultApi, RaftApi};

const SERVER_DRAIN: Duration = Duration::from_secs(3);
/// How often a worker reports to the controller leader; the models are
/// tuned for one sample a second.
const TELEMETRY_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("cannot create the data directory {path}: {source}")]
    DataDir { path: String, source: std::io::Error },
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("cannot listen on {addr}: {source}; is another eddyd running there? pick another node.listen_addr")]
    Bind { addr: String, source: std::io::Error },
    #[error(transparent)]
    Controller(#[from] ControllerError),
}

pub struct RunningNode {
    addr: SocketAddr,
    controller: Option<Arc<Controller>>,
    worker: Option<Arc<eddy_worker::Worker>>,
    stop_server: Option<oneshot::Sender<()>>,
    server: JoinHandle<Result<(), tonic::transport::Error>>,
    agent: JoinHandle<()>,
    telemetry: Option<JoinHandle<()>>,
    store: Store,
}

impl RunningNode {
    pub async fn start(config: NodeConfig) -> Result<Self, NodeError> {
        Self::start_with(config, Vec::new()).await
    }

    /// Starts a node whose partitions also run `extra` processors beside
    /// the built-in ones (for applications that embed Eddy).
    pub async fn start_with(
        config: NodeConfig,
        extra: Vec<Arc<dyn eddy_worker::processors::ProcessorFactory>>,
    ) -> Result<Self, NodeError> {
        let data_dir = &config.node.data_dir;
        std::fs::create_dir_all(data_dir)
            .map_err(|source| NodeError::DataDir { path: data_dir.display().to_string(), source })?;
        let store = Store::open(data_dir, &StoreOptions::default())?;
        let listener = TcpListener::bind(&config.node.listen_addr)
            .await
            .map_err(|source| NodeError::Bind { addr: config.node.listen_addr.clone(), source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| NodeError::Bind { addr: config.node.listen_addr.clone(), source })?;
        let channels = PeerChannels::default();
        let id = config.node.id;
        let controllers: Vec<String> = config.controller.initial_members.iter().map(|m| m.addr.clone()).collect();
        let controller = if config.has_role(Role::Controller) {
            let controller = Controller::start(controller_config(&config), store.clone(), channels.clone()).await?;
            Some(Arc::new(controller))
        } else {
            None
        };
        let meta = Arc::new(match &controller {
            Some(controller) => Meta::local(id, controller.clone()),
            None => Meta::remote(id, controllers.clone(), channels.clone()),
        });
        let worker = if config.has_role(Role::Worker) {
            let ctx = eddy_worker::replica::ReplicaContext {
                node_id: id,
                store: store.clone(),
                channels: channels.clone(),
                appends: eddy_raft::AppendBatcher::new(channels.clone()),
                identity: eddy_raft::ClusterIdentity::default(),
                config: Arc::new(config.worker_config()),
                partitions_dir: data_dir.join("partitions"),
                processors: config.processors_config(),
                extra_processors: extra,
                cpu: Arc::new(eddy_worker::cpu::CpuPool::new(config.node.capacity_cores)),
                meters: Arc::default(),
                panics: Arc::default(),
            };
            Some(eddy_worker::Worker::start(ctx, meta.partition_maps()))
        } else {
            None
        };
        let raft =
            RaftServiceServer::new(RaftApi { node_id: id, controller: controller.clone(), worker: worker.clone() })
                .max_decoding_message_size(RAFT_MAX_MESSAGE_BYTES)
                .max_encoding_message_size(RAFT_MAX_MESSAGE_BYTES);
        let cluster = ClusterServiceServer::new(ClusterApi {
            node_id: id,
            meta,
            controller: controller.clone(),
            store: store.clone(),
        });
        let control = ControllerServiceServer::new(ControllerApi {
            node_id: id,
            controller: controller.clone(),
            channels: channels.clone(),
        });
        let max_submit = config.worker.max_batch_bytes * 2 + 64 * 1024;
        let events = EventServiceServer::new(EventApi { node_id: id, worker: worker.clone() })
            .max_decoding_message_size(max_submit)
            .max_encoding_message_size(RAFT_MAX_MESSAGE_BYTES);
        let faults = FaultServiceServer::new(FaultApi {
            enabled: std::env::var(FAULT_INJECTION_ENV).is_ok_and(|v| v == "1"),
            channels: channels.clone(),
        });
        let (stop_server, stopped) = oneshot::channel::<()>();
        crate::metrics::install(&config);
        let mut services = tonic::service::Routes::builder();
        services.add_service(raft).add_service(cluster).add_service(control).add_service(events).add_service(faults);
        let routes = tonic::service::Routes::from(services.routes().into_axum_router().merge(crate::metrics::router()));
        let server = tokio::spawn(
            tonic::transport::Server::builder()
                // Prometheus scrapes /metrics over HTTP/1.1.
                .accept_http1(true)
                .add_routes(routes)
                .serve_with_incoming_shutdown(accepted_without_nagle(listener), async {
                    let _ = stopped.await;
                }),
        );
        let telemetry = worker.clone().map(|worker| {
            let telemetry = crate::telemetry::Telemetry {
                spec: config.spec(),
                worker,
                controllers: controllers.clone(),
                channels: channels.clone(),
                interval: TELEMETRY_INTERVAL,
            };
            tokio::spawn(telemetry.run())
        });
        let agent = Agent {
            spec: config.spec(),
            worker: worker.clone(),
            controllers,
            channels,
            store: store.clone(),
            interval: Duration::from_millis(config.liveness.heartbeat_interval_ms),
        };
        let agent = tokio::spawn(agent.run());
        tracing::info!(node = id, %addr, roles = ?config.node.roles, zone = %config.node.zone, "node started");
        Ok(RunningNode { addr, controller, worker, stop_server: Some(stop_server), server, agent, telemetry, store })
    }

    /// The address the gRPC server is bound to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn controller(&self) -> Option<&Arc<Controller>> {
        self.controller.as_ref()
    }

    /// Resolves with the reason if the node can no longer do its job (its
    /// controller replica stopped on a storage failure); never otherwise.
    pub async fn failed(&self) -> String {
        match &self.controller {
            Some(controller) => controller.stopped().await,
            None => std::future::pending().await,
        }
    }

    /// Stops the agent, the controller and the server, and flushes storage.
    pub async fn shutdown(mut self) {
        self.agent.abort();
        if let Some(telemetry) = &self.telemetry {
            telemetry.abort();
        }
        if let Some(worker) = &self.worker {
            worker.shutdown().await;
        }
        if let Some(controller) = &self.controller {
            controller.shutdown().await;
        }
        if let Some(stop) = self.stop_server.take() {
            let _ = stop.send(());
        }
        // Open watch streams would hold a graceful stop forever.
        if tokio::time::timeout(SERVER_DRAIN, &mut self.server).await.is_err() {
            self.server.abort();
        }
        if let Err(err) = self.store.sync().await {
            tracing::warn!(error = %err, "final storage sync failed");
        }
        tracing::info!("node stopped");
    }
}

/// The server's accepted connections, with Nagle's algorithm off. Small
/// answers (Raft acks, submit acks) would otherwise wait for the peer's
/// delayed ack, about 40 ms. tonic's `Server::tcp_nodelay` only applies to
/// listeners it binds itself, not to one handed in, so it is set here.
fn accepted_without_nagle(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener).with_nodelay(Some(true))
}

fn controller_config(config: &NodeConfig) -> ControllerConfig {
    let c = &config.controller;
    let ms = Duration::from_millis;
    ControllerConfig {
        node_id: config.node.id,
        initial_members: c.initial_members.iter().map(|m| (m.id, RaftNode { addr: m.addr.clone() })).collect(),
        auto_bootstrap: c.auto_bootstrap,
        raft_heartbeat_interval: ms(c.raft_heartbeat_interval_ms),
        election_timeout_min: ms(c.election_timeout_min_ms),
        election_timeout_max: ms(c.election_timeout_max_ms),
        snapshot_every_entries: c.snapshot_every_entries,
        control: ControlConfig {
            interval: ms(c.control_interval_ms),
            placement_settle: ms(c.placement_settle_ms),
            liveness: LivenessConfig {
                suspect_after_ms: config.liveness.suspect_after_ms,
                down_after_ms: config.liveness.down_after_ms,
            },
            bootstrap_settings: config.settings(),
            propose_timeout: Duration::from_secs(5),
            plan_interval: ms(c.plan_interval_ms),
        },
    }
}

#[cfg(test)]
mod tests {
    use tokio_stream::StreamExt;

    use super::*;

    #[tokio::test]
    async fn accepted_connections_have_nagle_off() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut incoming = accepted_without_nagle(listener);
        let _client = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let accepted = incoming.next().await.expect("a connection").expect("accepted");
        assert!(accepted.nodelay().expect("nodelay"), "an accepted connection still delays small writes");
    }
}
