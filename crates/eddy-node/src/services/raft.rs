//! The Raft transport service: routes each request to its group, the
//! controller (group 0) or a partition replica on this node.

use std::sync::Arc;

use eddy_controller::Controller;
use eddy_controller::types::CONTROLLER_GROUP;
use eddy_core::NodeId;
use eddy_proto::v1::raft_service_server::RaftService;
use eddy_proto::v1::{MembersReply, RaftBatchReply, RaftBatchRequest, RaftReply, RaftRequest, SnapshotChunk};
use eddy_raft::receiver::refused;
use eddy_raft::{RaftReceiver, Rpc, check_cluster};
use eddy_worker::Worker;
use eddy_worker::replica::Replica;
use eddy_worker::types::partition_of;
use tonic::{Request, Response, Status, Streaming};

pub struct RaftApi {
    pub node_id: NodeId,
    pub controller: Option<Arc<Controller>>,
    pub worker: Option<Arc<Worker>>,
}

impl RaftApi {
    fn replica(&self, group: u64) -> Result<(Arc<Replica>, &Arc<Worker>), Status> {
        let worker = self.worker.as_ref().ok_or_else(|| {
            Status::not_found(format!("node {} has no worker role (raft group {group})", self.node_id))
        })?;
        let partition = partition_of(group)
            .ok_or_else(|| Status::invalid_argument(format!("raft group {group} names no partition")))?;
        let replica = worker.replica(partition).ok_or_else(|| {
            Status::not_found(format!("node {} holds no replica of partition {partition}", self.node_id))
        })?;
        Ok((replica, worker))
    }

    async fn dispatch(&self, rpc: Rpc, request: RaftRequest) -> Result<RaftReply, Status> {
        if request.group == CONTROLLER_GROUP {
            let controller = self.controller.as_ref().ok_or_else(|| super::no_controller_role(self.node_id))?;
            let receiver = controller.raft_receiver();
            receiver.check_cluster(&request.cluster).map_err(Status::failed_precondition)?;
            return Ok(match rpc {
                Rpc::Append => receiver.append_entries(&request.payload).await,
                Rpc::Vote => receiver.vote(&request.payload).await,
                Rpc::PreVote => receiver.pre_vote(&request.payload).await,
                Rpc::TransferLeader => receiver.transfer_leader(&request.payload).await,
                Rpc::Snapshot => receiver.install_snapshot(&request.payload).await,
            });
        }
        let (replica, worker) = self.replica(request.group)?;
        let receiver = RaftReceiver { raft: &replica.raft, identity: worker.identity() };
        receiver.check_cluster(&request.cluster).map_err(Status::failed_precondition)?;
        match rpc {
            Rpc::Append => Ok(receiver.append_entries(&request.payload).await),
            Rpc::Vote => Ok(receiver.vote(&request.payload).await),
            Rpc::PreVote => Ok(receiver.pre_vote(&request.payload).await),
            Rpc::TransferLeader => Ok(receiver.transfer_leader(&request.payload).await),
            Rpc::Snapshot => Err(Status::invalid_argument("partition snapshots travel by InstallSnapshotStream")),
        }
    }
}

#[tonic::async_trait]
impl RaftService for RaftApi {
    async fn append_entries(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        self.dispatch(Rpc::Append, request.into_inner()).await.map(Response::new)
    }

    async fn append_entries_batch(
        &self,
        request: Request<RaftBatchRequest>,
    ) -> Result<Response<RaftBatchReply>, Status> {
        // Together, so that the groups' appends share one group commit.
        let appends = request.into_inner().requests.into_iter().map(|r| self.dispatch(Rpc::Append, r));
        let replies = futures::future::join_all(appends)
            .await
            .into_iter()
            .map(|reply| reply.unwrap_or_else(|status| refused(status.message().to_owned())))
            .collect();
        Ok(Response::new(RaftBatchReply { replies }))
    }

    async fn vote(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        self.dispatch(Rpc::Vote, request.into_inner()).await.map(Response::new)
    }

    async fn pre_vote(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        self.dispatch(Rpc::PreVote, request.into_inner()).await.map(Response::new)
    }

    async fn transfer_leader(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        self.dispatch(Rpc::TransferLeader, request.into_inner()).await.map(Response::new)
    }

    async fn install_snapshot(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        self.dispatch(Rpc::Snapshot, request.into_inner()).await.map(Response::new)
    }

    async fn members(&self, request: Request<RaftRequest>) -> Result<Response<MembersReply>, Status> {
        let (replica, _) = self.replica(request.get_ref().group)?;
        let (voters, learners) = eddy_worker::membership::committed_members(&replica);
        let leader = matches!(replica.leadership(), eddy_worker::replica::Leadership::Here { .. });
        Ok(Response::new(MembersReply { voters, learners, leader }))
    }

    async fn install_snapshot_stream(
        &self,
        request: Request<Streaming<SnapshotChunk>>,
    ) -> Result<Response<RaftReply>, Status> {
        let mut stream = request.into_inner();
        let first = stream.message().await?.ok_or_else(|| Status::invalid_argument("empty snapshot stream"))?;
        let (replica, worker) = self.replica(first.group)?;
        check_cluster(worker.identity(), &first.cluster).map_err(Status::failed_precondition)?;
        let staging = replica.dir.staging().map_err(|e| Status::internal(format!("snapshot staging: {e}")))?;
        let reply = eddy_worker::snapshot::receive(&replica.raft, staging, &first.header, &mut stream).await;
        Ok(Response::new(reply))
    }
}
