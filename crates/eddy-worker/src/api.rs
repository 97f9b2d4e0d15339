//! What clients ask of a worker: submit events, read them back.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use eddy_core::{Event, PartitionId, StoredEvent, partition_for_key};
use tokio::sync::oneshot;

use crate::WorkerError;
use crate::config::Limits;
use crate::processors::runner::events_of;
use crate::proposer::Pending;
use crate::telemetry::PartitionMeter;
use crate::types::{AppendOutcome, AppendRequest, BatchAck, ProducerStamp};
use crate::worker::Worker;

const SEQUENCE_OVERFLOW: &str =
    "the producer's sequence plus the batch's event count is above 2^64 - 1; start a new producer id at sequence 0";

/// Where a submitted batch was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubmitAck {
    pub partition: PartitionId,
    pub ack: BatchAck,
    /// The batch had been stored before; this is the original acknowledgement.
    pub duplicate: bool,
    pub uid_salt: u32,
}

/// Where a queued batch's outcome arrives.
type AnswerReceiver = oneshot::Receiver<Result<AppendOutcome, WorkerError>>;

/// A batch waiting for its entry to commit.
pub struct QueuedSubmit {
    partition: PartitionId,
    queued_at: Instant,
    events: usize,
    bytes: usize,
    meter: Arc<PartitionMeter>,
    producer: Option<ProducerStamp>,
    answer: AnswerReceiver,
    uid_salt: u32,
}

impl QueuedSubmit {
    /// Waits for the commit; answers where the batch is stored.
    pub async fn finish(self) -> Result<SubmitAck, WorkerError> {
        let QueuedSubmit { partition, queued_at, events, bytes, meter, producer, answer, uid_salt } = self;
        let result = Self::outcome(partition, producer, answer, uid_salt).await;
        let label = result.as_ref().map(|ack| ack.duplicate);
        let took = queued_at.elapsed();
        crate::metrics::submitted(partition, events, took, &label);
        if matches!(label, Ok(false)) {
            meter.stored(events, bytes, took);
        }
        result
    }

    async fn outcome(
        partition: PartitionId,
        producer: Option<ProducerStamp>,
        answer: AnswerReceiver,
        uid_salt: u32,
    ) -> Result<SubmitAck, WorkerError> {
        let outcome = answer.await.map_err(|_| WorkerError::NoLeader { partition })??;
        match outcome {
            AppendOutcome::Stored(ack) => Ok(SubmitAck { partition, ack, duplicate: false, uid_salt }),
            AppendOutcome::Duplicate(ack) => Ok(SubmitAck { partition, ack, duplicate: true, uid_salt }),
            AppendOutcome::OutOfOrder { expected } => {
                Err(WorkerError::OutOfOrder { partition, producer: producer.map_or(0, |p| p.id), expected })
            }
            AppendOutcome::SequenceOverflow => Err(WorkerError::InvalidArgument(SEQUENCE_OVERFLOW.into())),
            AppendOutcome::Stale { next_expected } => Err(WorkerError::InvalidArgument(format!(
                "this batch was stored long ago (the producer is at sequence {next_expected}); its acknowledgement is no longer kept"
            ))),
        }
    }
}

/// Events read from a partition.
#[derive(Debug, Clone, Default)]
pub struct ReadResult {
    pub events: Vec<StoredEvent>,
    /// The partition's next offset when the read was made.
    pub end_offset: u64,
    /// The oldest offset still kept.
    pub start_offset: u64,
}

/// Checks a batch against the limits; the message names the limit.
pub fn check_limits(events: &[Event], limits: &Limits) -> Result<usize, WorkerError> {
    if events.is_empty() {
        return Err(WorkerError::InvalidArgument("a batch needs at least one event".into()));
    }
    if events.len() > limits.max_batch_events {
        return Err(WorkerError::TooLarge(format!(
            "the batch has {} events, above the limit max_batch_events = {}",
            events.len(),
            limits.max_batch_events
        )));
    }
    let mut total = 0usize;
    for (i, event) in events.iter().enumerate() {
        if event.key.len() > limits.max_key_bytes {
            return Err(WorkerError::InvalidArgument(format!(
                "event {i}: its key is {} bytes, above the limit max_key_bytes = {}",
                event.key.len(),
                limits.max_key_bytes
            )));
        }
        if event.event_type.len() > limits.max_type_bytes {
            return Err(WorkerError::InvalidArgument(format!(
                "event {i}: its type is {} bytes, above the limit max_type_bytes = {}",
                event.event_type.len(),
                limits.max_type_bytes
            )));
        }
        let size = event.size_bytes();
        if size > limits.max_event_bytes {
            return Err(WorkerError::InvalidArgument(format!(
                "event {i} is {size} bytes, above the limit max_event_bytes = {}",
                limits.max_event_bytes
            )));
        }
        total += size;
    }
    if total > limits.max_batch_bytes {
        return Err(WorkerError::TooLarge(format!(
            "the batch is {total} bytes, above the limit max_batch_bytes = {}",
            limits.max_batch_bytes
        )));
    }
    Ok(total)
}

impl Worker {
    /// The partition a batch goes to: the one named, or the one its keys map to.
    fn resolve_partition(
        &self,
        named: Option<PartitionId>,
        events: &[Event],
        producer: Option<ProducerStamp>,
    ) -> Result<PartitionId, WorkerError> {
        let map = self.map();
        let Some(settings) = map.settings else { return Err(WorkerError::NotReady) };
        let count = settings.partition_count;
        let keyed: BTreeSet<PartitionId> =
            events.iter().filter(|e| !e.key.is_empty()).map(|e| partition_for_key(&e.key, count)).collect();
        match named {
            Some(p) if p >= count => {
                Err(WorkerError::InvalidArgument(format!("unknown partition {p}: the cluster has {count} partitions")))
            }
            Some(p) => match keyed.iter().find(|k| **k != p) {
                Some(other) => Err(WorkerError::InvalidArgument(format!(
                    "an event's key maps to partition {other}, not to the named partition {p}"
                ))),
                None => Ok(p),
            },
            None if keyed.len() > 1 => Err(WorkerError::InvalidArgument(format!(
                "the events' keys map to partitions {keyed:?}; send one request per partition"
            ))),
            None => match keyed.first() {
                Some(p) => Ok(*p),
                None if producer.is_some() => Err(WorkerError::InvalidArgument(
                    "an idempotent producer must name the partition of keyless events".into(),
                )),
                None => self.any_led_partition().ok_or(WorkerError::NoLeader { partition: 0 }),
            },
        }
    }

    /// Stores a batch; answers once it is committed.
    pub async fn submit(
        &self,
        partition: Option<PartitionId>,
        events: Vec<Event>,
        producer: Option<ProducerStamp>,
        now_ms: u64,
    ) -> Result<SubmitAck, WorkerError> {
        self.begin_submit(partition, events, producer, now_ms)?.finish().await
    }

    /// Checks a batch and queues it for its partition's next entry. Batches
    /// queued one after another enter Raft in that order.
    pub fn begin_submit(
        &self,
        partition: Option<PartitionId>,
        events: Vec<Event>,
        producer: Option<ProducerStamp>,
        now_ms: u64,
    ) -> Result<QueuedSubmit, WorkerError> {
        let queued_at = Instant::now();
        let queued = self.queue_submit(partition, events, producer, now_ms);
        if let Err(err) = &queued {
            // Label values are partitions that exist: a client naming made-up
            // partitions must not grow the metrics.
            let count = self.map().settings.map_or(0, |s| s.partition_count);
            let partition = partition.filter(|p| *p < count).map_or_else(|| "unknown".to_owned(), |p| p.to_string());
            let outcome = crate::metrics::outcome_label(&Err(err));
            metrics::counter!(crate::metrics::SUBMITS_TOTAL, "partition" => partition, "outcome" => outcome)
                .increment(1);
        }
        let (partition, events, bytes, answer) = queued?;
        let meter = self.meters().meter(partition);
        Ok(QueuedSubmit { partition, queued_at, events, bytes, meter, producer, answer, uid_salt: self.uid_salt() })
    }

    fn queue_submit(
        &self,
        partition: Option<PartitionId>,
        events: Vec<Event>,
        producer: Option<ProducerStamp>,
        now_ms: u64,
    ) -> Result<(PartitionId, usize, usize, AnswerReceiver), WorkerError> {
        let bytes = check_limits(&events, &self.limits())?;
        if producer.is_some_and(|p| p.sequence.checked_add(events.len() as u64).is_none()) {
            return Err(WorkerError::InvalidArgument(SEQUENCE_OVERFLOW.into()));
        }
        let partition = self.resolve_partition(partition, &events, producer)?;
        let replica = self.leader_replica(partition)?;
        let (reply, answer) = oneshot::channel();
        let count = events.len();
        let request = AppendRequest { producer, proposed_ms: now_ms, events };
        replica.proposer().submit(Pending { request, bytes, reply })?;
        Ok((partition, count, bytes, answer))
    }

    /// Events of a partition this node leads, from `from` (inclusive) to
    /// `to` (exclusive; 0 for the end), at most `max_events`, only those
    /// `keep` accepts.
    pub fn read_matching(
        &self,
        partition: PartitionId,
        from: u64,
        to: u64,
        max_events: usize,
        keep: impl Fn(&StoredEvent) -> bool,
    ) -> Result<ReadResult, WorkerError> {
        let replica = self.leader_replica(partition)?;
        self.read_replica(&replica, from, to, max_events, keep)
    }

    /// Like [`read`](Self::read), from this node's replica whether it leads
    /// or not: it may lag the leader.
    pub fn read_any_replica(
        &self,
        partition: PartitionId,
        from: u64,
        to: u64,
        max_events: usize,
    ) -> Result<ReadResult, WorkerError> {
        let replica = self.replica(partition).ok_or_else(|| {
            WorkerError::InvalidArgument(format!("node {} holds no replica of partition {partition}", self.node_id()))
        })?;
        self.read_replica(&replica, from, to, max_events, |_| true)
    }

    fn read_replica(
        &self,
        replica: &crate::replica::Replica,
        from: u64,
        to: u64,
        max_events: usize,
        keep: impl Fn(&StoredEvent) -> bool,
    ) -> Result<ReadResult, WorkerError> {
        let partition = replica.partition;
        let log = replica.view.borrow().log.clone();
        let storage = |reason: String| WorkerError::Storage { partition, reason };
        let start = log.start_offset();
        if from < start {
            return Err(WorkerError::Gone { partition, offset: from, start });
        }
        let end = log.next_offset();
        let to = if to == 0 { end } else { to.min(end) };
        let salt = self.uid_salt();
        let mut events = Vec::new();
        let mut bytes = 0usize;
        let mut next = from;
        'scan: while next < to && events.len() < max_events {
            let records = log.read_events(next, 4 << 20).map_err(|e| storage(e.to_string()))?;
            let Some(last) = records.last().map(|(h, _)| h.end_offset()) else { break };
            for event in events_of(partition, salt, &records, next).map_err(storage)? {
                if event.offset >= to || events.len() >= max_events {
                    break 'scan;
                }
                if !keep(&event) {
                    continue;
                }
                // Bounded in bytes too: a thousand events of a megabyte would
                // not fit an answer; the reader goes on from the last one.
                if !events.is_empty() && bytes + event.event.size_bytes() > MAX_READ_BYTES {
                    break 'scan;
                }
                bytes += event.event.size_bytes();
                events.push(event);
            }
            if last == next {
                break;
            }
            next = last;
        }
        // Scanning stopped early: the events returned end before `to`.
        Ok(ReadResult { events, end_offset: end, start_offset: start })
    }

    /// Events of a partition this node leads, `from..to` (to = 0: the end).
    pub fn read(
        &self,
        partition: PartitionId,
        from: u64,
        to: u64,
        max_events: usize,
    ) -> Result<ReadResult, WorkerError> {
        self.read_matching(partition, from, to, max_events, |_| true)
    }

    /// Asks processor `name` of a partition this node leads, once the
    /// processors have folded in the events before `wait_for` (bounded wait).
    pub async fn query_processor(
        &self,
        partition: PartitionId,
        name: &str,
        request: &serde_json::Value,
        wait_for: u64,
    ) -> Result<(serde_json::Value, u64), WorkerError> {
        let replica = self.leader_replica(partition)?;
        let not_running = || WorkerError::NoLeader { partition };
        let wait_for = if wait_for == WAIT_FOR_STORED { replica.view.borrow().next_offset } else { wait_for };
        if wait_for > 0
            && let Some(mut progress) = replica.with_runner(|r| r.progress())
        {
            let caught_up = progress.wait_for(|s| s.processed >= wait_for);
            let _ = tokio::time::timeout(QUERY_WAIT, caught_up).await;
        }
        replica
            .with_runner(|r| r.query(name, request).map(|answer| (answer, r.status().processed)))
            .ok_or_else(not_running)?
            .map_err(WorkerError::InvalidArgument)
    }

    /// Waits until this node's processors of `partition` have folded in the
    /// events before `offset`. False when they do not run here (the
    /// partition's leadership moved) or `timeout` passes first.
    pub async fn wait_processed(&self, partition: PartitionId, offset: u64, timeout: std::time::Duration) -> bool {
        let Some(replica) = self.replica(partition) else { return false };
        let Some(mut progress) = replica.with_runner(|r| r.progress()) else { return false };
        let caught_up = progress.wait_for(|s| s.processed >= offset);
        matches!(tokio::time::timeout(timeout, caught_up).await, Ok(Ok(_)))
    }

    /// A digest of the processors' states, with the offset it holds for and
    /// the checkpoint offset the processors started from.
    pub fn processor_digest(&self, partition: PartitionId) -> Result<(u64, u64, u64), WorkerError> {
        let replica = self.leader_replica(partition)?;
        replica
            .with_runner(|r| r.digest())
            .ok_or(WorkerError::NoLeader { partition })?
            .map_err(|reason| WorkerError::Storage { partition, reason })
    }

    /// Where a subscription starts, and the partition's log view to follow.
    pub fn subscription(
        &self,
        partition: PartitionId,
        start: SubscribeFrom,
    ) -> Result<(u64, tokio::sync::watch::Receiver<crate::sm::LogView>), WorkerError> {
        let replica = self.leader_replica(partition)?;
        let view = replica.view.clone();
        let log = view.borrow().log.clone();
        let offset = match start {
            SubscribeFrom::Earliest => log.start_offset(),
            SubscribeFrom::Latest => log.next_offset(),
            SubscribeFrom::Offset(offset) if offset < log.start_offset() => {
                return Err(WorkerError::Gone { partition, offset, start: log.start_offset() });
            }
            SubscribeFrom::Offset(offset) => offset.min(log.next_offset()),
            SubscribeFrom::TimeMs(ms) => log.offset_at_time(eddy_core::Hlc::from_millis(ms).0),
        };
        Ok((offset, view))
    }
}

/// Where a subscription starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscribeFrom {
    Earliest,
    Latest,
    Offset(u64),
    TimeMs(u64),
}

/// Most bytes of events one read answers (at least one event): well
/// inside a client's 64 MiB message limit.
pub const MAX_READ_BYTES: usize = 16 << 20;

/// A query's `wait_for_offset` that stands for every event stored when it
/// arrives.
pub const WAIT_FOR_STORED: u64 = u64::MAX;

/// How long a query waits for the processors to catch up.
const QUERY_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn event(key: &[u8], payload: usize) -> Event {
        Event {
            key: Bytes::copy_from_slice(key),
            event_type: "t".into(),
            payload: Bytes::from(vec![0u8; payload]),
            ..Event::default()
        }
    }

    #[test]
    fn limits_name_the_limit() {
        let limits = Limits {
            max_event_bytes: 100,
            max_key_bytes: 4,
            max_type_bytes: 8,
            max_batch_events: 2,
            max_batch_bytes: 150,
        };
        assert!(check_limits(&[], &limits).unwrap_err().to_string().contains("at least one event"));
        assert!(check_limits(&vec![event(b"k", 1); 3], &limits).unwrap_err().to_string().contains("max_batch_events"));
        assert!(check_limits(&[event(b"toolong", 1)], &limits).unwrap_err().to_string().contains("max_key_bytes"));
        assert!(check_limits(&[event(b"k", 200)], &limits).unwrap_err().to_string().contains("max_event_bytes"));
        assert!(
            check_limits(&[event(b"k", 90), event(b"k", 90)], &limits)
                .unwrap_err()
                .to_string()
                .contains("max_batch_bytes")
        );
        assert!(matches!(check_limits(&[event(b"k", 10)], &limits), Ok(12)));
    }
}
