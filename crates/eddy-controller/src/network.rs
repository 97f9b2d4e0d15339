//! Raft transport of the controller group over gRPC: the sending side
//! (openraft's network traits, one cached channel per peer) and the receiving
//! side (decode, hand to Raft, encode the answer).

use std::future::Future;
use std::time::Duration;

use eddy_proto::RAFT_MAX_MESSAGE_BYTES;
use eddy_proto::channels::PeerChannels;
use eddy_proto::v1::raft_service_client::RaftServiceClient;
use eddy_proto::v1::{RaftReply, RaftRequest};
use openraft::OptionalSend;
use openraft::errors::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::v2::RaftNetworkV2;
use openraft::network::{RPCOption, RaftNetworkFactory};
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse};
use openraft::type_config::alias::{SnapshotMetaOf, SnapshotOf, VoteOf};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::sm::{ClusterIdentity, ControllerStateMachine};
use crate::types::{ControllerTypes as C, RaftNode};

pub type ControllerRaft = openraft::Raft<C, ControllerStateMachine>;

/// Creates a peer handle per target; handles share the node's channels.
#[derive(Debug, Clone)]
pub struct GrpcNetwork {
    group: u64,
    channels: PeerChannels,
    identity: ClusterIdentity,
}

impl GrpcNetwork {
    pub fn new(group: u64, channels: PeerChannels, identity: ClusterIdentity) -> Self {
        GrpcNetwork { group, channels, identity }
    }
}

impl RaftNetworkFactory<C> for GrpcNetwork {
    type Network = GrpcPeer;

    async fn new_client(&mut self, target: u64, node: &RaftNode) -> Self::Network {
        GrpcPeer {
            group: self.group,
            target,
            addr: node.addr.clone(),
            channels: self.channels.clone(),
            identity: self.identity.clone(),
        }
    }
}

pub struct GrpcPeer {
    group: u64,
    target: u64,
    addr: String,
    channels: PeerChannels,
    identity: ClusterIdentity,
}

#[derive(Debug, Clone, Copy)]
enum Rpc {
    Append,
    Vote,
    PreVote,
    Snapshot,
}

impl GrpcPeer {
    async fn call(&self, rpc: Rpc, payload: Vec<u8>, ttl: Duration) -> Result<Vec<u8>, RPCError<C>> {
        let channel = self.channels.get(&self.addr).map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))?;
        let mut client = RaftServiceClient::new(channel)
            .max_decoding_message_size(RAFT_MAX_MESSAGE_BYTES)
            .max_encoding_message_size(RAFT_MAX_MESSAGE_BYTES);
        let cluster = self.identity.get().cloned().unwrap_or_default();
        let request = RaftRequest { group: self.group, payload, cluster };
        let call = async {
            match rpc {
                Rpc::Append => client.append_entries(request).await,
                Rpc::Vote => client.vote(request).await,
                Rpc::PreVote => client.pre_vote(request).await,
                Rpc::Snapshot => client.install_snapshot(request).await,
            }
        };
        let reply = match tokio::time::timeout(ttl, call).await {
            Err(_) => {
                let msg = format!("{rpc:?} to node {} at {} timed out after {ttl:?}", self.target, self.addr);
                return Err(RPCError::Unreachable(Unreachable::from_string(msg)));
            }
            Ok(Err(status)) => {
                let msg = format!("{rpc:?} to node {} at {}: {status}", self.target, self.addr);
                return Err(RPCError::Unreachable(Unreachable::from_string(msg)));
            }
            Ok(Ok(reply)) => reply.into_inner(),
        };
        if reply.is_error {
            let msg = String::from_utf8_lossy(&reply.payload).into_owned();
            return Err(RPCError::Network(NetworkError::from_string(format!("node {} refused: {msg}", self.target))));
        }
        Ok(reply.payload)
    }
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, RPCError<C>> {
    postcard::to_allocvec(value).map_err(|e| RPCError::Network(NetworkError::new(&e)))
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, RPCError<C>> {
    postcard::from_bytes(bytes).map_err(|e| RPCError::Network(NetworkError::new(&e)))
}

impl RaftNetworkV2<C> for GrpcPeer {
    type SnapshotData = Vec<u8>;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<C>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<C>, RPCError<C>> {
        let reply = self.call(Rpc::Append, encode(&rpc)?, option.hard_ttl()).await?;
        decode(&reply)
    }

    async fn vote(&mut self, rpc: VoteRequest<C>, option: RPCOption) -> Result<VoteResponse<C>, RPCError<C>> {
        let reply = self.call(Rpc::Vote, encode(&rpc)?, option.hard_ttl()).await?;
        decode(&reply)
    }

    async fn pre_vote(&mut self, rpc: VoteRequest<C>, option: RPCOption) -> Result<VoteResponse<C>, RPCError<C>> {
        let reply = self.call(Rpc::PreVote, encode(&rpc)?, option.hard_ttl()).await?;
        decode(&reply)
    }

    async fn full_snapshot(
        &mut self,
        vote: VoteOf<C>,
        snapshot: SnapshotOf<C, Vec<u8>>,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<C>, StreamingError<C>> {
        let payload = encode(&(vote, snapshot.meta, snapshot.snapshot))?;
        tokio::select! {
            closed = cancel => Err(StreamingError::Closed(closed)),
            reply = self.call(Rpc::Snapshot, payload, option.hard_ttl()) => Ok(decode(&reply?)?),
        }
    }
}

/// The receiving side: turns an encoded request into Raft's encoded answer.
pub struct RaftReceiver<'a> {
    pub raft: &'a ControllerRaft,
    pub identity: &'a ClusterIdentity,
}

impl RaftReceiver<'_> {
    /// Refuses a message from a member of another cluster (a stale process
    /// on a reused address, or overlapping manifests).
    pub fn check_cluster(&self, sender_cluster: &str) -> Result<(), String> {
        match self.identity.get() {
            Some(mine) if !sender_cluster.is_empty() && mine != sender_cluster => Err(format!(
                "raft message from cluster {sender_cluster}, but this node belongs to cluster {mine}; \
                 check that no node of another cluster runs at this address"
            )),
            _ => Ok(()),
        }
    }

    pub async fn append_entries(&self, payload: &[u8]) -> RaftReply {
        match postcard::from_bytes::<AppendEntriesRequest<C>>(payload) {
            Ok(rpc) => reply(self.raft.append_entries(rpc).await),
            Err(err) => refused(format!("undecodable append-entries request: {err}")),
        }
    }

    pub async fn vote(&self, payload: &[u8]) -> RaftReply {
        match postcard::from_bytes::<VoteRequest<C>>(payload) {
            Ok(rpc) => reply(self.raft.vote(rpc).await),
            Err(err) => refused(format!("undecodable vote request: {err}")),
        }
    }

    pub async fn pre_vote(&self, payload: &[u8]) -> RaftReply {
        match postcard::from_bytes::<VoteRequest<C>>(payload) {
            Ok(rpc) => reply(self.raft.pre_vote(rpc).await),
            Err(err) => refused(format!("undecodable pre-vote request: {err}")),
        }
    }

    pub async fn install_snapshot(&self, payload: &[u8]) -> RaftReply {
        match postcard::from_bytes::<(VoteOf<C>, SnapshotMetaOf<C>, Vec<u8>)>(payload) {
            Ok((vote, meta, data)) => {
                let snapshot = SnapshotOf::<C, Vec<u8>> { meta, snapshot: data };
                reply(self.raft.install_full_snapshot(vote, snapshot).await)
            }
            Err(err) => refused(format!("undecodable snapshot: {err}")),
        }
    }
}

fn reply<T: Serialize, E: std::fmt::Display>(result: Result<T, E>) -> RaftReply {
    match result.map(|value| postcard::to_allocvec(&value)) {
        Ok(Ok(payload)) => RaftReply { payload, is_error: false },
        Ok(Err(err)) => refused(format!("cannot encode the answer: {err}")),
        Err(err) => refused(err.to_string()),
    }
}

fn refused(message: String) -> RaftReply {
    RaftReply { payload: message.into_bytes(), is_error: true }
}
