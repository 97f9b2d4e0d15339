//! The worker role of a node: opens a replica for every partition the
//! controller's table places here, creates partition groups the first time,
//! and answers submits and reads for the partitions it leads.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use eddy_core::{ClusterMap, NodeId, PartitionId};
use eddy_proto::v1;
use eddy_raft::RaftNode;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::WorkerError;
use crate::replica::{Leadership, Replica, ReplicaContext};

pub struct Worker {
    ctx: ReplicaContext,
    replicas: RwLock<BTreeMap<PartitionId, Arc<Replica>>>,
    map: watch::Receiver<Arc<ClusterMap>>,
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
                    }
                    Ok(_) => {}
                    Err(err) => tracing::warn!(error = %err, "cannot read the partition map"),
                }
                if maps.changed().await.is_err() {
                    return;
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

    pub fn map(&self) -> Arc<ClusterMap> {
        self.map.borrow().clone()
    }

    pub fn replica(&self, partition: PartitionId) -> Option<Arc<Replica>> {
        self.replicas.read().ok()?.get(&partition).cloned()
    }

    fn replicas(&self) -> Vec<Arc<Replica>> {
        self.replicas.read().map(|r| r.values().cloned().collect()).unwrap_or_default()
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

    /// Opens replicas this node should hold and creates groups whose
    /// designated leader it is.
    async fn reconcile(&self, map: &ClusterMap) {
        if let Some(id) = &map.cluster_id {
            let _ = self.ctx.identity.set(id.clone());
        }
        let me = self.ctx.node_id;
        for assignment in map.table.partitions.iter().filter(|p| p.replicas.contains(&me)) {
            let replica = match self.replica(assignment.id) {
                Some(replica) => replica,
                None => match Replica::open(assignment.id, &self.ctx).await {
                    Ok(replica) => {
                        let replica = Arc::new(replica);
                        if let Ok(mut replicas) = self.replicas.write() {
                            replicas.insert(assignment.id, replica.clone());
                        }
                        tracing::info!(partition = assignment.id, "partition replica opened");
                        replica
                    }
                    Err(err) => {
                        tracing::error!(partition = assignment.id, error = %err, "cannot open partition replica");
                        continue;
                    }
                },
            };
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

    pub async fn shutdown(&self) {
        if let Some(task) = self.task.lock().ok().and_then(|mut t| t.take()) {
            task.abort();
        }
        for replica in self.replicas() {
            replica.shutdown().await;
        }
    }
}
