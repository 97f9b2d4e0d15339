//! Controller errors, each saying what the caller can do about it.

use eddy_core::NodeId;

#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error("node is not the controller leader; the leader is node {leader_id} at {leader_addr}")]
    NotLeader { leader_id: NodeId, leader_addr: String },
    #[error("no controller leader is elected yet; retry shortly")]
    NoLeader,
    #[error("the cluster is not bootstrapped yet: {how}")]
    NotInitialized { how: String },
    #[error("the cluster is already bootstrapped{}; nothing was changed", cluster_suffix(.cluster_id))]
    AlreadyBootstrapped { cluster_id: Option<String> },
    #[error(
        "node {node} belongs to cluster {node_cluster}, but this is cluster {cluster}; point it at its own cluster or clear its data dir"
    )]
    WrongCluster { node: NodeId, node_cluster: String, cluster: String },
    #[error("refused: {0}")]
    Refused(String),
    #[error("invalid request: {0}")]
    InvalidArgument(String),
    #[error(
        "timed out waiting for the controller to commit; a majority of controller voters may be down or unreachable (check `eddyctl status`)"
    )]
    Timeout,
    #[error("the controller's telemetry queue is full ({queued} reports); retry after {retry_after_ms} ms")]
    Busy { queued: usize, retry_after_ms: u64 },
    #[error("the controller has stopped: {0}; restart this eddyd and see its log")]
    Stopped(String),
    #[error(transparent)]
    Storage(#[from] eddy_storage::StorageError),
    #[error("controller I/O: {0}")]
    Io(#[from] std::io::Error),
}

fn cluster_suffix(cluster_id: &Option<String>) -> String {
    cluster_id.as_ref().map(|id| format!(" as cluster {id}")).unwrap_or_default()
}
