//! The worker role of a node: opens a replica for every partition the
//! controller's table places here, creates partition groups the first time,
//! and answers submits and reads for the partitions it leads.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use eddy_core::{ClusterMap, NodeId, PartitionId};
use eddy_proto::v1;
use eddy_raft::RaftNode;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::WorkerError;
use crate::replica::{Leadership, Replica, ReplicaContext};

/// How often the worker reconciles even when the map did not change.
const RECONCILE_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

fn replica_initialized(replica: &Replica) -> bool {
    !crate::membership::voters(replica).is_empty()
}

pub struct Worker {
    ctx: ReplicaContext,
    replicas: RwLock<BTreeMap<PartitionId, Arc<Replica>>>,
    /// Partitions whose membership change or leader transfer this node is
    /// carrying out.
    converging: Arc<std::sync::Mutex<std::collections::BTreeSet<PartitionId>>>,
    map: watch::Receiver<Arc<ClusterMap>>,
    /// Replicas the table places here that cannot be opened, and why.
    broken: std::sync::Mutex<BTreeMap<PartitionId, String>>,
    /// Spreads keyless submits over the partitions this node leads.
    next_keyless: AtomicUsize,
    task: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl Worker {
    /// Starts the worker; it follows `maps` (the cluster map as the node
    /// sees it) to open and create replicas.
    pub fn start(ctx: ReplicaContext, mut maps: watch::Receiver<Arc<v1::PartitionMap>>) -> Arc<Worker> {
        let (publish, map) = watch::channel(Arc::new(ClusterMap::default()));
        let worker = Arc::new(Worker {
            ctx,
            replicas: RwLock::new(BTreeMap::new()),
            converging: Default::default(),
            broken: Default::default(),
            map,
            next_keyless: AtomicUsize::new(0),
            task: std::sync::Mutex::new(None),
        });
        let weak = Arc::downgrade(&worker);
        let task = tokio::spawn(async move {
            loop {
                let wire = maps.borrow_and_update().clone();
                match eddy_proto::convert::map_from_wire(&wire) {
                    Ok(map) if map.settings.is_some() => {
                        let map = Arc::new(map);
                        publish.send_replace(map.clone());
                        let Some(worker) = weak.upgrade() else { return };
                        worker.reconcile(&map).await;
                        worker.converge_led(&map);
                        worker.drop_departed(&map).await;
                        worker.tidy_strays(&map).await;
                    }
                    Ok(_) => {}
                    Err(err) => tracing::warn!(error = %err, "cannot read the partition map"),
                }
                // Also now and then: leadership and catch-up change without
                // the map changing.
                tokio::select! {
                    changed = maps.changed() => if changed.is_err() { return },
                    () = tokio::time::sleep(RECONCILE_EVERY) => {}
                }
                if let Some(worker) = weak.upgrade() {
                    worker.apply_retention();
                }
            }
        });
        if let Ok(mut slot) = worker.task.lock() {
            *slot = Some(task);
        }
        worker
    }

    pub fn identity(&self) -> &eddy_raft::ClusterIdentity {
        &self.ctx.identity
    }

    pub fn node_id(&self) -> NodeId {
        self.ctx.node_id
    }

    pub fn meters(&self) -> &crate::telemetry::Meters {
        &self.ctx.meters
    }

    pub fn cpu_pool(&self) -> &crate::cpu::CpuPool {
        &self.ctx.cpu
    }

    pub fn map(&self) -> Arc<ClusterMap> {
        self.map.borrow().clone()
    }

    pub fn replica(&self, partition: PartitionId) -> Option<Arc<Replica>> {
        self.replicas.read().ok()?.get(&partition).cloned()
    }

    fn replicas(&self) -> Vec<Arc<Replica>> {
        self.replicas.read().map(|r| r.values().cloned().collect()).unwrap_or_default()
    }

    /// Every local replica with what its meter counted since the last call.
    pub fn telemetry(&self) -> Vec<crate::telemetry::ReplicaTelemetry> {
        let mut readings = self.ctx.meters.drain();
        self.replicas()
            .iter()
            .map(|r| crate::telemetry::ReplicaTelemetry {
                partition: r.partition,
                leader: matches!(r.leadership(), Leadership::Here { .. }),
                reading: readings.remove(&r.partition),
                queue_depth: r.proposer().queued(),
                log_bytes: r.view.borrow().log.size_bytes(),
            })
            .collect()
    }

    /// Partitions whose group this node leads, with the term.
    pub fn leading(&self) -> Vec<(PartitionId, u64)> {
        self.replicas()
            .iter()
            .filter_map(|r| match r.leadership() {
                Leadership::Here { term } => Some((r.partition, term)),
                _ => None,
            })
            .collect()
    }

    /// The groups this node leads, with their committed voters, for the
    /// heartbeat.
    pub fn leads(&self) -> Vec<eddy_core::GroupLead> {
        self.replicas()
            .iter()
            .filter_map(|r| match r.leadership() {
                Leadership::Here { term } => Some(eddy_core::GroupLead {
                    partition: r.partition,
                    term,
                    voters: crate::membership::committed_members(r).0,
                }),
                _ => None,
            })
            .collect()
    }

    /// Opens replicas this node should hold and creates groups whose
    /// designated leader it is.
    async fn reconcile(&self, map: &ClusterMap) {
        if let Some(id) = &map.cluster_id {
            let _ = self.ctx.identity.set(id.clone());
        }
        let me = self.ctx.node_id;
        for assignment in map.table.partitions.iter().filter(|p| p.replicas.contains(&me)) {
            let Some(replica) = self.open_replica(assignment.id).await else { continue };
            if assignment.leader == Some(me) && assignment.leader_term == 0 {
                let members: BTreeMap<NodeId, RaftNode> = assignment
                    .replicas
                    .iter()
                    .filter_map(|id| map.nodes.get(id).map(|n| (*id, RaftNode { addr: n.spec.addr.clone() })))
                    .collect();
                match replica.initialize(members).await {
                    Ok(true) => tracing::info!(partition = assignment.id, "partition group created"),
                    Ok(false) => {}
                    Err(err) => {
                        tracing::warn!(partition = assignment.id, error = %err, "cannot create partition group");
                    }
                }
            }
        }
    }

    /// The local replica of `partition`, opened now if it is not open yet.
    /// A replica that cannot be opened is recorded as broken: reported to
    /// the controller, which rebuilds it from the other replicas.
    async fn open_replica(&self, partition: PartitionId) -> Option<Arc<Replica>> {
        if let Some(replica) = self.replica(partition) {
            return Some(replica);
        }
        match Replica::open(partition, &self.ctx).await {
            Ok(replica) => {
                let replica = Arc::new(replica);
                if let Ok(mut replicas) = self.replicas.write() {
                    replicas.insert(partition, replica.clone());
                }
                self.set_broken(partition, None);
                tracing::info!(partition, "partition replica opened");
                Some(replica)
            }
            Err(err) => {
                self.set_broken(partition, Some(err.to_string()));
                None
            }
        }
    }

    /// Records whether the replica of `partition` is broken, logging changes.
    fn set_broken(&self, partition: PartitionId, reason: Option<String>) {
        let Ok(mut broken) = self.broken.lock() else { return };
        match reason {
            Some(reason) if broken.get(&partition) != Some(&reason) => {
                tracing::error!(
                    partition,
                    error = %reason,
                    "cannot open partition replica; reported to the controller, which moves it off this node \
                     so that it can be rebuilt from the other replicas"
                );
                broken.insert(partition, reason);
            }
            Some(_) => {}
            None => {
                if broken.remove(&partition).is_some() {
                    tracing::info!(partition, "partition replica no longer broken");
                }
            }
        }
        crate::metrics::replicas_broken(broken.len());
    }

    /// Processor panics on this node since `since_ms` (wall clock).
    pub fn processor_panics(&self, since_ms: u64) -> Vec<crate::panics::ProcessorPanic> {
        self.ctx.panics.since(since_ms)
    }

    /// Replicas the table places here that cannot be opened, with why.
    pub fn broken(&self) -> Vec<(PartitionId, String)> {
        self.broken.lock().map(|b| b.iter().map(|(p, why)| (*p, why.clone())).collect()).unwrap_or_default()
    }

    /// Partition directories on disk that no open replica owns and the
    /// table does not place here (left by a move away while this node was
    /// down, or by a broken replica the controller moved off): deleted once
    /// the group's leader says this node is not a member; opened again if
    /// it says it still is (a move still under way), so the group keeps
    /// its copy.
    async fn tidy_strays(&self, map: &ClusterMap) {
        let me = self.ctx.node_id;
        for partition in self.partition_dirs() {
            let Some(assignment) = map.table.get(partition) else { continue };
            if assignment.replicas.contains(&me) || self.replica(partition).is_some() {
                continue;
            }
            match self.leader_counts_me(map, assignment, me).await {
                Some(false) => self.delete_stray(partition).await,
                Some(true) => {
                    tracing::info!(partition, "reopening a replica its group still counts on");
                    self.open_replica(partition).await;
                }
                None => {}
            }
        }
    }

    /// Partitions with a directory under this node's data.
    fn partition_dirs(&self) -> Vec<PartitionId> {
        let Ok(entries) = std::fs::read_dir(&self.ctx.partitions_dir) else { return Vec::new() };
        entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect()
    }

    async fn delete_stray(&self, partition: PartitionId) {
        let dir = self.ctx.partitions_dir.join(partition.to_string());
        let dropped = self.ctx.store.drop_group(crate::types::group_of(partition)).await.map_err(|e| e.to_string());
        match dropped.and_then(|()| std::fs::remove_dir_all(&dir).map_err(|e| e.to_string())) {
            Ok(()) => {
                self.set_broken(partition, None);
                tracing::info!(partition, dir = %dir.display(), "deleted the data of a partition this node no longer holds");
            }
            Err(err) => tracing::warn!(partition, error = %err, "cannot delete the data of a departed partition"),
        }
    }

    /// Whether the partition's leader (as the table names it) still counts
    /// `me` among the group's members; `None` when it cannot tell.
    async fn leader_counts_me(
        &self,
        map: &ClusterMap,
        assignment: &eddy_core::PartitionAssignment,
        me: NodeId,
    ) -> Option<bool> {
        let leader = map.nodes.get(&assignment.leader?)?;
        let channel = self.ctx.channels.get(&leader.spec.addr).ok()?;
        let mut client = eddy_proto::v1::raft_service_client::RaftServiceClient::new(channel);
        let request = eddy_proto::v1::RaftRequest {
            group: crate::types::group_of(assignment.id),
            payload: Vec::new(),
            cluster: String::new(),
        };
        let answer = tokio::time::timeout(std::time::Duration::from_secs(2), client.members(request))
            .await
            .ok()?
            .ok()?
            .into_inner();
        // Only the group's leader knows the membership is final.
        answer.leader.then(|| answer.voters.contains(&me) || answer.learners.contains(&me))
    }

    /// Starts the membership changes of the groups this node leads,
    /// including groups the table moves away from this node.
    fn converge_led(&self, map: &ClusterMap) {
        for replica in self.replicas() {
            if let Some(assignment) = map.table.get(replica.partition) {
                self.converge_if_leading(map, assignment, &replica);
            }
        }
    }

    /// Drops local replicas the table no longer places here, once the
    /// group's membership no longer holds this node: as this replica knows
    /// it, or as the group's leader answers (a removed follower may never
    /// hear of its removal).
    async fn drop_departed(&self, map: &ClusterMap) {
        let me = self.ctx.node_id;
        for replica in self.replicas() {
            let Some(assignment) = map.table.get(replica.partition) else { continue };
            if assignment.replicas.contains(&me) || !replica_initialized(&replica) {
                continue;
            }
            let member = crate::membership::is_member(&replica, me)
                && self.leader_counts_me(map, assignment, me).await.unwrap_or(true);
            if member {
                continue;
            }
            if let Ok(mut replicas) = self.replicas.write() {
                replicas.remove(&replica.partition);
            }
            replica.shutdown().await;
            match replica.destroy(&self.ctx.store).await {
                Ok(()) => tracing::info!(partition = replica.partition, "partition replica removed from this node"),
                Err(err) => {
                    tracing::warn!(partition = replica.partition, error = %err, "cannot remove a departed replica's data");
                }
            }
        }
    }

    /// Starts a membership change when this node leads a group whose
    /// voters differ from the table's replicas.
    fn converge_if_leading(
        &self,
        map: &ClusterMap,
        assignment: &eddy_core::PartitionAssignment,
        replica: &Arc<Replica>,
    ) {
        let Leadership::Here { term } = replica.leadership() else { return };
        let wanted: BTreeMap<NodeId, RaftNode> = assignment
            .replicas
            .iter()
            .filter_map(|id| map.nodes.get(id).map(|n| (*id, RaftNode { addr: n.spec.addr.clone() })))
            .collect();
        if wanted.len() != assignment.replicas.len() {
            return;
        }
        if crate::membership::voters(replica) == wanted.keys().copied().collect() {
            let stray = crate::membership::stray_learners(replica, &wanted);
            if stray.is_empty() {
                self.transfer_if_asked(assignment, replica, term);
                return;
            }
            let (replica, partition) = (replica.clone(), assignment.id);
            self.one_at_a_time(partition, async move {
                crate::membership::remove_learners(&replica, stray).await;
            });
            return;
        }
        let (replica, partition) = (replica.clone(), assignment.id);
        let next_leader = assignment.leader;
        let table = self.map.clone();
        let wanted_now = move || -> BTreeSet<NodeId> {
            table.borrow().table.get(partition).map(|p| p.replicas.iter().copied().collect()).unwrap_or_default()
        };
        self.one_at_a_time(partition, async move {
            if let Err(err) = crate::membership::converge(&replica, wanted, next_leader, wanted_now).await {
                tracing::warn!(partition, error = %err, "partition membership change did not complete; it will be tried again");
            }
        });
    }

    /// Runs `change` for `partition` unless one runs for it already: one
    /// membership change or leader transfer at a time per group.
    fn one_at_a_time(&self, partition: PartitionId, change: impl Future<Output = ()> + Send + 'static) {
        let Ok(mut busy) = self.converging.lock() else { return };
        if !busy.insert(partition) {
            return;
        }
        let converging = self.converging.clone();
        tokio::spawn(async move {
            change.await;
            if let Ok(mut busy) = converging.lock() {
                busy.remove(&partition);
            }
        });
    }

    /// Hands the leadership of a group this node leads to the replica the
    /// table names, when the controller changed the table's leader during
    /// this node's term: that is a planned transfer, not a table that has
    /// not yet heard of this node's election.
    fn transfer_if_asked(&self, assignment: &eddy_core::PartitionAssignment, replica: &Arc<Replica>, term: u64) {
        let me = self.ctx.node_id;
        let Some(to) = assignment.leader.filter(|to| *to != me && assignment.leader_term == term) else { return };
        if !crate::membership::voters(replica).contains(&to) {
            return;
        }
        let (replica, partition) = (replica.clone(), assignment.id);
        self.one_at_a_time(partition, async move {
            tracing::info!(partition, to, "transferring partition leadership as the controller asked");
            crate::membership::checkpoint_before_hand_over(&replica, partition).await;
            if let Err(err) = replica.raft.trigger().transfer_leader(to).await {
                tracing::warn!(partition, to, error = %err, "partition leadership transfer failed");
            }
            // Give the election time before asking again.
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        });
    }

    /// The replica of `partition` if this node leads it.
    pub fn leader_replica(&self, partition: PartitionId) -> Result<Arc<Replica>, WorkerError> {
        let map = self.map();
        let Some(settings) = map.settings else { return Err(WorkerError::NotReady) };
        if partition >= settings.partition_count {
            return Err(WorkerError::InvalidArgument(format!(
                "unknown partition {partition}: the cluster has {} partitions",
                settings.partition_count
            )));
        }
        match self.replica(partition) {
            Some(replica) => {
                replica.ensure_leader()?;
                Ok(replica)
            }
            None => {
                // Not hosted here: point at the leader the table knows.
                let leader = map.table.get(partition).and_then(|p| p.leader);
                match leader.and_then(|id| map.nodes.get(&id)) {
                    Some(node) => Err(WorkerError::NotLeader {
                        partition,
                        leader_id: node.id(),
                        leader_addr: node.spec.addr.clone(),
                    }),
                    None => Err(WorkerError::NoLeader { partition }),
                }
            }
        }
    }

    /// A partition this node leads, for keyless events; round robin.
    pub fn any_led_partition(&self) -> Option<PartitionId> {
        let led = self.leading();
        if led.is_empty() {
            return None;
        }
        let i = self.next_keyless.fetch_add(1, Ordering::Relaxed) % led.len();
        Some(led[i].0)
    }

    /// The cluster's uid salt, once the cluster id is known.
    pub fn uid_salt(&self) -> u32 {
        self.ctx.identity.get().map_or(0, |id| eddy_core::EventUid::salt(id))
    }

    pub fn limits(&self) -> crate::config::Limits {
        self.ctx.config.limits
    }

    /// Deletes event log segments past the retention limits, on every replica.
    fn apply_retention(&self) {
        let now_ms = wall_clock_ms();
        for replica in self.replicas() {
            let (log, keep_from) = {
                let view = replica.view.borrow();
                (view.log.clone(), view.retain_from)
            };
            match log.apply_retention(now_ms, keep_from) {
                Ok(0) => {}
                Ok(removed) => tracing::info!(
                    partition = replica.partition,
                    segments = removed,
                    start = log.start_offset(),
                    "retention removed old segments"
                ),
                Err(err) => tracing::warn!(partition = replica.partition, error = %err, "retention failed"),
            }
        }
    }

    pub async fn shutdown(&self) {
        if let Some(task) = self.task.lock().ok().and_then(|mut t| t.take()) {
            task.abort();
        }
        for replica in self.replicas() {
            replica.shutdown().await;
        }
    }
}

/// The wall clock in milliseconds since the Unix epoch.
pub(crate) fn wall_clock_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
