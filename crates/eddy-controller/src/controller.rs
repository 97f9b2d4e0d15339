//! The controller as the rest of the node sees it: start it, ask it to
//! register nodes and take heartbeats, read the cluster map and the Raft
//! leader, bootstrap a new cluster, stop it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::models::ModelsRequest;
use crate::models::keeper::{KeeperConfig, NodeReport};
use eddy_core::{ClusterMap, NodeId, NodeSpec, NodeState};
use eddy_proto::channels::PeerChannels;
use eddy_proto::v1::ClusterStatusRequest;
use eddy_proto::v1::cluster_service_client::ClusterServiceClient;
use eddy_raft::{BytesSnapshots, ClusterIdentity, GrpcNetwork, RaftReceiver};
use eddy_storage::{RaftLogStore, Store};
use openraft::async_runtime::WatchReceiver;
use openraft::errors::{ClientWriteError, InitializeError, RaftError};
use openraft::{ServerState, SnapshotPolicy};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::ControllerError;
use crate::control::{ControlConfig, ControlLoop, Heard};
use crate::sm::ControllerStateMachine;
use crate::types::{CONTROLLER_GROUP, Command, CommandResponse, ControllerTypes, Outcome, RaftNode};

pub type ControllerRaft = openraft::Raft<ControllerTypes, ControllerStateMachine>;

#[derive(Debug, Clone)]
pub struct ControllerConfig {
    pub node_id: NodeId,
    pub initial_members: BTreeMap<NodeId, RaftNode>,
    pub auto_bootstrap: bool,
    pub raft_heartbeat_interval: Duration,
    pub election_timeout_min: Duration,
    pub election_timeout_max: Duration,
    pub snapshot_every_entries: u64,
    pub control: ControlConfig,
}

/// The controller group as seen from this node.
#[derive(Debug, Clone)]
pub struct ControllerStatus {
    pub leader: Option<(NodeId, String)>,
    pub term: u64,
    pub voters: Vec<NodeId>,
    pub map: Arc<ClusterMap>,
    pub log: LogPositions,
    /// This node leads and a quorum acknowledged it within the lease.
    pub confirmed_leader: bool,
    /// Broken replicas and processor panics the nodes reported; empty
    /// unless this node is the confirmed leader.
    pub problems: Arc<crate::control::NodeProblems>,
}

/// Where this replica's Raft log stands (0 for "none").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogPositions {
    pub last_log_index: u64,
    pub last_applied_index: u64,
    pub snapshot_index: u64,
    pub purged_index: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatAnswer {
    /// `None`: the controller does not know the node; it must register.
    pub state: Option<NodeState>,
    pub epoch: u64,
}

const HEARTBEAT_QUEUE: usize = 1024;
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How many times an operator's move is checked again after the table moved.
const MOVE_ATTEMPTS: u32 = 5;

pub struct Controller {
    id: NodeId,
    raft: ControllerRaft,
    map: watch::Receiver<Arc<ClusterMap>>,
    identity: ClusterIdentity,
    heartbeats: mpsc::Sender<Heard>,
    models: mpsc::Sender<ModelsRequest>,
    /// The control loop's latest planner round.
    rounds: watch::Receiver<Option<Arc<crate::planning::Round>>>,
    /// What the control loop heard is wrong on the nodes (while leading).
    problems: watch::Receiver<Arc<crate::control::NodeProblems>>,
    initial_members: BTreeMap<NodeId, RaftNode>,
    auto_bootstrap: bool,
    /// How long a leader keeps acting on its last quorum acknowledgement.
    lease: Duration,
    tasks: Vec<JoinHandle<()>>,
}

impl Controller {
    pub async fn start(
        config: ControllerConfig,
        store: Store,
        channels: PeerChannels,
    ) -> Result<Self, ControllerError> {
        let raft_config = raft_config(&config)?;
        let identity = ClusterIdentity::default();
        let (sm, map) = ControllerStateMachine::open(store.clone(), identity.clone())?;
        let network = GrpcNetwork::new(CONTROLLER_GROUP, channels.clone(), identity.clone(), BytesSnapshots);
        let log = RaftLogStore::new(store, CONTROLLER_GROUP);
        let raft = ControllerRaft::new(config.node_id, raft_config, network, log, sm)
            .await
            .map_err(|e| ControllerError::Stopped(e.to_string()))?;
        let (heartbeats, heard) = mpsc::channel(HEARTBEAT_QUEUE);
        let (models, model_requests) = mpsc::channel(crate::models::REPORT_QUEUE);
        let (rounds_tx, rounds) = watch::channel(None);
        let (problems_tx, problems) = watch::channel(Arc::default());
        let control = ControlLoop {
            raft: raft.clone(),
            map: map.clone(),
            heartbeats: heard,
            config: config.control.clone(),
            models: models.clone(),
            rounds: rounds_tx,
            problems: problems_tx,
        };
        let mut tasks = vec![
            tokio::spawn(control.run()),
            tokio::spawn(crate::models::run(raft.clone(), model_requests, KeeperConfig::default())),
        ];
        let lowest = config.initial_members.keys().next().copied();
        if config.auto_bootstrap && lowest == Some(config.node_id) {
            tasks.push(tokio::spawn(auto_bootstrap(raft.clone(), config.clone(), channels)));
        }
        Ok(Controller {
            id: config.node_id,
            raft,
            map,
            identity,
            heartbeats,
            models,
            rounds,
            problems,
            initial_members: config.initial_members,
            auto_bootstrap: config.auto_bootstrap,
            lease: config.election_timeout_min,
            tasks,
        })
    }

    pub fn raft(&self) -> &ControllerRaft {
        &self.raft
    }

    /// The receiving end of this controller's Raft transport.
    pub fn raft_receiver(&self) -> RaftReceiver<'_, ControllerTypes, ControllerStateMachine> {
        RaftReceiver { raft: &self.raft, identity: &self.identity }
    }

    /// Resolves with the reason once the controller's Raft has stopped for
    /// good (a storage failure); the node cannot serve as a voter after that.
    pub async fn stopped(&self) -> String {
        let mut metrics = self.raft.metrics();
        loop {
            let state = metrics.borrow_watched().running_state.clone();
            if let Err(fatal) = state {
                return fatal.to_string();
            }
            if metrics.changed().await.is_err() {
                return "the controller's raft has shut down".to_owned();
            }
        }
    }

    pub fn map(&self) -> Arc<ClusterMap> {
        self.map.borrow().clone()
    }

    pub fn watch_map(&self) -> watch::Receiver<Arc<ClusterMap>> {
        self.map.clone()
    }

    pub fn status(&self) -> ControllerStatus {
        let metrics = self.raft.metrics().borrow_watched().clone();
        let membership = metrics.membership_config.membership();
        let leader = metrics.current_leader.map(|id| {
            let addr = membership.get_node(&id).map(|n| n.addr.clone()).unwrap_or_default();
            (id, addr)
        });
        let confirmed_leader = metrics.state == ServerState::Leader && self.lease_held(&metrics);
        ControllerStatus {
            problems: if confirmed_leader { self.problems.borrow().clone() } else { Arc::default() },
            leader,
            term: metrics.current_term,
            voters: membership.voter_ids().collect(),
            map: self.map(),
            confirmed_leader,
            log: LogPositions {
                last_log_index: metrics.last_log_index.unwrap_or(0),
                last_applied_index: metrics.last_applied.as_ref().map_or(0, |id| id.index),
                snapshot_index: metrics.snapshot.as_ref().map_or(0, |id| id.index),
                purged_index: metrics.purged.as_ref().map_or(0, |id| id.index),
            },
        }
    }

    fn lease_held(&self, metrics: &openraft::RaftMetrics<ControllerTypes>) -> bool {
        // A lone voter is its own quorum; nobody else acknowledges it.
        let alone = metrics.membership_config.membership().voter_ids().eq([self.id]);
        alone || metrics.last_quorum_acked.as_ref().is_some_and(|at| openraft::Instant::elapsed(&**at) < self.lease)
    }

    /// Ok when this node leads the controller and a quorum acknowledged it
    /// recently; otherwise who leads. A leader cut off from the other voters
    /// stays leader in its own eyes, so the acknowledgement is what counts.
    fn ensure_leader(&self) -> Result<(), ControllerError> {
        let metrics = self.raft.metrics().borrow_watched().clone();
        if metrics.state == ServerState::Leader {
            return if self.lease_held(&metrics) { Ok(()) } else { Err(ControllerError::NoLeader) };
        }
        match self.status().leader {
            Some((leader_id, leader_addr)) if leader_id != self.id => {
                Err(ControllerError::NotLeader { leader_id, leader_addr })
            }
            _ => Err(ControllerError::NoLeader),
        }
    }

    async fn write(&self, command: Command) -> Result<CommandResponse, ControllerError> {
        let written = tokio::time::timeout(WRITE_TIMEOUT, self.raft.client_write(command))
            .await
            .map_err(|_| ControllerError::Timeout)?;
        match written {
            Ok(response) => match response.data.outcome {
                Outcome::Refused(reason) => Err(ControllerError::Refused(reason)),
                _ => Ok(response.data),
            },
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => {
                match (forward.leader_id, forward.leader_node) {
                    (Some(leader_id), Some(node)) => {
                        Err(ControllerError::NotLeader { leader_id, leader_addr: node.addr })
                    }
                    _ => Err(ControllerError::NoLeader),
                }
            }
            Err(RaftError::APIError(ClientWriteError::LogEntryDiscarded(_))) => Err(ControllerError::NoLeader),
            Err(err) => Err(ControllerError::Stopped(err.to_string())),
        }
    }

    /// Registers a node (or updates its labels) and returns the cluster id
    /// and the node's committed state.
    pub async fn register(&self, spec: NodeSpec, cluster_id: &str) -> Result<(String, NodeState), ControllerError> {
        validate_spec(&spec)?;
        self.ensure_leader()?;
        self.check_cluster(spec.id, cluster_id)?;
        let id = spec.id;
        self.write(Command::RegisterNode { spec, at_ms: crate::control::wall_clock_ms() }).await?;
        let heard = Heard { node: id, at: Instant::now(), leading: Vec::new(), broken: Vec::new(), panics: Vec::new() };
        let _ = self.heartbeats.try_send(heard);
        let map = self.map();
        let state = map.nodes.get(&id).map_or(NodeState::Up, |n| n.state);
        Ok((map.cluster_id.clone().unwrap_or_default(), state))
    }

    /// Moves a partition's replica from one node to another: recorded in the
    /// table now, carried out by the partition's leader. Returns the epoch.
    pub async fn move_replica(
        &self,
        partition: eddy_core::PartitionId,
        from: NodeId,
        to: NodeId,
    ) -> Result<u64, ControllerError> {
        self.ensure_leader()?;
        self.apply_checked(|map| crate::operator::move_replica(map, partition, from, to)).await
    }

    /// Asks a partition's leader to hand its leadership to the replica on
    /// `to`: recorded in the table in the current leader's term, which the
    /// leader reads as the request. Returns the epoch.
    pub async fn transfer_leader(&self, partition: eddy_core::PartitionId, to: NodeId) -> Result<u64, ControllerError> {
        self.ensure_leader()?;
        self.apply_checked(|map| crate::operator::transfer_leader(map, partition, to)).await
    }

    /// Marks a worker draining (or, with `undo`, up again); answers its
    /// state after the change.
    pub async fn drain(&self, node: NodeId, undo: bool) -> Result<NodeState, ControllerError> {
        self.ensure_leader()?;
        let map = self.map();
        let record = map
            .nodes
            .get(&node)
            .ok_or_else(|| ControllerError::InvalidArgument(format!("node {node} is not registered")))?;
        let from = record.state;
        let to = match (undo, from) {
            (false, NodeState::Draining) | (true, NodeState::Up) => return Ok(from),
            (false, _) => NodeState::Draining,
            (true, NodeState::Draining) => NodeState::Up,
            (true, other) => {
                return Err(ControllerError::InvalidArgument(format!(
                    "node {node} is {other}, not draining: nothing to undo"
                )));
            }
        };
        if !from.can_become(to) {
            return Err(ControllerError::InvalidArgument(format!("node {node} is {from} and cannot become {to}")));
        }
        self.write(Command::SetNodeState { node, from, to, at_ms: crate::control::wall_clock_ms() }).await?;
        Ok(self.map().nodes.get(&node).map_or(to, |n| n.state))
    }

    /// Commits the operations `check` makes of the current table. The
    /// operator asked for a change, not for a change at one epoch: when a
    /// leader report moves the table between the check and the commit, the
    /// change is checked again against the new table and retried.
    async fn apply_checked(
        &self,
        check: impl Fn(&ClusterMap) -> Result<Vec<eddy_core::Operation>, ControllerError>,
    ) -> Result<u64, ControllerError> {
        let mut attempts = 0;
        loop {
            let map = self.map();
            let (epoch, operations) = (map.table.epoch, check(&map)?);
            match self.write(Command::ApplyOperations { expected_epoch: epoch, operations }).await {
                Err(ControllerError::Refused(_)) if attempts < MOVE_ATTEMPTS && self.map().table.epoch != epoch => {
                    attempts += 1;
                }
                written => return written.map(|response| response.epoch),
            }
        }
    }

    /// Refuses a node that belongs to another cluster.
    fn check_cluster(&self, node: NodeId, cluster_id: &str) -> Result<(), ControllerError> {
        let map = self.map();
        let Some(cluster) = &map.cluster_id else {
            return Err(self.not_initialized());
        };
        if !cluster_id.is_empty() && cluster_id != cluster {
            return Err(ControllerError::WrongCluster {
                node,
                node_cluster: cluster_id.to_owned(),
                cluster: cluster.clone(),
            });
        }
        Ok(())
    }

    fn not_initialized(&self) -> ControllerError {
        let bootstrapper = self.initial_members.iter().next();
        let how = match bootstrapper {
            Some((id, node)) if self.auto_bootstrap => {
                format!(
                    "node {id} ({}) bootstraps it when it starts; start it, or run `eddyctl bootstrap` against any controller",
                    node.addr
                )
            }
            _ => "run `eddyctl bootstrap` once against any controller".to_owned(),
        };
        ControllerError::NotInitialized { how }
    }

    /// Records a heartbeat; the control loop turns silences into state changes.
    pub fn heartbeat(
        &self,
        node: NodeId,
        cluster_id: &str,
        leading: Vec<eddy_core::GroupLead>,
        broken: Vec<(eddy_core::PartitionId, String)>,
        panics: Vec<crate::panics::PanicReport>,
    ) -> Result<HeartbeatAnswer, ControllerError> {
        self.ensure_leader()?;
        self.check_cluster(node, cluster_id)?;
        let map = self.map();
        let state = map.nodes.get(&node).map(|n| n.state);
        if state.is_some() {
            // A full queue only delays noticing this heartbeat until the next.
            let _ = self.heartbeats.try_send(Heard { node, at: Instant::now(), leading, broken, panics });
        }
        Ok(HeartbeatAnswer { state, epoch: map.table.epoch })
    }

    /// Takes a worker's telemetry report (leader only); refused with a
    /// retry hint when the models task is behind.
    pub fn report_telemetry(&self, mut report: NodeReport) -> Result<(), ControllerError> {
        self.ensure_leader()?;
        // The models keep state per node and per partition: only registered
        // nodes and partitions that exist get any, so made-up ids cannot
        // grow them.
        let map = self.map();
        if map.nodes.get(&report.node).is_none_or(|n| n.state == NodeState::Removed) {
            return Err(ControllerError::Refused(format!(
                "node {} is not a registered member; telemetry is taken from members only",
                report.node
            )));
        }
        let partitions = map.settings.map_or(0, |s| s.partition_count);
        report.partitions.retain(|p| p.partition < partitions);
        self.models
            .try_send(ModelsRequest::Report(report))
            .map_err(|_| ControllerError::Busy { queued: crate::models::REPORT_QUEUE, retry_after_ms: 1000 })
    }

    /// The leader's models, as `eddyctl models` shows them.
    pub async fn models(&self) -> Result<serde_json::Value, ControllerError> {
        self.ensure_leader()?;
        let (answer, models) = oneshot::channel();
        self.ask_models(ModelsRequest::Describe(answer)).await?;
        models.await.map_err(|_| ControllerError::Stopped("the models task ended".into()))
    }

    /// The recorded load history, in the trace format the simulator replays.
    pub async fn trace(&self) -> Result<eddy_model::trace::Trace, ControllerError> {
        self.ensure_leader()?;
        let (answer, trace) = oneshot::channel();
        self.ask_models(ModelsRequest::Trace(answer)).await?;
        trace.await.map_err(|_| ControllerError::Stopped("the models task ended".into()))
    }

    /// What the planner would do now under `policy` (the cluster's own
    /// when `None`), with the live models: a dry run that changes nothing.
    pub async fn plan(&self, policy: Option<&eddy_placement::Policy>) -> Result<eddy_placement::Plan, ControllerError> {
        if let Some(policy) = policy {
            policy.validate().map_err(|e| ControllerError::InvalidArgument(format!("policy: {e}")))?;
        }
        self.ensure_leader()?;
        let (answer, inputs) = oneshot::channel();
        self.ask_models(ModelsRequest::PlannerInputs(answer)).await?;
        let inputs = inputs.await.map_err(|_| ControllerError::Stopped("the models task ended".into()))?;
        let map = self.map();
        let snapshot = eddy_placement::ClusterSnapshot::from_map(&map, &inputs.loads, Default::default());
        Ok(eddy_placement::plan(&snapshot, &inputs.models, policy.unwrap_or(&map.placement.policy)))
    }

    /// The control loop's latest planner round on this leader.
    pub fn last_round(&self) -> Result<Option<Arc<crate::planning::Round>>, ControllerError> {
        self.ensure_leader()?;
        Ok(self.rounds.borrow().clone())
    }

    /// The placement mode and policy, as committed.
    pub fn placement(&self) -> Result<eddy_core::PlacementSettings, ControllerError> {
        self.ensure_leader()?;
        Ok(self.map().placement.clone())
    }

    /// Replaces the placement mode and policy; the next round uses them.
    pub async fn set_placement(
        &self,
        placement: eddy_core::PlacementSettings,
    ) -> Result<eddy_core::PlacementSettings, ControllerError> {
        placement.policy.validate().map_err(|e| ControllerError::InvalidArgument(format!("policy: {e}")))?;
        self.ensure_leader()?;
        self.write(Command::SetPlacement { placement }).await?;
        Ok(self.map().placement.clone())
    }

    async fn ask_models(&self, request: ModelsRequest) -> Result<(), ControllerError> {
        self.models.send(request).await.map_err(|_| ControllerError::Stopped("the models task ended".into()))
    }

    /// Creates the controller group from this node's initial members.
    /// Refused, changing nothing, when the group already exists.
    pub async fn bootstrap(&self) -> Result<Vec<NodeId>, ControllerError> {
        let initialized = self.raft.is_initialized().await.map_err(|e| ControllerError::Stopped(e.to_string()))?;
        if initialized {
            return Err(ControllerError::AlreadyBootstrapped { cluster_id: self.map().cluster_id.clone() });
        }
        match self.raft.initialize(self.initial_members.clone()).await {
            Ok(()) => Ok(self.initial_members.keys().copied().collect()),
            Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {
                Err(ControllerError::AlreadyBootstrapped { cluster_id: self.map().cluster_id.clone() })
            }
            Err(err) => Err(ControllerError::Refused(err.to_string())),
        }
    }

    pub async fn shutdown(&self) {
        for task in &self.tasks {
            task.abort();
        }
        if let Err(err) = self.raft.shutdown().await {
            tracing::warn!(error = %err, "controller raft did not stop cleanly");
        }
    }
}

fn raft_config(config: &ControllerConfig) -> Result<Arc<openraft::Config>, ControllerError> {
    let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let every = config.snapshot_every_entries.max(1);
    let raft = openraft::Config {
        cluster_name: "eddy-controller".into(),
        heartbeat_interval: millis(config.raft_heartbeat_interval),
        election_timeout_min: millis(config.election_timeout_min),
        election_timeout_max: millis(config.election_timeout_max),
        install_snapshot_timeout: 10_000,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(every),
        // Keep some log after a snapshot so that a briefly lagging voter
        // catches up from the log rather than by a snapshot.
        max_in_snapshot_log_to_keep: every / 2,
        replication_lag_threshold: every * 2,
        // The state machine lives in memory and is rebuilt from the log on
        // restart; a restarted node must win an election before it leads.
        enable_leader_restore: Some(false),
        // A node that was paused or cut off asks before it raises the term,
        // so its return does not unseat a healthy leader.
        enable_pre_vote: Some(true),
        ..Default::default()
    };
    raft.validate().map(Arc::new).map_err(|e| ControllerError::InvalidArgument(format!("raft timing: {e}")))
}

fn validate_spec(spec: &NodeSpec) -> Result<(), ControllerError> {
    let invalid = |why: String| Err(ControllerError::InvalidArgument(why));
    if spec.id == 0 {
        return invalid("node id must be 1 or more".into());
    }
    let addr_ok =
        spec.addr.rsplit_once(':').is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if !addr_ok {
        return invalid(format!("node address `{}` is not host:port", spec.addr));
    }
    if spec.zone.trim().is_empty() {
        return invalid("node zone must not be empty".into());
    }
    if !(spec.capacity_cores.is_finite() && spec.capacity_cores > 0.0) {
        return invalid(format!("capacity_cores must be above 0, got {}", spec.capacity_cores));
    }
    if !(spec.price_per_hour.is_finite() && spec.price_per_hour >= 0.0) {
        return invalid(format!("price_per_hour must be 0 or more, got {}", spec.price_per_hour));
    }
    if spec.roles.is_empty() {
        return invalid("a node needs at least one role".into());
    }
    Ok(())
}

/// Bootstraps a new cluster when this node's storage is empty and no other
/// initial member answers as part of an existing one. A member restarted
/// with an empty data dir thus rejoins its cluster instead of founding a
/// second one.
async fn auto_bootstrap(raft: ControllerRaft, config: ControllerConfig, channels: PeerChannels) {
    match raft.is_initialized().await {
        Ok(true) => return,
        Ok(false) => {}
        Err(err) => {
            tracing::error!(error = %err, "cannot read controller state; not bootstrapping");
            return;
        }
    }
    for (id, node) in config.initial_members.iter().filter(|(id, _)| **id != config.node_id) {
        if peer_knows_a_cluster(&channels, &node.addr).await {
            tracing::info!(peer = id, addr = %node.addr, "an initial member already belongs to a cluster; waiting to be contacted by its leader");
            return;
        }
    }
    match raft.initialize(config.initial_members.clone()).await {
        Ok(()) => {
            let voters: Vec<NodeId> = config.initial_members.keys().copied().collect();
            tracing::info!(?voters, "bootstrapped a new controller group");
        }
        Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
        Err(err) => tracing::error!(error = %err, "bootstrap failed"),
    }
}

async fn peer_knows_a_cluster(channels: &PeerChannels, addr: &str) -> bool {
    let Ok(channel) = channels.get(addr) else { return false };
    let mut client = ClusterServiceClient::new(channel);
    let call = client.cluster_status(ClusterStatusRequest {});
    match tokio::time::timeout(Duration::from_secs(1), call).await {
        Ok(Ok(status)) => !status.into_inner().voters.is_empty(),
        _ => false,
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}
