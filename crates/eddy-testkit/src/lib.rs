//! A harness for tests that run real Eddy clusters: `eddyd` processes on
//! loopback ports, each with its manifest, data dir and log in a temp dir.
//! Nodes can be killed, paused, resumed and restarted; every process the
//! harness starts is killed when the cluster is dropped, also when a test
//! fails.

mod cluster;
mod ports;
mod process;

pub use cluster::{ClusterSpec, TestCluster};
pub use nix::sys::signal::Signal;
pub use ports::free_port;
pub use process::{Bins, tied_command};

pub mod checker;
mod checks;
mod events;
pub mod scrape;
pub mod workload;

pub use checks::{controller_client, healthy, hot_spot, placement, re_registration};
pub use events::{EventRef, acked_events};
