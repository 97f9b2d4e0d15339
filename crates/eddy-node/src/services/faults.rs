//! Fault injection for tests: cut a node's links to chosen peers.

use eddy_proto::channels::PeerChannels;
use eddy_proto::v1::fault_service_server::FaultService;
use eddy_proto::v1::{SetFaultsRequest, SetFaultsResponse};
use tonic::{Request, Response, Status};

/// Environment variable that enables fault injection when set to 1.
pub const FAULT_INJECTION_ENV: &str = "EDDY_FAULT_INJECTION";

pub struct FaultApi {
    pub enabled: bool,
    pub channels: PeerChannels,
}

#[tonic::async_trait]
impl FaultService for FaultApi {
    async fn set_faults(&self, request: Request<SetFaultsRequest>) -> Result<Response<SetFaultsResponse>, Status> {
        if !self.enabled {
            return Err(Status::permission_denied(format!(
                "fault injection is off; start eddyd with {FAULT_INJECTION_ENV}=1 to allow it"
            )));
        }
        let blocked = request.into_inner().blocked_addrs.into_iter().collect();
        tracing::warn!(?blocked, "fault injection: links cut");
        self.channels.set_blocked(blocked);
        Ok(Response::new(SetFaultsResponse {}))
    }
}
