//! The Raft transport service: routes each request to its group.

use std::sync::Arc;

use eddy_controller::Controller;
use eddy_controller::sm::ControllerStateMachine;
use eddy_controller::types::{CONTROLLER_GROUP, ControllerTypes};
use eddy_core::NodeId;
use eddy_proto::v1::raft_service_server::RaftService;
use eddy_proto::v1::{RaftReply, RaftRequest};
use eddy_raft::RaftReceiver;
use tonic::{Request, Response, Status};

pub struct RaftApi {
    pub node_id: NodeId,
    pub controller: Option<Arc<Controller>>,
}

impl RaftApi {
    fn receiver(&self, group: u64) -> Result<RaftReceiver<'_, ControllerTypes, ControllerStateMachine>, Status> {
        if group != CONTROLLER_GROUP {
            return Err(Status::not_found(format!("node {} hosts no raft group {group}", self.node_id)));
        }
        match &self.controller {
            Some(controller) => Ok(controller.raft_receiver()),
            None => Err(super::no_controller_role(self.node_id)),
        }
    }
}

#[tonic::async_trait]
impl RaftService for RaftApi {
    async fn append_entries(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let request = request.into_inner();
        let receiver = self.receiver(request.group)?;
        receiver.check_cluster(&request.cluster).map_err(Status::failed_precondition)?;
        Ok(Response::new(receiver.append_entries(&request.payload).await))
    }

    async fn vote(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let request = request.into_inner();
        let receiver = self.receiver(request.group)?;
        receiver.check_cluster(&request.cluster).map_err(Status::failed_precondition)?;
        Ok(Response::new(receiver.vote(&request.payload).await))
    }

    async fn pre_vote(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let request = request.into_inner();
        let receiver = self.receiver(request.group)?;
        receiver.check_cluster(&request.cluster).map_err(Status::failed_precondition)?;
        Ok(Response::new(receiver.pre_vote(&request.payload).await))
    }

    async fn install_snapshot(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let request = request.into_inner();
        let receiver = self.receiver(request.group)?;
        receiver.check_cluster(&request.cluster).map_err(Status::failed_precondition)?;
        Ok(Response::new(receiver.install_snapshot(&request.payload).await))
    }
}
