//! The node-to-controller API. A controller that does not lead forwards
//! the call to the leader once; if that fails the caller gets "not leader"
//! with the leader's address.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use eddy_controller::{Controller, ControllerError};
use eddy_core::NodeId;
use eddy_proto::channels::PeerChannels;
use eddy_proto::convert::{node_state_to_wire, spec_from_wire};
use eddy_proto::meta;
use eddy_proto::v1::controller_service_client::ControllerServiceClient;
use eddy_proto::v1::controller_service_server::ControllerService;
use eddy_proto::v1::{
    HeartbeatRequest, HeartbeatResponse, MoveReplicaRequest, MoveReplicaResponse, NodeState, RegisterNodeRequest,
    RegisterNodeResponse,
};
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status};

use crate::status::controller_status;

pub struct ControllerApi {
    pub node_id: NodeId,
    pub controller: Option<Arc<Controller>>,
    pub channels: PeerChannels,
}

impl ControllerApi {
    fn controller(&self) -> Result<&Controller, Status> {
        self.controller.as_deref().ok_or_else(|| super::no_controller_role(self.node_id))
    }

    /// The leader to forward to, when this call may still be forwarded.
    fn forward_target<T>(&self, request: &Request<T>, err: &ControllerError) -> Option<String> {
        let forwarded = request.metadata().contains_key(meta::FORWARDED);
        match err {
            ControllerError::NotLeader { leader_addr, .. } if !forwarded && !leader_addr.is_empty() => {
                Some(leader_addr.clone())
            }
            _ => None,
        }
    }

    fn leader_client(&self, addr: &str) -> Result<ControllerServiceClient<tonic::transport::Channel>, Status> {
        let channel = self.channels.get(addr)?;
        Ok(ControllerServiceClient::new(channel))
    }
}

fn forwarded<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(meta::FORWARDED, MetadataValue::from_static("1"));
    request
}

/// How long a forwarded call may take before the caller is sent to the
/// leader itself.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(3);

/// Forwards a call to the leader; answers with the original "not leader"
/// when the leader cannot be reached in time, so the caller goes there itself.
async fn forward<T>(
    call: impl Future<Output = Result<Response<T>, Status>>,
    err: &ControllerError,
) -> Result<Response<T>, Status> {
    match tokio::time::timeout(FORWARD_TIMEOUT, call).await {
        Ok(Ok(response)) => Ok(response),
        Ok(Err(status))
            if !matches!(
                status.code(),
                tonic::Code::Unavailable
                    | tonic::Code::Unknown
                    | tonic::Code::DeadlineExceeded
                    | tonic::Code::Cancelled
            ) =>
        {
            Err(status)
        }
        _ => Err(controller_status(err)),
    }
}

#[tonic::async_trait]
impl ControllerService for ControllerApi {
    async fn register_node(
        &self,
        request: Request<RegisterNodeRequest>,
    ) -> Result<Response<RegisterNodeResponse>, Status> {
        let controller = self.controller()?;
        let body = request.get_ref();
        let spec = body.node.as_ref().ok_or_else(|| Status::invalid_argument("register: missing node"))?;
        let spec = spec_from_wire(spec).map_err(|e| Status::invalid_argument(format!("register: {e}")))?;
        match controller.register(spec, &body.cluster_id).await {
            Ok((cluster_id, state)) => {
                Ok(Response::new(RegisterNodeResponse { cluster_id, state: node_state_to_wire(state) as i32 }))
            }
            Err(err) => match self.forward_target(&request, &err) {
                Some(leader) => {
                    let mut client = self.leader_client(&leader)?;
                    forward(client.register_node(forwarded(request.into_inner())), &err).await
                }
                None => Err(controller_status(&err)),
            },
        }
    }

    async fn move_replica(
        &self,
        request: Request<MoveReplicaRequest>,
    ) -> Result<Response<MoveReplicaResponse>, Status> {
        let controller = self.controller()?;
        let body = request.get_ref();
        match controller.move_replica(body.partition, body.from_node, body.to_node).await {
            Ok(epoch) => Ok(Response::new(MoveReplicaResponse { epoch })),
            Err(err) => match self.forward_target(&request, &err) {
                Some(leader) => {
                    let mut client = self.leader_client(&leader)?;
                    forward(client.move_replica(forwarded(request.into_inner())), &err).await
                }
                None => Err(controller_status(&err)),
            },
        }
    }

    async fn heartbeat(&self, request: Request<HeartbeatRequest>) -> Result<Response<HeartbeatResponse>, Status> {
        let controller = self.controller()?;
        let body = request.get_ref();
        let leading = body.leading.iter().map(|l| (l.partition, l.term)).collect();
        match controller.heartbeat(body.node_id, &body.cluster_id, leading) {
            Ok(answer) => Ok(Response::new(HeartbeatResponse {
                state: answer.state.map_or(NodeState::Unspecified, node_state_to_wire) as i32,
                registered: answer.state.is_some(),
                map_epoch: answer.epoch,
            })),
            Err(err) => match self.forward_target(&request, &err) {
                Some(leader) => {
                    let mut client = self.leader_client(&leader)?;
                    forward(client.heartbeat(forwarded(request.into_inner())), &err).await
                }
                None => Err(controller_status(&err)),
            },
        }
    }
}
