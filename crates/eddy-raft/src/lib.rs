//! Raft plumbing shared by every Raft group on a node (the controller and the
//! partitions): the node type Raft keeps in memberships, the cluster identity
//! that Raft messages carry, and the transport over gRPC with one cached
//! channel per peer, whatever the group.

mod batcher;
mod network;
pub mod receiver;

use std::sync::{Arc, OnceLock};

pub use batcher::AppendBatcher;
pub use network::{BytesSnapshots, GrpcNetwork, GrpcPeer, Peer, Rpc, SnapshotSender};
pub use receiver::{RaftReceiver, check_cluster};
use serde::{Deserialize, Serialize};

/// A Raft member as memberships record it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RaftNode {
    /// Advertised gRPC address.
    pub addr: String,
}

/// The id of the cluster this node belongs to, once it is known. Raft
/// messages carry it so that a node never takes entries from another cluster.
pub type ClusterIdentity = Arc<OnceLock<String>>;
