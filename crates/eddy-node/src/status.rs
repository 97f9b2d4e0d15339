//! The one place where errors become gRPC statuses.

use eddy_controller::ControllerError;
use eddy_proto::meta;
use eddy_worker::WorkerError;
use tonic::metadata::MetadataValue;
use tonic::{Code, Status};

/// How long a client should wait before retrying a call that found no leader.
const RETRY_AFTER_MS: u64 = 500;

pub fn controller_status(err: &ControllerError) -> Status {
    let message = err.to_string();
    match err {
        ControllerError::NotLeader { leader_id, leader_addr } => {
            not_leader(message, Some(*leader_id), Some(leader_addr.as_str()))
        }
        ControllerError::NoLeader | ControllerError::NotInitialized { .. } | ControllerError::Timeout => {
            retry_later(Status::unavailable(message))
        }
        ControllerError::Stopped(_) => Status::unavailable(message),
        ControllerError::Busy { retry_after_ms, .. } => {
            let mut status = Status::resource_exhausted(message);
            status.metadata_mut().insert(meta::RETRY_AFTER_MS, MetadataValue::from(*retry_after_ms));
            status
        }
        ControllerError::AlreadyBootstrapped { .. } => Status::already_exists(message),
        ControllerError::WrongCluster { .. } | ControllerError::Refused(_) => Status::failed_precondition(message),
        ControllerError::InvalidArgument(_) => Status::invalid_argument(message),
        ControllerError::Storage(_) | ControllerError::Io(_) => Status::internal(message),
    }
}

pub fn worker_status(err: &WorkerError) -> Status {
    let message = err.to_string();
    match err {
        WorkerError::NotLeader { leader_id, leader_addr, .. } => {
            not_leader(message, Some(*leader_id), Some(leader_addr.as_str()))
        }
        WorkerError::NoLeader { .. } | WorkerError::NotReady => retry_later(Status::unavailable(message)),
        WorkerError::Overloaded { retry_after_ms, .. } => {
            let mut status = Status::resource_exhausted(message);
            status.metadata_mut().insert(meta::RETRY_AFTER_MS, MetadataValue::from(*retry_after_ms));
            status
        }
        // Can never fit, however long the client waits: not RESOURCE_EXHAUSTED,
        // which retrying clients read as "later".
        WorkerError::TooLarge(_) => Status::invalid_argument(message),
        WorkerError::InvalidArgument(_) => Status::invalid_argument(message),
        WorkerError::OutOfOrder { .. } => Status::failed_precondition(message),
        WorkerError::Gone { .. } => Status::out_of_range(message),
        WorkerError::Stopped { .. } => Status::unavailable(message),
        WorkerError::Storage { .. } => Status::internal(message),
    }
}

/// A "not leader" answer; carries the leader's id and address when known.
pub fn not_leader(message: String, leader_id: Option<u64>, leader_addr: Option<&str>) -> Status {
    let mut status = Status::new(Code::FailedPrecondition, message);
    if let Some(id) = leader_id {
        status.metadata_mut().insert(meta::LEADER_ID, MetadataValue::from(id));
    }
    if let Some(addr) = leader_addr.and_then(|a| MetadataValue::try_from(a).ok()) {
        status.metadata_mut().insert(meta::LEADER_ADDR, addr);
    }
    status
}

fn retry_later(mut status: Status) -> Status {
    status.metadata_mut().insert(meta::RETRY_AFTER_MS, MetadataValue::from(RETRY_AFTER_MS));
    status
}

/// The leader address a "not leader" status names, if any.
pub fn leader_addr(status: &Status) -> Option<String> {
    let addr = status.metadata().get(meta::LEADER_ADDR)?.to_str().ok()?;
    (!addr.is_empty()).then(|| addr.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_leader_carries_the_leader() {
        let err = ControllerError::NotLeader { leader_id: 2, leader_addr: "127.0.0.1:7102".into() };
        let status = controller_status(&err);
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert_eq!(leader_addr(&status).as_deref(), Some("127.0.0.1:7102"));
        assert_eq!(status.metadata().get(meta::LEADER_ID).and_then(|v| v.to_str().ok()), Some("2"));
    }

    #[test]
    fn codes_follow_what_the_caller_can_do() {
        assert_eq!(controller_status(&ControllerError::NoLeader).code(), Code::Unavailable);
        let exists = ControllerError::AlreadyBootstrapped { cluster_id: Some("c".into()) };
        assert_eq!(controller_status(&exists).code(), Code::AlreadyExists);
        assert_eq!(controller_status(&ControllerError::InvalidArgument("x".into())).code(), Code::InvalidArgument);
        assert!(controller_status(&ControllerError::NoLeader).metadata().get(meta::RETRY_AFTER_MS).is_some());
    }
}
