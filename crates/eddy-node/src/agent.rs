//! The node agent: registers the node with the controller leader and keeps
//! sending heartbeats, following the leader as it moves.
//!
//! The cluster id learnt at the first registration is stored with the
//! node's data, so a node never silently joins a different cluster.

use std::time::Duration;

use eddy_core::NodeSpec;
use eddy_proto::channels::PeerChannels;
use eddy_proto::convert::spec_to_wire;
use eddy_proto::v1::controller_service_client::ControllerServiceClient;
use eddy_proto::v1::{BrokenReplica, HeartbeatRequest, PartitionLeadership, ProcessorPanic, RegisterNodeRequest};
use eddy_storage::Store;
use tonic::Status;

use crate::status::leader_addr;

const CLUSTER_ID_KEY: &str = "cluster_id";
const CALL_TIMEOUT: Duration = Duration::from_secs(3);

pub struct Agent {
    pub spec: NodeSpec,
    /// The node's worker, whose partition leadership goes into heartbeats.
    pub worker: Option<std::sync::Arc<eddy_worker::Worker>>,
    pub controllers: Vec<String>,
    pub channels: PeerChannels,
    pub store: Store,
    pub interval: Duration,
}

enum Step {
    Registered { cluster_id: String },
    Heard { registered: bool },
}

impl Agent {
    pub async fn run(self) {
        let mut cluster_id = match self.store.node_value(CLUSTER_ID_KEY) {
            Ok(value) => value.map(|v| String::from_utf8_lossy(&v).into_owned()).unwrap_or_default(),
            Err(err) => {
                tracing::error!(error = %err, "cannot read the node's cluster id; not registering");
                return;
            }
        };
        let mut registered = false;
        let mut next = 0usize;
        let mut sticky: Option<String> = None;
        let mut last_error = String::new();
        loop {
            let addr = sticky.clone().unwrap_or_else(|| self.controllers[next % self.controllers.len()].clone());
            let step = if registered {
                self.heartbeat(&addr, &cluster_id).await
            } else {
                self.register(&addr, &cluster_id).await
            };
            match step {
                Ok(step) => {
                    last_error.clear();
                    sticky = Some(addr.clone());
                    match step {
                        Step::Registered { cluster_id: joined } => {
                            registered = true;
                            tracing::info!(controller = %addr, cluster = %joined, "node registered");
                            if cluster_id.is_empty() && !joined.is_empty() {
                                if let Err(err) = self.store.put_node_value(CLUSTER_ID_KEY, joined.as_bytes()).await {
                                    tracing::error!(error = %err, "cannot store the cluster id");
                                }
                                cluster_id = joined;
                            }
                        }
                        Step::Heard { registered: known } => registered = known,
                    }
                }
                Err(status) => {
                    // A "not leader" answer names the leader: go there next.
                    sticky = leader_addr(&status);
                    let error = status.message().to_owned();
                    if sticky.is_none() {
                        next += 1;
                        if error != last_error && status.code() == tonic::Code::Unavailable {
                            tracing::info!(controller = %addr, error = %error, "controller not ready; retrying");
                        } else if error != last_error {
                            tracing::warn!(controller = %addr, code = ?status.code(), error = %error, "controller call failed");
                        }
                    }
                    last_error = error;
                }
            }
            tokio::time::sleep(self.interval).await;
        }
    }

    fn client(&self, addr: &str) -> Result<ControllerServiceClient<tonic::transport::Channel>, Status> {
        let channel = self.channels.get(addr)?;
        Ok(ControllerServiceClient::new(channel))
    }

    async fn register(&self, addr: &str, cluster_id: &str) -> Result<Step, Status> {
        let request = RegisterNodeRequest { node: Some(spec_to_wire(&self.spec)), cluster_id: cluster_id.to_owned() };
        let mut client = self.client(addr)?;
        let call = client.register_node(request);
        let answer = tokio::time::timeout(CALL_TIMEOUT, call)
            .await
            .map_err(|_| Status::unavailable(format!("controller {addr} did not answer in time")))??;
        Ok(Step::Registered { cluster_id: answer.into_inner().cluster_id })
    }

    async fn heartbeat(&self, addr: &str, cluster_id: &str) -> Result<Step, Status> {
        let leading = self
            .worker
            .as_ref()
            .map(|w| w.leads())
            .unwrap_or_default()
            .into_iter()
            .map(|lead| PartitionLeadership { partition: lead.partition, term: lead.term, voters: lead.voters })
            .collect();
        let broken = self
            .worker
            .as_ref()
            .map(|w| w.broken())
            .unwrap_or_default()
            .into_iter()
            .map(|(partition, reason)| BrokenReplica { partition, node: self.spec.id, reason })
            .collect();
        let since_ms = crate::services::now_ms().saturating_sub(eddy_worker::panics::REPORTED_FOR.as_millis() as u64);
        let processor_panics = self
            .worker
            .as_ref()
            .map(|w| w.processor_panics(since_ms))
            .unwrap_or_default()
            .into_iter()
            .map(|p| ProcessorPanic {
                partition: p.partition,
                node: self.spec.id,
                processor: p.processor.clone(),
                description: p.describe(),
                at_ms: p.at_ms,
            })
            .collect();
        let request = HeartbeatRequest {
            node_id: self.spec.id,
            cluster_id: cluster_id.to_owned(),
            leading,
            broken,
            processor_panics,
        };
        let mut client = self.client(addr)?;
        let call = client.heartbeat(request);
        let answer = tokio::time::timeout(CALL_TIMEOUT, call)
            .await
            .map_err(|_| Status::unavailable(format!("controller {addr} did not answer in time")))??;
        Ok(Step::Heard { registered: answer.into_inner().registered })
    }
}
