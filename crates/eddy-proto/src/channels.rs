//! One cached gRPC channel per peer address, shared by every caller on a
//! node (Raft replication, forwarding to the leader, controller calls).
//!
//! Tests can cut a node off from chosen peers: calls to a blocked address
//! fail at once, as if the network dropped them. Only nodes started with
//! fault injection enabled accept such instructions.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);

/// Why no channel to a peer is available.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("invalid peer address {addr}: {source}")]
    Invalid { addr: String, source: tonic::transport::Error },
    #[error("the link to {0} is cut (fault injection)")]
    Blocked(String),
}

impl From<ChannelError> for tonic::Status {
    fn from(err: ChannelError) -> Self {
        match err {
            ChannelError::Invalid { .. } => tonic::Status::invalid_argument(err.to_string()),
            ChannelError::Blocked(_) => tonic::Status::unavailable(err.to_string()),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct PeerChannels {
    channels: Arc<Mutex<HashMap<String, Channel>>>,
    blocked: Arc<RwLock<HashSet<String>>>,
}

impl PeerChannels {
    /// The channel to `addr` (`host:port`), created on first use. Channels
    /// connect lazily and reconnect by themselves.
    pub fn get(&self, addr: &str) -> Result<Channel, ChannelError> {
        if self.blocked.read().is_ok_and(|b| b.contains(addr)) {
            return Err(ChannelError::Blocked(addr.to_owned()));
        }
        let mut channels = self.channels.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(channel) = channels.get(addr) {
            return Ok(channel.clone());
        }
        let url = if addr.contains("://") { addr.to_owned() } else { format!("http://{addr}") };
        let channel = Endpoint::from_shared(url)
            .map_err(|source| ChannelError::Invalid { addr: addr.to_owned(), source })?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
            .keep_alive_while_idle(true)
            .connect_lazy();
        channels.insert(addr.to_owned(), channel.clone());
        Ok(channel)
    }

    /// Cuts (or restores, with an empty set) the links to `addrs`.
    pub fn set_blocked(&self, addrs: HashSet<String>) {
        if let Ok(mut blocked) = self.blocked.write() {
            *blocked = addrs;
        }
    }

    pub fn is_blocked(&self, addr: &str) -> bool {
        self.blocked.read().is_ok_and(|b| b.contains(addr))
    }
}
