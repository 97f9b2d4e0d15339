//! One local replica of a partition: its Raft group, its state machine's
//! view of the event log, and (on the leader) its proposer.

use std::collections::BTreeMap;
use std::sync::Arc;

use eddy_core::{NodeId, PartitionId};
use eddy_proto::channels::PeerChannels;
use eddy_raft::{AppendBatcher, ClusterIdentity, GrpcNetwork, RaftNode};
use eddy_storage::{RaftLogStore, Store};
use openraft::async_runtime::WatchReceiver;
use openraft::{ServerState, SnapshotPolicy};
use tokio::sync::watch;

use crate::WorkerError;
use crate::config::WorkerConfig;
use crate::dir::PartitionDir;
use crate::processors::runner::RunnerContext;
use crate::processors::{ProcessorFactory, ProcessorRunner, ProcessorsConfig};
use crate::proposer::Proposer;
use crate::sm::{LogView, PartitionStateMachine};
use crate::snapshot::FileSnapshots;
use crate::types::{PartitionTypes, group_of};

pub type PartitionRaft = openraft::Raft<PartitionTypes, PartitionStateMachine>;

/// Who leads a partition, as this replica knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leadership {
    /// This node leads, in `term`.
    Here {
        term: u64,
    },
    Elsewhere {
        leader_id: NodeId,
        leader_addr: String,
    },
    Unknown,
}

/// Runs the partition's processors while this replica leads, and logs
/// when it gains or loses leadership.
async fn follow_leadership(
    partition: PartitionId,
    raft: PartitionRaft,
    view: watch::Receiver<LogView>,
    ctx: ReplicaContext,
    runner: Arc<std::sync::Mutex<Option<ProcessorRunner>>>,
) {
    // Server metrics change with the vote, state or membership only, not
    // with every entry applied, so this task wakes only when it may matter.
    let mut server = raft.server_metrics();
    let mut leading = false;
    loop {
        let state = server.borrow_watched().state;
        if (state == ServerState::Leader) != leading {
            let term = raft.metrics().borrow_watched().current_term;
            leading = !leading;
            if leading {
                caught_up_as_leader(partition, &raft).await;
            }
            let started = leading.then(|| {
                ProcessorRunner::start(RunnerContext {
                    partition,
                    raft: raft.clone(),
                    view: view.clone(),
                    config: ctx.processors.clone(),
                    extra: ctx.extra_processors.clone(),
                    cpu: ctx.cpu.clone(),
                    meter: ctx.meters.meter(partition),
                    panics: ctx.panics.clone(),
                    uid_salt: ctx.identity.get().map_or(0, |id| eddy_core::EventUid::salt(id)),
                })
            });
            if let Ok(mut slot) = runner.lock() {
                *slot = started;
            }
            if leading {
                tracing::info!(partition, term, "partition leadership acquired");
            } else {
                tracing::info!(partition, term, "partition leadership lost");
            }
        }
        if server.changed().await.is_err() {
            return;
        }
    }
}

/// How long a new leader waits to apply what was committed before it.
const CATCH_UP_AS_LEADER: std::time::Duration = std::time::Duration::from_secs(5);

/// Waits until a new leader has applied its log up to its election entry:
/// what the old leader committed last (a hand-over checkpoint of the
/// processors, say) may not be applied here yet when leadership arrives,
/// and the processors start from what is applied.
async fn caught_up_as_leader(partition: PartitionId, raft: &PartitionRaft) {
    let mut metrics = raft.metrics();
    let target = metrics.borrow_watched().last_log_index.unwrap_or(0);
    let applied = async {
        loop {
            let done = {
                let m = metrics.borrow_watched();
                m.state != ServerState::Leader || m.last_applied.as_ref().map_or(0, |id| id.index) >= target
            };
            if done || metrics.changed().await.is_err() {
                return;
            }
        }
    };
    if tokio::time::timeout(CATCH_UP_AS_LEADER, applied).await.is_err() {
        tracing::warn!(partition, target, "new leader not caught up after 5 s; starting its processors anyway");
    }
}

pub struct Replica {
    pub partition: PartitionId,
    pub node_id: NodeId,
    /// How long a leader acts on its last quorum acknowledgement.
    lease: std::time::Duration,
    pub raft: PartitionRaft,
    pub view: watch::Receiver<LogView>,
    pub dir: PartitionDir,
    proposer: Proposer,
    /// The processors, while this replica leads.
    runner: Arc<std::sync::Mutex<Option<ProcessorRunner>>>,
}

/// What every replica on a node shares.
#[derive(Clone)]
pub struct ReplicaContext {
    pub node_id: NodeId,
    pub store: Store,
    pub channels: PeerChannels,
    /// Batches the partition groups' append-entries requests per peer.
    pub appends: AppendBatcher,
    pub identity: ClusterIdentity,
    pub config: Arc<WorkerConfig>,
    pub partitions_dir: std::path::PathBuf,
    pub processors: ProcessorsConfig,
    /// Processors added by whoever embeds the worker.
    pub extra_processors: Vec<Arc<dyn ProcessorFactory>>,
    /// Where processor work runs: as many cores as the node is given.
    pub cpu: Arc<crate::cpu::CpuPool>,
    /// Telemetry of the partitions this node leads.
    pub meters: Arc<crate::telemetry::Meters>,
    /// Recent processor panics on this node.
    pub panics: Arc<crate::panics::PanicLog>,
}

impl Replica {
    pub async fn open(partition: PartitionId, ctx: &ReplicaContext) -> Result<Self, WorkerError> {
        let storage = |reason: String| WorkerError::Storage { partition, reason };
        let dir = PartitionDir::new(ctx.partitions_dir.join(partition.to_string()));
        let config = &ctx.config;
        let (sm, view) = PartitionStateMachine::open(partition, dir.clone(), config.event_log)
            .map_err(|e| storage(e.to_string()))?;
        let millis = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let raft_config = openraft::Config {
            cluster_name: format!("eddy-partition-{partition}"),
            heartbeat_interval: millis(config.raft_heartbeat_interval),
            election_timeout_min: millis(config.election_timeout_min),
            election_timeout_max: millis(config.election_timeout_max),
            // A whole event log may travel; the sender bounds it by its own progress.
            install_snapshot_timeout: 600_000,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_every_entries.max(1)),
            max_in_snapshot_log_to_keep: config.keep_entries_after_snapshot,
            replication_lag_threshold: config.keep_entries_after_snapshot.max(1) * 2,
            enable_leader_restore: Some(false),
            enable_pre_vote: Some(true),
            ..Default::default()
        }
        .validate()
        .map_err(|e| WorkerError::InvalidArgument(format!("partition raft timing: {e}")))?;
        let network = GrpcNetwork::new(group_of(partition), ctx.channels.clone(), ctx.identity.clone(), FileSnapshots)
            .with_batcher(ctx.appends.clone());
        let log = RaftLogStore::new(ctx.store.clone(), group_of(partition));
        let raft = PartitionRaft::new(ctx.node_id, Arc::new(raft_config), network, log, sm)
            .await
            .map_err(|e| WorkerError::Stopped { partition, reason: e.to_string() })?;
        let proposer = Proposer::start(partition, raft.clone(), config);
        let runner = Arc::new(std::sync::Mutex::new(None));
        tokio::spawn(follow_leadership(partition, raft.clone(), view.clone(), ctx.clone(), runner.clone()));
        Ok(Replica {
            partition,
            node_id: ctx.node_id,
            lease: config.election_timeout_min,
            raft,
            view,
            dir,
            proposer,
            runner,
        })
    }

    pub fn proposer(&self) -> &Proposer {
        &self.proposer
    }

    /// Runs `f` on the processors, if this replica runs them now.
    pub fn with_runner<T>(&self, f: impl FnOnce(&ProcessorRunner) -> T) -> Option<T> {
        self.runner.lock().ok()?.as_ref().map(f)
    }

    pub fn leadership(&self) -> Leadership {
        // Every submit asks: read the metrics in place rather than clone them.
        let receiver = self.raft.metrics();
        let metrics = receiver.borrow_watched();
        if metrics.state == ServerState::Leader {
            // A leader cut off from its followers stays leader in its own
            // eyes; without a recent quorum it cannot commit, so it does not
            // claim the partition.
            let alone = metrics.membership_config.membership().voter_ids().eq([self.node_id]);
            let acked =
                metrics.last_quorum_acked.as_ref().is_some_and(|at| openraft::Instant::elapsed(&**at) < self.lease);
            return if alone || acked { Leadership::Here { term: metrics.current_term } } else { Leadership::Unknown };
        }
        match metrics.current_leader {
            Some(id) => {
                let addr = metrics.membership_config.membership().get_node(&id).map(|n| n.addr.clone());
                match addr {
                    Some(leader_addr) => Leadership::Elsewhere { leader_id: id, leader_addr },
                    None => Leadership::Unknown,
                }
            }
            None => Leadership::Unknown,
        }
    }

    /// Ok when this replica leads; otherwise the error naming the leader.
    pub fn ensure_leader(&self) -> Result<(), WorkerError> {
        match self.leadership() {
            Leadership::Here { .. } => Ok(()),
            Leadership::Elsewhere { leader_id, leader_addr } => {
                Err(WorkerError::NotLeader { partition: self.partition, leader_id, leader_addr })
            }
            Leadership::Unknown => Err(WorkerError::NoLeader { partition: self.partition }),
        }
    }

    /// Creates the group with `members` as voters, unless it exists.
    pub async fn initialize(&self, members: BTreeMap<NodeId, RaftNode>) -> Result<bool, WorkerError> {
        let partition = self.partition;
        let initialized =
            self.raft.is_initialized().await.map_err(|e| WorkerError::Stopped { partition, reason: e.to_string() })?;
        if initialized {
            return Ok(false);
        }
        match self.raft.initialize(members).await {
            Ok(()) => Ok(true),
            Err(openraft::errors::RaftError::APIError(openraft::errors::InitializeError::NotAllowed(_))) => Ok(false),
            Err(err) => Err(WorkerError::Stopped { partition, reason: err.to_string() }),
        }
    }

    /// Deletes this replica's event log and Raft log (after `shutdown`).
    pub async fn destroy(&self, store: &eddy_storage::Store) -> Result<(), String> {
        store.drop_group(group_of(self.partition)).await.map_err(|e| e.to_string())?;
        std::fs::remove_dir_all(self.dir.root()).map_err(|e| e.to_string())
    }

    pub async fn shutdown(&self) {
        if let Err(err) = self.raft.shutdown().await {
            tracing::warn!(partition = self.partition, error = %err, "partition raft did not stop cleanly");
        }
    }
}
