//! The receiving side of the Raft transport: decode a request, hand it to
//! the group's Raft, encode the answer.

use eddy_proto::v1::RaftReply;
use openraft::raft::{AppendEntriesRequest, TransferLeaderRequest, VoteRequest};
use openraft::storage::RaftStateMachine;
use openraft::type_config::alias::{SnapshotMetaOf, SnapshotOf, VoteOf};
use openraft::{Raft, RaftTypeConfig};
use serde::Serialize;

use crate::ClusterIdentity;

/// Refuses a message from a member of another cluster (a stale process on
/// a reused address, or overlapping manifests).
pub fn check_cluster(identity: &ClusterIdentity, sender_cluster: &str) -> Result<(), String> {
    match identity.get() {
        Some(mine) if !sender_cluster.is_empty() && mine != sender_cluster => Err(format!(
            "raft message from cluster {sender_cluster}, but this node belongs to cluster {mine}; \
             check that no node of another cluster runs at this address"
        )),
        _ => Ok(()),
    }
}

pub struct RaftReceiver<'a, C: RaftTypeConfig, SM: RaftStateMachine<C>> {
    pub raft: &'a Raft<C, SM>,
    pub identity: &'a ClusterIdentity,
}

impl<C: RaftTypeConfig, SM: RaftStateMachine<C>> RaftReceiver<'_, C, SM> {
    pub fn check_cluster(&self, sender_cluster: &str) -> Result<(), String> {
        check_cluster(self.identity, sender_cluster)
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

    pub async fn transfer_leader(&self, payload: &[u8]) -> RaftReply {
        match postcard::from_bytes::<TransferLeaderRequest<C>>(payload) {
            Ok(rpc) => reply(self.raft.handle_transfer_leader(rpc).await),
            Err(err) => refused(format!("undecodable transfer-leader request: {err}")),
        }
    }

    pub async fn pre_vote(&self, payload: &[u8]) -> RaftReply {
        match postcard::from_bytes::<VoteRequest<C>>(payload) {
            Ok(rpc) => reply(self.raft.pre_vote(rpc).await),
            Err(err) => refused(format!("undecodable pre-vote request: {err}")),
        }
    }
}

impl<C: RaftTypeConfig, SM: RaftStateMachine<C, SnapshotData = Vec<u8>>> RaftReceiver<'_, C, SM> {
    /// Installs a snapshot sent whole as one blob.
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

pub fn reply<T: Serialize, E: std::fmt::Display>(result: Result<T, E>) -> RaftReply {
    match result.map(|value| postcard::to_allocvec(&value)) {
        Ok(Ok(payload)) => RaftReply { payload, is_error: false },
        Ok(Err(err)) => refused(format!("cannot encode the answer: {err}")),
        Err(err) => refused(err.to_string()),
    }
}

pub fn refused(message: String) -> RaftReply {
    RaftReply { payload: message.into_bytes(), is_error: true }
}
