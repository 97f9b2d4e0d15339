//! Eddy's client library: finds a working node among the configured
//! endpoints, follows "not leader" answers, and turns wire messages into
//! plain views that print as JSON.

mod cluster;
mod endpoint;
mod error;
pub mod events;
pub mod producer;
pub mod stream;
pub mod view;

pub use cluster::ClusterClient;
pub use endpoint::{DEFAULT_ENDPOINT, normalize_endpoint, parse_endpoints};
pub use error::ClientError;
