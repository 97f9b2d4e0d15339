//! The controller's state machine: the cluster map in memory, its snapshots
//! on disk.
//!
//! Applying is cheap and in memory; durability comes from the Raft log
//! (restart re-applies committed entries after the last snapshot) and from
//! snapshots, which are written durably before they replace the log.
//! Every applied batch publishes the new map to a watch channel that the
//! node's services and the control loop read, before the batch's writers
//! are answered, so a writer always reads its own write.

use std::io;
use std::sync::Arc;

use eddy_core::ClusterMap;
use eddy_raft::ClusterIdentity;
use eddy_storage::Store;
use futures::{Stream, TryStreamExt};
use openraft::storage::{EntryResponder, RaftSnapshotBuilder, RaftStateMachine};
use openraft::type_config::alias::{LogIdOf, SnapshotMetaOf, SnapshotOf, StoredMembershipOf};
use openraft::{EntryPayload, OptionalSend};
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, watch};

use crate::state;
use crate::types::{CONTROLLER_GROUP, CommandResponse, ControllerTypes as C, Outcome};

type Snapshot = SnapshotOf<C, Vec<u8>>;

/// A snapshot as kept on disk: Raft's metadata and the encoded map.
#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMetaOf<C>,
    data: Vec<u8>,
}

/// The one snapshot slot of the controller group. A snapshot built here
/// and one installed from the leader can race; the slot only moves forward,
/// so an older snapshot never replaces a newer one whose log is purged.
#[derive(Clone)]
struct SnapshotSlot {
    store: Store,
    writing: Arc<Mutex<()>>,
}

impl SnapshotSlot {
    fn load(&self) -> io::Result<Option<StoredSnapshot>> {
        let Some(bytes) = self.store.snapshot(CONTROLLER_GROUP)? else {
            return Ok(None);
        };
        postcard::from_bytes(&bytes).map(Some).map_err(|e| corrupt("controller snapshot", &e))
    }

    /// Writes `snapshot` durably unless the slot already holds a newer one.
    async fn save(&self, snapshot: &StoredSnapshot) -> io::Result<bool> {
        let _writing = self.writing.lock().await;
        if let Some(current) = self.load()?
            && current.meta.last_log_id >= snapshot.meta.last_log_id
        {
            return Ok(false);
        }
        let bytes = postcard::to_allocvec(snapshot).map_err(|e| corrupt("encode snapshot", &e))?;
        self.store.put_snapshot(CONTROLLER_GROUP, &bytes).await?;
        Ok(true)
    }
}

pub struct ControllerStateMachine {
    slot: SnapshotSlot,
    map: ClusterMap,
    last_applied: Option<LogIdOf<C>>,
    membership: StoredMembershipOf<C>,
    publish: watch::Sender<Arc<ClusterMap>>,
    identity: ClusterIdentity,
}

impl ControllerStateMachine {
    /// Restores the state from the latest snapshot on disk; Raft then
    /// re-applies the committed entries that follow it.
    pub fn open(store: Store, identity: ClusterIdentity) -> io::Result<(Self, watch::Receiver<Arc<ClusterMap>>)> {
        let mut sm = ControllerStateMachine {
            slot: SnapshotSlot { store, writing: Arc::new(Mutex::new(())) },
            map: ClusterMap::default(),
            last_applied: None,
            membership: StoredMembershipOf::<C>::default(),
            publish: watch::channel(Arc::new(ClusterMap::default())).0,
            identity,
        };
        if let Some(stored) = sm.slot.load()? {
            sm.restore(&stored)?;
        }
        let receiver = sm.publish.subscribe();
        Ok((sm, receiver))
    }

    fn restore(&mut self, stored: &StoredSnapshot) -> io::Result<()> {
        self.map = postcard::from_bytes(&stored.data).map_err(|e| corrupt("controller snapshot data", &e))?;
        self.last_applied = stored.meta.last_log_id;
        self.membership = stored.meta.last_membership.clone();
        self.publish_map();
        Ok(())
    }

    fn publish_map(&self) {
        if let Some(id) = &self.map.cluster_id {
            let _ = self.identity.set(id.clone());
        }
        self.publish.send_replace(Arc::new(self.map.clone()));
    }

    fn response(&self) -> CommandResponse {
        CommandResponse {
            outcome: Outcome::Unchanged,
            epoch: self.map.table.epoch,
            nodes_version: self.map.nodes_version,
        }
    }
}

fn corrupt(what: &str, err: &postcard::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("{what}: {err}"))
}

/// Builds a snapshot from the state captured when the builder was made, so
/// it is consistent even while applying goes on.
pub struct ControllerSnapshotBuilder {
    slot: SnapshotSlot,
    meta: SnapshotMetaOf<C>,
    map: ClusterMap,
}

impl RaftSnapshotBuilder<C> for ControllerSnapshotBuilder {
    type SnapshotData = Vec<u8>;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let data = postcard::to_allocvec(&self.map).map_err(|e| corrupt("encode map", &e))?;
        let stored = StoredSnapshot { meta: self.meta.clone(), data };
        let written = self.slot.save(&stored).await?;
        tracing::debug!(last_log = ?stored.meta.last_log_id, written, "controller snapshot built");
        Ok(Snapshot { meta: stored.meta, snapshot: stored.data })
    }
}

impl RaftStateMachine<C> for ControllerStateMachine {
    type SnapshotData = Vec<u8>;
    type SnapshotBuilder = ControllerSnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogIdOf<C>>, StoredMembershipOf<C>), io::Error> {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<S>(&mut self, mut entries: S) -> Result<(), io::Error>
    where
        S: Stream<Item = Result<EntryResponder<C>, io::Error>> + Unpin + OptionalSend,
    {
        let before = (self.map.table.epoch, self.map.nodes_version, self.map.cluster_id.is_some());
        let placement_before = self.map.placement.clone();
        let mut answers = Vec::new();
        while let Some((entry, responder)) = entries.try_next().await? {
            let response = match &entry.payload {
                EntryPayload::Blank => self.response(),
                EntryPayload::Normal(command) => {
                    let response = state::apply(&mut self.map, command);
                    tracing::debug!(%command, outcome = ?response.outcome, "controller command applied");
                    response
                }
                EntryPayload::Membership(membership) => {
                    self.membership = StoredMembershipOf::<C>::new(Some(entry.log_id), membership.clone());
                    self.response()
                }
            };
            self.last_applied = Some(entry.log_id);
            if let Some(responder) = responder {
                answers.push((responder, response));
            }
        }
        if before != (self.map.table.epoch, self.map.nodes_version, self.map.cluster_id.is_some())
            || placement_before != self.map.placement
        {
            self.publish_map();
        }
        for (responder, response) in answers {
            responder.send(response);
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        ControllerSnapshotBuilder {
            slot: self.slot.clone(),
            meta: SnapshotMetaOf::<C> { last_log_id: self.last_applied, last_membership: self.membership.clone() },
            map: self.map.clone(),
        }
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMetaOf<C>, snapshot: Vec<u8>) -> Result<(), io::Error> {
        let stored = StoredSnapshot { meta: meta.clone(), data: snapshot };
        self.slot.save(&stored).await?;
        self.restore(&stored)?;
        tracing::info!(last_log = ?meta.last_log_id, "controller snapshot installed");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        Ok(self.slot.load()?.map(|s| Snapshot { meta: s.meta, snapshot: s.data }))
    }
}
