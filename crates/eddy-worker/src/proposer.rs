//! A partition leader's proposer: one task that gathers the submits queued
//! for the partition into Raft entries.
//!
//! While earlier entries are being replicated, new submits queue up and go
//! out together in the next entry, so the entry size grows with the load and
//! one fsync covers many submits. Entries enter Raft in queue order, which
//! keeps each producer's batches in order. The queue is bounded: when it is
//! full the submit is refused with a retry hint instead of growing memory.

use std::sync::Arc;

use eddy_core::PartitionId;
use openraft::errors::ClientWriteError;
use openraft::raft::ClientWriteResult;
use openraft::raft::responder::Responder;
use openraft::{OptionalSend, RaftTypeConfig};
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::WorkerError;
use crate::config::WorkerConfig;
use crate::replica::PartitionRaft;
use crate::types::{AppendOutcome, AppendRequest, PartitionCommand, PartitionTypes};

/// Hands an entry's outcome to its submits right where Raft completes the
/// entry (the state machine worker), with no task in between. Dropped
/// without an outcome (Raft stopped), it drops the submits' reply senders,
/// which they read as "no leader".
pub struct DeliverOnComplete<T>(Box<dyn FnOnce(T) + Send>);

impl<C: RaftTypeConfig, T: OptionalSend + 'static> Responder<C, T> for DeliverOnComplete<T> {
    fn on_complete(self, result: T) {
        (self.0)(result);
    }
}

/// A submit waiting for its entry.
pub struct Pending {
    pub request: AppendRequest,
    pub bytes: usize,
    pub reply: oneshot::Sender<Result<AppendOutcome, WorkerError>>,
}

#[derive(Clone)]
pub struct Proposer {
    partition: PartitionId,
    queue: mpsc::Sender<Pending>,
    depth: usize,
}

impl Proposer {
    pub fn start(partition: PartitionId, raft: PartitionRaft, config: &WorkerConfig) -> Self {
        let (queue, receiver) = mpsc::channel(config.queue_depth.max(1));
        let in_flight = config.proposals_in_flight.max(1);
        tokio::spawn(run(partition, raft, receiver, in_flight, config.max_entry_bytes));
        Proposer { partition, queue, depth: config.queue_depth }
    }

    /// Submits waiting for this proposer.
    pub fn queued(&self) -> usize {
        self.queue.max_capacity() - self.queue.capacity()
    }

    /// Queues a submit; refuses it when the queue is full.
    pub fn submit(&self, pending: Pending) -> Result<(), WorkerError> {
        self.queue.try_send(pending).map_err(|_| WorkerError::Overloaded {
            partition: self.partition,
            queued: self.depth,
            retry_after_ms: 50,
        })
    }
}

async fn run(
    partition: PartitionId,
    raft: PartitionRaft,
    mut queue: mpsc::Receiver<Pending>,
    in_flight: usize,
    max_entry_bytes: usize,
) {
    let slots = Arc::new(Semaphore::new(in_flight));
    let mut carried: Option<Pending> = None;
    loop {
        let first = match carried.take() {
            Some(pending) => pending,
            None => match queue.recv().await {
                Some(pending) => pending,
                None => return,
            },
        };
        // Waiting for a slot lets more submits queue up for this entry.
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let mut bytes = first.bytes;
        let mut batch = vec![first];
        while bytes < max_entry_bytes {
            match queue.try_recv() {
                Ok(next) if bytes + next.bytes > max_entry_bytes => {
                    carried = Some(next);
                    break;
                }
                Ok(next) => {
                    bytes += next.bytes;
                    batch.push(next);
                }
                Err(_) => break,
            }
        }
        let (requests, replies): (Vec<_>, Vec<_>) = batch.into_iter().map(|p| (p.request, p.reply)).unzip();
        // Shared with the responder, which takes them when Raft answers.
        let replies = Arc::new(std::sync::Mutex::new(Some(replies)));
        let taken = replies.clone();
        let responder = DeliverOnComplete(Box::new(move |written| {
            let _slot = slot;
            if let Some(replies) = taken.lock().ok().and_then(|mut r| r.take()) {
                deliver(partition, written, replies);
            }
        }));
        if let Err(fatal) = raft.client_write_ff(PartitionCommand::Append(requests), Some(responder)).await {
            let reason = fatal.to_string();
            for reply in replies.lock().ok().and_then(|mut r| r.take()).into_iter().flatten() {
                let _ = reply.send(Err(WorkerError::Stopped { partition, reason: reason.clone() }));
            }
        }
    }
}

/// Hands each submit its outcome, or the entry's error.
fn deliver(
    partition: PartitionId,
    written: ClientWriteResult<PartitionTypes>,
    replies: Vec<oneshot::Sender<Result<AppendOutcome, WorkerError>>>,
) {
    match written {
        Ok(response) => {
            for (reply, outcome) in replies.into_iter().zip(response.data.outcomes) {
                let _ = reply.send(Ok(outcome));
            }
        }
        Err(err) => {
            let forward = match &err {
                ClientWriteError::ForwardToLeader(f) | ClientWriteError::LogEntryDiscarded(f) => Some(f),
                _ => None,
            };
            for reply in replies {
                let answer = match forward {
                    Some(f) => match (f.leader_id, &f.leader_node) {
                        (Some(leader_id), Some(node)) => {
                            WorkerError::NotLeader { partition, leader_id, leader_addr: node.addr.clone() }
                        }
                        _ => WorkerError::NoLeader { partition },
                    },
                    None => WorkerError::Stopped { partition, reason: err.to_string() },
                };
                let _ = reply.send(Err(answer));
            }
        }
    }
}
