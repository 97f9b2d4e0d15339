//! The sending side of the Raft transport: openraft's network traits over
//! unary gRPC calls carrying postcard-encoded messages. How a snapshot
//! travels depends on the group (a small blob, or a stream of files), so
//! that part is a type parameter.

use std::future::Future;
use std::marker::PhantomData;
use std::time::Duration;

use eddy_proto::RAFT_MAX_MESSAGE_BYTES;
use eddy_proto::channels::PeerChannels;
use eddy_proto::v1::raft_service_client::RaftServiceClient;
use eddy_proto::v1::{RaftReply, RaftRequest};
use openraft::errors::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::v2::RaftNetworkV2;
use openraft::network::{RPCOption, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest, TransferLeaderResponse,
    VoteRequest, VoteResponse,
};
use openraft::type_config::alias::{SnapshotOf, VoteOf};
use openraft::{OptionalSend, RaftTypeConfig};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::batcher::{AppendBatcher, MAX_BATCHED_REQUEST_BYTES};
use crate::{ClusterIdentity, RaftNode};

/// One peer of one group, as a transport call needs it.
#[derive(Debug, Clone)]
pub struct Peer {
    pub group: u64,
    pub target: u64,
    pub addr: String,
    pub channels: PeerChannels,
    pub identity: ClusterIdentity,
    /// Where append-entries requests go when the node batches them.
    pub batcher: Option<AppendBatcher>,
}

#[derive(Debug, Clone, Copy)]
pub enum Rpc {
    Append,
    Vote,
    PreVote,
    TransferLeader,
    Snapshot,
}

impl Peer {
    /// The cluster id to stamp on outgoing messages (empty while unknown).
    pub fn cluster(&self) -> String {
        self.identity.get().cloned().unwrap_or_default()
    }

    /// A client of the peer's Raft service with the raised message limit.
    pub fn client<C: RaftTypeConfig>(&self) -> Result<RaftServiceClient<tonic::transport::Channel>, Unreachable<C>> {
        let channel = self.channels.get(&self.addr).map_err(|e| Unreachable::new(&e))?;
        Ok(RaftServiceClient::new(channel)
            .max_decoding_message_size(RAFT_MAX_MESSAGE_BYTES)
            .max_encoding_message_size(RAFT_MAX_MESSAGE_BYTES))
    }

    /// One unary call; answers the encoded reply.
    pub async fn call<C: RaftTypeConfig>(
        &self,
        rpc: Rpc,
        payload: Vec<u8>,
        ttl: Duration,
    ) -> Result<Vec<u8>, RPCError<C>> {
        let request = RaftRequest { group: self.group, payload, cluster: self.cluster() };
        let batched = matches!(rpc, Rpc::Append) && request.payload.len() <= MAX_BATCHED_REQUEST_BYTES;
        if let (true, Some(batcher)) = (batched, &self.batcher) {
            let reply = batcher.call(&self.addr, request, ttl).await.map_err(|reason| {
                let msg = format!("{rpc:?} to node {} at {}: {reason}", self.target, self.addr);
                RPCError::Unreachable(Unreachable::from_string(msg))
            })?;
            return self.answer(reply);
        }
        let mut client = self.client::<C>().map_err(RPCError::Unreachable)?;
        let call = async {
            match rpc {
                Rpc::Append => client.append_entries(request).await,
                Rpc::Vote => client.vote(request).await,
                Rpc::PreVote => client.pre_vote(request).await,
                Rpc::TransferLeader => client.transfer_leader(request).await,
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
        self.answer(reply)
    }

    fn answer<C: RaftTypeConfig>(&self, reply: RaftReply) -> Result<Vec<u8>, RPCError<C>> {
        if reply.is_error {
            let msg = String::from_utf8_lossy(&reply.payload).into_owned();
            return Err(RPCError::Network(NetworkError::from_string(format!("node {} refused: {msg}", self.target))));
        }
        Ok(reply.payload)
    }
}

/// How a group's snapshots travel to a peer.
pub trait SnapshotSender<C: RaftTypeConfig>: Clone + Send + Sync + 'static {
    type Data: OptionalSend + 'static;

    fn send(
        &self,
        peer: &Peer,
        vote: VoteOf<C>,
        snapshot: SnapshotOf<C, Self::Data>,
        option: RPCOption,
    ) -> impl Future<Output = Result<SnapshotResponse<C>, StreamingError<C>>> + Send;
}

/// Snapshots that are one small blob, sent in one unary call.
#[derive(Debug, Clone, Copy, Default)]
pub struct BytesSnapshots;

impl<C: RaftTypeConfig> SnapshotSender<C> for BytesSnapshots {
    type Data = Vec<u8>;

    async fn send(
        &self,
        peer: &Peer,
        vote: VoteOf<C>,
        snapshot: SnapshotOf<C, Vec<u8>>,
        option: RPCOption,
    ) -> Result<SnapshotResponse<C>, StreamingError<C>> {
        let payload = encode::<C, _>(&(vote, snapshot.meta, snapshot.snapshot))?;
        let reply = peer.call::<C>(Rpc::Snapshot, payload, option.hard_ttl()).await?;
        Ok(decode::<C, _>(&reply)?)
    }
}

/// Creates a peer handle per target; handles share the node's channels.
pub struct GrpcNetwork<C, S> {
    group: u64,
    channels: PeerChannels,
    identity: ClusterIdentity,
    snapshots: S,
    batcher: Option<AppendBatcher>,
    _config: PhantomData<fn() -> C>,
}

impl<C, S> GrpcNetwork<C, S> {
    pub fn new(group: u64, channels: PeerChannels, identity: ClusterIdentity, snapshots: S) -> Self {
        GrpcNetwork { group, channels, identity, snapshots, batcher: None, _config: PhantomData }
    }

    /// Sends append-entries requests through `batcher`, together with the
    /// other groups' requests to the same peer.
    pub fn with_batcher(mut self, batcher: AppendBatcher) -> Self {
        self.batcher = Some(batcher);
        self
    }
}

impl<C, S> RaftNetworkFactory<C> for GrpcNetwork<C, S>
where
    C: RaftTypeConfig<NodeId = u64, Node = RaftNode>,
    S: SnapshotSender<C>,
{
    type Network = GrpcPeer<C, S>;

    async fn new_client(&mut self, target: u64, node: &RaftNode) -> Self::Network {
        let peer = Peer {
            group: self.group,
            target,
            addr: node.addr.clone(),
            channels: self.channels.clone(),
            identity: self.identity.clone(),
            batcher: self.batcher.clone(),
        };
        GrpcPeer { peer, snapshots: self.snapshots.clone(), _config: PhantomData }
    }
}

pub struct GrpcPeer<C, S> {
    peer: Peer,
    snapshots: S,
    _config: PhantomData<fn() -> C>,
}

fn encode<C: RaftTypeConfig, T: Serialize>(value: &T) -> Result<Vec<u8>, RPCError<C>> {
    postcard::to_allocvec(value).map_err(|e| RPCError::Network(NetworkError::new(&e)))
}

fn decode<C: RaftTypeConfig, T: DeserializeOwned>(bytes: &[u8]) -> Result<T, RPCError<C>> {
    postcard::from_bytes(bytes).map_err(|e| RPCError::Network(NetworkError::new(&e)))
}

impl<C, S> RaftNetworkV2<C> for GrpcPeer<C, S>
where
    C: RaftTypeConfig<NodeId = u64, Node = RaftNode>,
    S: SnapshotSender<C>,
{
    type SnapshotData = S::Data;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<C>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<C>, RPCError<C>> {
        let reply = self.peer.call::<C>(Rpc::Append, encode::<C, _>(&rpc)?, option.hard_ttl()).await?;
        decode::<C, _>(&reply)
    }

    async fn vote(&mut self, rpc: VoteRequest<C>, option: RPCOption) -> Result<VoteResponse<C>, RPCError<C>> {
        let reply = self.peer.call::<C>(Rpc::Vote, encode::<C, _>(&rpc)?, option.hard_ttl()).await?;
        decode::<C, _>(&reply)
    }

    async fn pre_vote(&mut self, rpc: VoteRequest<C>, option: RPCOption) -> Result<VoteResponse<C>, RPCError<C>> {
        let reply = self.peer.call::<C>(Rpc::PreVote, encode::<C, _>(&rpc)?, option.hard_ttl()).await?;
        decode::<C, _>(&reply)
    }

    async fn transfer_leader(
        &mut self,
        rpc: TransferLeaderRequest<C>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<C>, RPCError<C>> {
        let reply = self.peer.call::<C>(Rpc::TransferLeader, encode::<C, _>(&rpc)?, option.hard_ttl()).await?;
        decode::<C, _>(&reply)
    }

    async fn full_snapshot(
        &mut self,
        vote: VoteOf<C>,
        snapshot: SnapshotOf<C, S::Data>,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<C>, StreamingError<C>> {
        tokio::select! {
            closed = cancel => Err(StreamingError::Closed(closed)),
            sent = self.snapshots.send(&self.peer, vote, snapshot, option) => sent,
        }
    }
}
