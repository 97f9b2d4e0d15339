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
use eddy_proto::v1::{DrainReply, DrainRequest, LastPlanReply, LastPlanRequest, PlacementReply, PlacementRequest};
use eddy_proto::v1::{
    ExportTraceRequest, GetModelsRequest, HeartbeatRequest, HeartbeatResponse, ModelsReply, MoveReplicaRequest,
    MoveReplicaResponse, NodeState, PlanReply, PlanRequest, RegisterNodeRequest, RegisterNodeResponse, TelemetryAck,
    TelemetryReport, TraceReply, TransferLeaderRequest, TransferLeaderResponse,
};
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status, Streaming};

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

    /// Answers a controller error: forwarded to the leader when this node
    /// is not it (and the request was not forwarded already), else mapped
    /// to its status.
    async fn or_forward<Q, T, F, Fut>(
        &self,
        request: Request<Q>,
        err: ControllerError,
        call: F,
    ) -> Result<Response<T>, Status>
    where
        F: FnOnce(ControllerServiceClient<tonic::transport::Channel>, Request<Q>) -> Fut,
        Fut: Future<Output = Result<Response<T>, Status>>,
    {
        match self.forward_target(&request, &err) {
            Some(leader) => {
                let client = self.leader_client(&leader)?;
                forward(call(client, forwarded(request.into_inner())), &err).await
            }
            None => Err(controller_status(&err)),
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
    async fn report_telemetry(
        &self,
        request: Request<Streaming<TelemetryReport>>,
    ) -> Result<Response<TelemetryAck>, Status> {
        // Not forwarded: a stream belongs with the leader, and "not leader"
        // tells the worker where that is.
        let controller = self.controller()?;
        super::telemetry::receive(controller, request.into_inner()).await.map(Response::new)
    }

    async fn get_models(&self, request: Request<GetModelsRequest>) -> Result<Response<ModelsReply>, Status> {
        let controller = self.controller()?;
        match controller.models().await {
            Ok(models) => Ok(Response::new(ModelsReply { json: models.to_string() })),
            Err(err) => self.or_forward(request, err, |mut c, r| async move { c.get_models(r).await }).await,
        }
    }

    async fn export_trace(&self, request: Request<ExportTraceRequest>) -> Result<Response<TraceReply>, Status> {
        let controller = self.controller()?;
        match controller.trace().await {
            Ok(trace) => {
                let json = trace.to_json().map_err(|e| Status::internal(format!("trace: {e}")))?;
                Ok(Response::new(TraceReply { json }))
            }
            Err(err) => self.or_forward(request, err, |mut c, r| async move { c.export_trace(r).await }).await,
        }
    }

    async fn plan(&self, request: Request<PlanRequest>) -> Result<Response<PlanReply>, Status> {
        let controller = self.controller()?;
        let text = &request.get_ref().policy_toml;
        let policy: Option<eddy_placement::Policy> = if text.trim().is_empty() {
            None
        } else {
            Some(toml::from_str(text).map_err(|e| Status::invalid_argument(format!("policy: {}", e.message())))?)
        };
        match controller.plan(policy.as_ref()).await {
            Ok(plan) => {
                let json = serde_json::to_string(&plan).map_err(|e| Status::internal(format!("plan: {e}")))?;
                Ok(Response::new(PlanReply { json }))
            }
            Err(err) => self.or_forward(request, err, |mut c, r| async move { c.plan(r).await }).await,
        }
    }

    async fn get_placement(&self, request: Request<PlacementRequest>) -> Result<Response<PlacementReply>, Status> {
        let controller = self.controller()?;
        match controller.placement() {
            Ok(placement) => Ok(Response::new(PlacementReply { toml: placement_toml(&placement)? })),
            Err(err) => self.or_forward(request, err, |mut c, r| async move { c.get_placement(r).await }).await,
        }
    }

    async fn set_placement(&self, request: Request<PlacementRequest>) -> Result<Response<PlacementReply>, Status> {
        let controller = self.controller()?;
        let placement: eddy_core::PlacementSettings = toml::from_str(&request.get_ref().toml)
            .map_err(|e| Status::invalid_argument(format!("placement: {}", e.message())))?;
        match controller.set_placement(placement).await {
            Ok(placement) => Ok(Response::new(PlacementReply { toml: placement_toml(&placement)? })),
            Err(err) => self.or_forward(request, err, |mut c, r| async move { c.set_placement(r).await }).await,
        }
    }

    async fn drain(&self, request: Request<DrainRequest>) -> Result<Response<DrainReply>, Status> {
        let controller = self.controller()?;
        let body = request.get_ref();
        match controller.drain(body.node_id, body.undo).await {
            Ok(state) => Ok(Response::new(DrainReply { state: state.as_str().to_owned() })),
            Err(err) => self.or_forward(request, err, |mut c, r| async move { c.drain(r).await }).await,
        }
    }

    async fn last_plan(&self, request: Request<LastPlanRequest>) -> Result<Response<LastPlanReply>, Status> {
        let controller = self.controller()?;
        match controller.last_round() {
            Ok(round) => {
                let json = match round {
                    Some(round) => {
                        serde_json::to_string(&*round).map_err(|e| Status::internal(format!("round: {e}")))?
                    }
                    None => String::new(),
                };
                Ok(Response::new(LastPlanReply { json }))
            }
            Err(err) => self.or_forward(request, err, |mut c, r| async move { c.last_plan(r).await }).await,
        }
    }

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
            Err(err) => self.or_forward(request, err, |mut c, r| async move { c.register_node(r).await }).await,
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
            Err(err) => self.or_forward(request, err, |mut c, r| async move { c.move_replica(r).await }).await,
        }
    }

    async fn transfer_leader(
        &self,
        request: Request<TransferLeaderRequest>,
    ) -> Result<Response<TransferLeaderResponse>, Status> {
        let controller = self.controller()?;
        let body = request.get_ref();
        match controller.transfer_leader(body.partition, body.to_node).await {
            Ok(epoch) => Ok(Response::new(TransferLeaderResponse { epoch })),
            Err(err) => self.or_forward(request, err, |mut c, r| async move { c.transfer_leader(r).await }).await,
        }
    }

    async fn heartbeat(&self, request: Request<HeartbeatRequest>) -> Result<Response<HeartbeatResponse>, Status> {
        let controller = self.controller()?;
        let body = request.get_ref();
        let leading = body
            .leading
            .iter()
            .map(|l| eddy_core::GroupLead { partition: l.partition, term: l.term, voters: l.voters.clone() })
            .collect();
        let broken = body.broken.iter().map(|b| (b.partition, b.reason.clone())).collect();
        let panics = body
            .processor_panics
            .iter()
            .map(|p| eddy_controller::panics::PanicReport {
                partition: p.partition,
                processor: p.processor.clone(),
                description: p.description.clone(),
                at_ms: p.at_ms,
            })
            .collect();
        match controller.heartbeat(body.node_id, &body.cluster_id, leading, broken, panics) {
            Ok(answer) => Ok(Response::new(HeartbeatResponse {
                state: answer.state.map_or(NodeState::Unspecified, node_state_to_wire) as i32,
                registered: answer.state.is_some(),
                map_epoch: answer.epoch,
            })),
            Err(err) => self.or_forward(request, err, |mut c, r| async move { c.heartbeat(r).await }).await,
        }
    }
}

fn placement_toml(placement: &eddy_core::PlacementSettings) -> Result<String, Status> {
    toml::to_string(placement).map_err(|e| Status::internal(format!("placement: {e}")))
}
