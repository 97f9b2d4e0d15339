//! The producer: batches events per partition, with a linger time, and
//! sends each batch as an idempotent producer, so that retries never store
//! an event twice and a key's events keep their order.
//!
//! One batch per partition is in flight at a time; batches grow with the
//! load, so throughput comes from batch size, not from pipelining.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use eddy_core::PartitionId;
use eddy_proto::v1::{self, SubmitRequest};
use tokio::sync::{mpsc, oneshot};

use crate::ClientError;
use crate::events::{EventAck, EventClient, event_acks};

#[derive(Debug, Clone, Copy)]
pub struct ProducerConfig {
    /// How long a batch waits for more events before it is sent.
    pub linger: Duration,
    pub max_batch_events: usize,
    pub max_batch_bytes: usize,
    /// Events waiting per partition before `send` waits too.
    pub queue_depth: usize,
    /// Stamp batches so that retries are stored once.
    pub idempotent: bool,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            linger: Duration::from_millis(5),
            max_batch_events: 1000,
            max_batch_bytes: 1 << 20,
            queue_depth: 10_000,
            idempotent: true,
        }
    }
}

struct Queued {
    event: v1::Event,
    reply: oneshot::Sender<Result<EventAck, Arc<ClientError>>>,
}

pub struct Producer {
    client: Arc<EventClient>,
    queues: Vec<mpsc::Sender<Queued>>,
    next_keyless: AtomicU32,
}

impl Producer {
    pub fn new(client: Arc<EventClient>, config: ProducerConfig) -> Self {
        let queues = (0..client.partition_count())
            .map(|partition| {
                let (queue, receiver) = mpsc::channel(config.queue_depth.max(1));
                tokio::spawn(run(client.clone(), partition, receiver, config));
                queue
            })
            .collect();
        Producer { client, queues, next_keyless: AtomicU32::new(0) }
    }

    /// The partition an event goes to: its key's, or round robin without key.
    pub fn partition_of(&self, event: &v1::Event) -> PartitionId {
        if event.key.is_empty() {
            self.next_keyless.fetch_add(1, Ordering::Relaxed) % self.queues.len().max(1) as u32
        } else {
            self.client.partition_for_key(&event.key)
        }
    }

    /// Sends one event; answers once it is stored.
    pub async fn send(&self, event: v1::Event) -> Result<EventAck, Arc<ClientError>> {
        let partition = self.partition_of(&event);
        let queue = self
            .queues
            .get(partition as usize)
            .ok_or_else(|| Arc::new(ClientError::Malformed("the cluster has no partitions".into())))?;
        let (reply, answer) = oneshot::channel();
        queue
            .send(Queued { event, reply })
            .await
            .map_err(|_| Arc::new(ClientError::Malformed("the producer has stopped".into())))?;
        answer.await.map_err(|_| Arc::new(ClientError::Malformed("the producer has stopped".into())))?
    }
}

fn new_producer_id() -> u64 {
    u64::from_le_bytes(uuid::Uuid::new_v4().as_bytes()[..8].try_into().unwrap_or_default())
}

async fn run(
    client: Arc<EventClient>,
    partition: PartitionId,
    mut queue: mpsc::Receiver<Queued>,
    config: ProducerConfig,
) {
    let mut producer_id = new_producer_id();
    let mut sequence = 0u64;
    while let Some(first) = queue.recv().await {
        let mut bytes = first.event.payload.len() + first.event.key.len();
        let mut batch = vec![first];
        let linger = tokio::time::sleep(config.linger);
        tokio::pin!(linger);
        while batch.len() < config.max_batch_events && bytes < config.max_batch_bytes {
            tokio::select! {
                next = queue.recv() => match next {
                    Some(next) => {
                        bytes += next.event.payload.len() + next.event.key.len();
                        batch.push(next);
                    }
                    None => break,
                },
                () = &mut linger => break,
            }
        }
        let (events, replies): (Vec<_>, Vec<_>) = batch.into_iter().map(|q| (q.event, q.reply)).unzip();
        let count = events.len() as u64;
        let request = SubmitRequest {
            partition: Some(partition),
            producer: config.idempotent.then_some(v1::Producer { id: producer_id, sequence }),
            events,
            request_id: 0,
            ack: 0,
        };
        match client.submit(request).await {
            Ok(response) => {
                sequence += count;
                for (reply, ack) in replies.into_iter().zip(event_acks(&response)) {
                    let _ = reply.send(Ok(ack));
                }
            }
            Err(err) => {
                // Whether the batch was stored is unknown: later batches
                // start a new sequence under a new id, so that none of them
                // can be mistaken for a retry of this one.
                producer_id = new_producer_id();
                sequence = 0;
                let err = Arc::new(err);
                for reply in replies {
                    let _ = reply.send(Err(err.clone()));
                }
            }
        }
    }
}
