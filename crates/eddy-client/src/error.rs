//! Errors a client call can end with, each saying what to try next.

use std::fmt;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid endpoint `{endpoint}`: {reason}")]
    InvalidEndpoint { endpoint: String, reason: String },
    #[error("no endpoint answered ({}); check that eddyd runs and that --endpoints or EDDY_ENDPOINTS point at it", Tried(.tried))]
    Unreachable { tried: Vec<(String, String)> },
    #[error("{code}: {message}")]
    Refused { code: tonic::Code, message: String },
    #[error("the server sent a malformed answer: {0}")]
    Malformed(String),
}

impl ClientError {
    pub fn code(&self) -> Option<tonic::Code> {
        match self {
            ClientError::Refused { code, .. } => Some(*code),
            _ => None,
        }
    }
}

impl From<tonic::Status> for ClientError {
    fn from(status: tonic::Status) -> Self {
        ClientError::Refused { code: status.code(), message: status.message().to_owned() }
    }
}

struct Tried<'a>(&'a [(String, String)]);

impl fmt::Display for Tried<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (endpoint, why)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{endpoint}: {why}")?;
        }
        Ok(())
    }
}
