//! Nodes: who they are (spec), what they may do (roles), and where they are
//! in their lifecycle (state).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Operator-assigned node id; never 0 (0 means "none" on the wire).
pub type NodeId = u64;

/// A node's lifecycle state in the committed registry.
///
/// `Up`, `Suspect` and `Down` follow heartbeats; `Draining` and `Removed`
/// are operator decisions that heartbeats do not undo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    Up,
    Suspect,
    Down,
    Draining,
    Removed,
}

impl NodeState {
    pub const ALL: [NodeState; 5] =
        [NodeState::Up, NodeState::Suspect, NodeState::Down, NodeState::Draining, NodeState::Removed];

    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Up => "up",
            NodeState::Suspect => "suspect",
            NodeState::Down => "down",
            NodeState::Draining => "draining",
            NodeState::Removed => "removed",
        }
    }

    /// Whether the registry accepts a committed change from `self` to `to`.
    ///
    /// `Removed` is final: a removed id must not come back with stale data.
    pub fn can_become(self, to: NodeState) -> bool {
        use NodeState::*;
        match (self, to) {
            (Removed, _) => false,
            (from, to) if from == to => false,
            (Up, Suspect) | (Suspect, Down) | (Suspect | Down, Up) => true,
            // Liveness may also notice a node that went silent while draining,
            // but only the operator moves it out of draining.
            (Draining, Up) => true,
            (_, Draining) | (_, Removed) => true,
            // A jump straight to down happens when a new leader finds a node
            // silent for longer than the down timeout.
            (Up, Down) => true,
            _ => false,
        }
    }
}

impl fmt::Display for NodeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that names no known value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{value}`; expected one of: {expected}")]
pub struct ParseError {
    pub what: &'static str,
    pub value: String,
    pub expected: &'static str,
}

impl FromStr for NodeState {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NodeState::ALL.into_iter().find(|state| state.as_str() == s).ok_or_else(|| ParseError {
            what: "node state",
            value: s.to_owned(),
            expected: "up, suspect, down, draining, removed",
        })
    }
}

/// What a node does in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Votes in the controller Raft group and can lead it.
    Controller,
    /// Hosts partition replicas.
    Worker,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Controller => "controller",
            Role::Worker => "worker",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "controller" => Ok(Role::Controller),
            "worker" => Ok(Role::Worker),
            _ => Err(ParseError { what: "role", value: s.to_owned(), expected: "controller, worker" }),
        }
    }
}

/// What a node says about itself when it registers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeSpec {
    pub id: NodeId,
    /// Advertised gRPC address, `host:port`.
    pub addr: String,
    pub zone: String,
    pub capacity_cores: f64,
    pub price_per_hour: f64,
    pub roles: Vec<Role>,
}

impl NodeSpec {
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

/// A registered node with its committed lifecycle state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub spec: NodeSpec,
    pub state: NodeState,
    /// Proposer's wall clock (ms since the Unix epoch) when `state` was committed.
    pub state_since_ms: u64,
}

impl NodeRecord {
    pub fn id(&self) -> NodeId {
        self.spec.id
    }

    /// Up and a worker: may receive new replicas.
    pub fn accepts_replicas(&self) -> bool {
        self.state == NodeState::Up && self.spec.has_role(Role::Worker)
    }
}

/// The path every node serves its Prometheus metrics at, on its own address.
pub const METRICS_PATH: &str = "/metrics";

/// Where the node at `addr` (host:port) serves its metrics.
pub fn metrics_url(addr: &str) -> String {
    format!("http://{addr}{METRICS_PATH}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_through_strings() {
        for state in NodeState::ALL {
            assert_eq!(state.as_str().parse::<NodeState>(), Ok(state));
        }
        let err = "sleeping".parse::<NodeState>().unwrap_err();
        assert!(err.to_string().contains("sleeping"), "{err}");
    }

    #[test]
    fn removed_is_final_and_self_transitions_are_refused() {
        for to in NodeState::ALL {
            assert!(!NodeState::Removed.can_become(to));
        }
        for state in NodeState::ALL {
            assert!(!state.can_become(state));
        }
    }

    #[test]
    fn liveness_path_is_allowed_but_not_skipping_back_from_down() {
        assert!(NodeState::Up.can_become(NodeState::Suspect));
        assert!(NodeState::Suspect.can_become(NodeState::Down));
        assert!(NodeState::Down.can_become(NodeState::Up));
        assert!(!NodeState::Down.can_become(NodeState::Suspect));
        assert!(NodeState::Up.can_become(NodeState::Draining));
    }

    #[test]
    fn roles_parse() {
        assert_eq!("worker".parse::<Role>(), Ok(Role::Worker));
        assert!("boss".parse::<Role>().is_err());
    }
}
