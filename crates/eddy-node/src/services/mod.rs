//! gRPC services of a node: the client API, the controller API and the Raft
//! transport.

mod cluster;
mod controller;
mod events;
mod faults;
mod query;
mod raft;
mod telemetry;

pub use cluster::ClusterApi;
pub use controller::ControllerApi;
pub use events::{EventApi, now_ms};
pub use faults::{FAULT_INJECTION_ENV, FaultApi};
pub use raft::RaftApi;

use eddy_core::NodeId;
use tonic::Status;

fn no_controller_role(node: NodeId) -> Status {
    let mut status =
        Status::failed_precondition(format!("node {node} has no controller role; send this call to a controller node"));
    status.metadata_mut().insert(eddy_proto::meta::NOT_A_CONTROLLER, tonic::metadata::MetadataValue::from_static("1"));
    status
}
