//! Eddy's wire protocol: the gRPC services and messages generated from
//! `proto/eddy/v1`, plus the few constants both ends of a call must agree on.

#![allow(clippy::all, clippy::pedantic, rust_2018_idioms)]

pub mod v1 {
    tonic::include_proto!("eddy.v1");
}

/// Metadata keys carried by gRPC statuses and requests.
pub mod meta {
    /// On a "not leader" status: id of the current leader, when known.
    pub const LEADER_ID: &str = "x-eddy-leader-id";
    /// On a "not leader" status: advertised address of the current leader.
    pub const LEADER_ADDR: &str = "x-eddy-leader-addr";
    /// On a request: set by a node that forwards the call to the leader, so
    /// that a call is forwarded at most once.
    pub const FORWARDED: &str = "x-eddy-forwarded";
    /// On a RESOURCE_EXHAUSTED or UNAVAILABLE status: suggested wait before retrying.
    pub const RETRY_AFTER_MS: &str = "x-eddy-retry-after-ms";
    /// On a FAILED_PRECONDITION status: the answering node has no
    /// controller role; another endpoint may.
    pub const NOT_A_CONTROLLER: &str = "x-eddy-not-a-controller";
}

/// Largest message a Raft peer accepts: log batches and whole snapshots
/// exceed tonic's 4 MiB default.
pub const RAFT_MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

pub mod channels;
pub mod codec;
pub mod convert;
