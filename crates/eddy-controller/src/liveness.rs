//! Liveness from heartbeats: which committed state transitions the silence
//! of each node calls for. Pure: the caller measures the silences.

use std::collections::BTreeMap;

use eddy_core::{NodeId, NodeRecord, NodeState};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LivenessConfig {
    pub suspect_after_ms: u64,
    pub down_after_ms: u64,
}

/// A committed state change the leader should propose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub node: NodeId,
    pub from: NodeState,
    pub to: NodeState,
}

/// What the leader knows of a node's recent heartbeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Silence {
    /// Last heartbeat this many ms ago.
    Heard(u64),
    /// No heartbeat since this leader took over, this many ms ago. A new
    /// leader gives every node this grace instead of trusting old state.
    NotYet(u64),
}

impl Silence {
    fn ms(self) -> u64 {
        match self {
            Silence::Heard(ms) | Silence::NotYet(ms) => ms,
        }
    }
}

/// `silence` holds, for each node, how long the leader has not heard from
/// it; a node missing from it counts as not heard since a moment ago.
pub fn transitions(
    nodes: &BTreeMap<NodeId, NodeRecord>,
    silence: &BTreeMap<NodeId, Silence>,
    config: LivenessConfig,
) -> Vec<Transition> {
    nodes
        .values()
        .filter_map(|record| {
            let silence = silence.get(&record.id()).copied().unwrap_or(Silence::NotYet(0));
            let to = next_state(record.state, silence, config)?;
            Some(Transition { node: record.id(), from: record.state, to })
        })
        .collect()
}

fn next_state(state: NodeState, silence: Silence, config: LivenessConfig) -> Option<NodeState> {
    // Only a real heartbeat brings a node back; a grace period does not.
    let heard = matches!(silence, Silence::Heard(ms) if ms < config.suspect_after_ms);
    let gone = silence.ms() >= config.down_after_ms;
    let quiet = silence.ms() >= config.suspect_after_ms;
    match state {
        NodeState::Up if gone => Some(NodeState::Down),
        NodeState::Up if quiet => Some(NodeState::Suspect),
        NodeState::Suspect if gone => Some(NodeState::Down),
        NodeState::Suspect | NodeState::Down if heard => Some(NodeState::Up),
        // Draining and removed are the operator's; liveness leaves them be.
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use eddy_core::{NodeSpec, Role};

    use super::*;

    const CONFIG: LivenessConfig = LivenessConfig { suspect_after_ms: 1000, down_after_ms: 3000 };

    fn nodes(states: &[NodeState]) -> BTreeMap<NodeId, NodeRecord> {
        states
            .iter()
            .enumerate()
            .map(|(i, state)| {
                let id = i as NodeId + 1;
                let spec = NodeSpec {
                    id,
                    addr: String::new(),
                    zone: "z".into(),
                    capacity_cores: 1.0,
                    price_per_hour: 0.0,
                    roles: vec![Role::Worker],
                };
                (id, NodeRecord { spec, state: *state, state_since_ms: 0 })
            })
            .collect()
    }

    fn after(state: NodeState, silence: u64) -> Option<NodeState> {
        let nodes = nodes(&[state]);
        let silence = BTreeMap::from([(1, Silence::Heard(silence))]);
        transitions(&nodes, &silence, CONFIG).first().map(|t| t.to)
    }

    #[test]
    fn silence_walks_up_to_suspect_to_down() {
        assert_eq!(after(NodeState::Up, 999), None);
        assert_eq!(after(NodeState::Up, 1000), Some(NodeState::Suspect));
        assert_eq!(after(NodeState::Suspect, 2999), None);
        assert_eq!(after(NodeState::Suspect, 3000), Some(NodeState::Down));
        assert_eq!(after(NodeState::Down, 50_000), None);
    }

    #[test]
    fn a_long_silent_up_node_goes_straight_down() {
        assert_eq!(after(NodeState::Up, 3000), Some(NodeState::Down));
    }

    #[test]
    fn a_heard_node_comes_back_up() {
        assert_eq!(after(NodeState::Suspect, 10), Some(NodeState::Up));
        assert_eq!(after(NodeState::Down, 10), Some(NodeState::Up));
    }

    #[test]
    fn operator_states_are_left_alone() {
        assert_eq!(after(NodeState::Draining, 1_000_000), None);
        assert_eq!(after(NodeState::Removed, 0), None);
    }

    #[test]
    fn a_new_leader_grants_grace_but_revives_nobody() {
        let nodes = nodes(&[NodeState::Up, NodeState::Down, NodeState::Suspect]);
        let fresh = BTreeMap::from([(1, Silence::NotYet(10)), (2, Silence::NotYet(10)), (3, Silence::NotYet(10))]);
        assert_eq!(transitions(&nodes, &fresh, CONFIG), vec![]);
        let later =
            BTreeMap::from([(1, Silence::NotYet(1500)), (2, Silence::NotYet(1500)), (3, Silence::NotYet(3000))]);
        assert_eq!(
            transitions(&nodes, &later, CONFIG),
            vec![
                Transition { node: 1, from: NodeState::Up, to: NodeState::Suspect },
                Transition { node: 3, from: NodeState::Suspect, to: NodeState::Down },
            ]
        );
    }
}
