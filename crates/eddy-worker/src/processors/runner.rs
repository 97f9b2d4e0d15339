//! Runs a partition's processors while this node leads the partition:
//! restores the latest checkpoint, replays the events after it, follows new
//! ones, and now and then proposes a checkpoint through Raft.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eddy_core::{EventUid, PartitionId, StoredEvent};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::{Checkpoint, Processor, ProcessorFactory, ProcessorsConfig, digest, processors};
use crate::cpu::{CpuPool, PoolStopped, thread_cpu_time};
use crate::panics::{Doing, PanicLog, ProcessorPanic, caught};
use crate::replica::PartitionRaft;
use crate::sm::LogView;
use crate::state::LogRecord;
use crate::telemetry::PartitionMeter;
use crate::types::PartitionCommand;
use crate::worker::wall_clock_ms;

/// Bytes of records read and folded at a time.
pub(super) const CHUNK_BYTES: usize = 1 << 20;

/// CPU a fold job may spend before handing its pool thread to another
/// partition: a long backlog is folded in slices, so partitions share the
/// node's cores as a time-shared server would.
const FOLD_SLICE_CPU: Duration = Duration::from_millis(5);

/// How long the runner lets newly applied records gather before folding
/// them; processor state trails the log by about this much.
const FOLD_GATHER: Duration = Duration::from_millis(5);

/// How far the processors are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcessorStatus {
    /// Events before this offset are folded in.
    pub processed: u64,
    /// Offset of the checkpoint the run started from.
    pub restored_from: u64,
}

/// Asks the runner for a checkpoint now; answered with its offset once
/// committed, or dropped if it could not be.
type CheckpointAsk = oneshot::Sender<u64>;

pub struct ProcessorRunner {
    partition: PartitionId,
    panics: Arc<PanicLog>,
    processors: Arc<Mutex<Vec<Box<dyn Processor>>>>,
    status: watch::Receiver<ProcessorStatus>,
    asks: mpsc::Sender<CheckpointAsk>,
    task: JoinHandle<()>,
}

impl Drop for ProcessorRunner {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub struct RunnerContext {
    pub partition: PartitionId,
    pub raft: PartitionRaft,
    pub view: watch::Receiver<LogView>,
    pub config: ProcessorsConfig,
    pub extra: Vec<Arc<dyn ProcessorFactory>>,
    pub cpu: Arc<CpuPool>,
    pub meter: Arc<PartitionMeter>,
    pub panics: Arc<PanicLog>,
    pub uid_salt: u32,
}

impl ProcessorRunner {
    /// Starts the processors: they restore the partition's latest
    /// checkpoint, then fold the events after it.
    pub fn start(ctx: RunnerContext) -> Self {
        let processors = Arc::new(Mutex::new(processors(ctx.partition, &ctx.config, &ctx.extra)));
        let from = ctx.view.borrow().log.start_offset();
        let (status_tx, status) = watch::channel(ProcessorStatus { processed: from, restored_from: from });
        let (asks, asked) = mpsc::channel(4);
        let (partition, panics) = (ctx.partition, ctx.panics.clone());
        let task = tokio::spawn(run(ctx, processors.clone(), status_tx, asked));
        ProcessorRunner { partition, panics, processors, status, asks, task }
    }

    pub fn status(&self) -> ProcessorStatus {
        *self.status.borrow()
    }

    /// Follows the processors' progress.
    pub fn progress(&self) -> watch::Receiver<ProcessorStatus> {
        self.status.clone()
    }

    /// Where to ask for a checkpoint now: before handing the partition's
    /// leadership over, so that the next leader's processors start from
    /// the current state instead of replaying up to a checkpoint interval
    /// of events at their full cost.
    pub fn checkpoint_asks(&self) -> mpsc::Sender<oneshot::Sender<u64>> {
        self.asks.clone()
    }

    /// Asks processor `name`.
    pub fn query(&self, name: &str, request: &serde_json::Value) -> Result<serde_json::Value, String> {
        let processors = self.processors.lock().map_err(|_| "processors unavailable".to_owned())?;
        let processor = processors.iter().find(|p| p.name() == name).ok_or_else(|| {
            let names: Vec<&str> = processors.iter().map(|p| p.name()).collect();
            format!("no processor named `{name}`; this partition runs {names:?}")
        })?;
        // A panic while answering leaves the state as it was (a query reads
        // it only): caught here, the lock is not poisoned.
        caught(|| processor.query(request)).unwrap_or_else(|message| {
            let panic = ProcessorPanic {
                partition: self.partition,
                processor: name.to_owned(),
                doing: Doing::Answering,
                message,
                at_ms: wall_clock_ms(),
            };
            let answer = format!("{}; ask again with other arguments", panic.describe());
            self.panics.record(panic);
            Err(answer)
        })
    }

    /// The processors' states digest, with the offset it holds for and
    /// the checkpoint offset the run started from.
    pub fn digest(&self) -> Result<(u64, u64, u64), String> {
        let processors = self.processors.lock().map_err(|_| "processors unavailable".to_owned())?;
        let status = self.status();
        let digest =
            caught(|| digest(&processors)).map_err(|m| format!("a processor panicked encoding its state: {m}"))?;
        Ok((status.processed, digest, status.restored_from))
    }
}

/// The events of records as stored events.
pub fn events_of(
    partition: PartitionId,
    salt: u32,
    records: &[(eddy_storage::eventlog::RecordHeader, Vec<u8>)],
    from: u64,
) -> Result<Vec<StoredEvent>, String> {
    let mut events = Vec::new();
    for (header, payload) in records {
        let record: LogRecord = postcard::from_bytes(payload).map_err(|e| e.to_string())?;
        let LogRecord::Events { batches, .. } = record else { continue };
        for (offset, logged) in (header.first_offset..).zip(batches.into_iter().flat_map(|b| b.events)) {
            if offset >= from {
                events.push(StoredEvent {
                    partition,
                    offset,
                    uid: EventUid::new(salt, partition, offset),
                    hlc: logged.hlc,
                    event: logged.event,
                });
            }
        }
    }
    Ok(events)
}

async fn run(
    mut ctx: RunnerContext,
    processors: Arc<Mutex<Vec<Box<dyn Processor>>>>,
    status: watch::Sender<ProcessorStatus>,
    mut asks: mpsc::Receiver<CheckpointAsk>,
) {
    let mut next = super::restore::restore_latest(&ctx, &processors).await;
    status.send_replace(ProcessorStatus { processed: next, restored_from: next });
    let mut since_checkpoint = 0u64;
    let mut last_checkpoint = Instant::now();
    let mut asked: Vec<CheckpointAsk> = Vec::new();
    loop {
        let view = ctx.view.borrow_and_update().clone();
        while next < view.next_offset {
            // Markers (checkpoint pieces among them) are passed over unread.
            let records = match view.log.read_events(next, CHUNK_BYTES) {
                Ok(records) if !records.is_empty() => records,
                Ok(_) => break,
                Err(err) => {
                    tracing::error!(partition = ctx.partition, error = %err, "processors cannot read the event log");
                    return;
                }
            };
            let end = records.last().map_or(next, |(h, _)| h.end_offset());
            let events = match events_of(ctx.partition, ctx.uid_salt, &records, next) {
                Ok(events) => events,
                Err(err) => {
                    tracing::error!(partition = ctx.partition, error = %err, "processors cannot decode the event log");
                    return;
                }
            };
            let count = events.len() as u64;
            if fold(&ctx, &processors, events, &status).await.is_err() {
                return;
            }
            next = next.max(end);
            since_checkpoint += count;
            status.send_modify(|s| s.processed = next);
        }
        let due = since_checkpoint >= ctx.config.checkpoint_every_events
            || (since_checkpoint > 0
                && last_checkpoint.elapsed() >= Duration::from_millis(ctx.config.checkpoint_every_ms));
        if due || !asked.is_empty() {
            let committed = propose_checkpoint(&ctx, &processors, next).await;
            since_checkpoint = 0;
            last_checkpoint = Instant::now();
            for ask in asked.drain(..) {
                if committed {
                    let _ = ask.send(next);
                }
            }
        }
        let wait = Duration::from_millis(ctx.config.checkpoint_every_ms.max(100));
        tokio::select! {
            changed = ctx.view.changed() => {
                if changed.is_err() {
                    return;
                }
                // Under load entries apply in quick succession; gathering
                // them for a moment folds them as one chunk, with one
                // hand-off to the blocking pool instead of one per entry.
                tokio::time::sleep(FOLD_GATHER).await;
            }
            Some(ask) = asks.recv() => asked.push(ask),
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// Folds `events` into the processors on the node's CPU pool, a slice at
/// a time, and records what it cost and how long after submission each
/// event was processed. Progress is published after every slice: a client
/// waiting for its event to be processed need not wait for the rest of
/// the chunk, which for costly events is tens of milliseconds each. A
/// processor that panics on an event is restarted from the checkpoint and
/// brought up to that event, which it then passes over.
async fn fold(
    ctx: &RunnerContext,
    processors: &Arc<Mutex<Vec<Box<dyn Processor>>>>,
    events: Vec<StoredEvent>,
    status: &watch::Sender<ProcessorStatus>,
) -> Result<(), PoolStopped> {
    let events = Arc::new(events);
    let mut start = 0;
    while start < events.len() {
        let (folding, slice) = (processors.clone(), events.clone());
        let (slice_end, cpu) = ctx.cpu.run(move || fold_slice(&folding, &slice, start)).await?;
        let end = slice_end.next;
        let folded = events.get(start..end).unwrap_or_default();
        let now_ms = wall_clock_ms();
        crate::metrics::processed(ctx.partition, folded, cpu, now_ms);
        let latencies = folded.iter().map(|e| Duration::from_millis(now_ms.saturating_sub(e.hlc.physical_ms())));
        ctx.meter.processed(cpu, latencies);
        for (index, offset, message) in slice_end.panicked {
            super::restore::restart_processor(ctx, processors, index, offset, message).await;
        }
        if let Some(last) = folded.last() {
            status.send_if_modified(|s| {
                let moved = last.offset + 1 > s.processed;
                s.processed = s.processed.max(last.offset + 1);
                moved
            });
        }
        start = end;
    }
    Ok(())
}

/// Where a fold slice stopped, and the processors (by index) that panicked
/// on its last event, with that event's offset and the panic's message.
struct SliceEnd {
    next: usize,
    panicked: Vec<(usize, u64, String)>,
}

/// Folds events from `start` until the slice's CPU is spent or a processor
/// panics; answers where it stopped.
fn fold_slice(processors: &Mutex<Vec<Box<dyn Processor>>>, events: &[StoredEvent], start: usize) -> SliceEnd {
    let began = thread_cpu_time();
    let Ok(mut processors) = processors.lock() else { return SliceEnd { next: events.len(), panicked: Vec::new() } };
    let mut clock = SliceClock::new(began);
    let mut next = start;
    while next < events.len() {
        let event = &events[next];
        let panicked: Vec<(usize, u64, String)> = processors
            .iter_mut()
            .enumerate()
            .filter_map(|(i, p)| caught(|| p.apply(event)).err().map(|message| (i, event.offset, message)))
            .collect();
        next += 1;
        if !panicked.is_empty() {
            return SliceEnd { next, panicked };
        }
        if clock.spent_after_event() >= FOLD_SLICE_CPU {
            break;
        }
    }
    SliceEnd { next, panicked: Vec::new() }
}

/// Events folded between two looks at the CPU clock when events are cheap.
const CHEAP_EVENTS_PER_LOOK: u32 = 8;

/// An event costing at least this much is timed on its own.
const COSTLY_EVENT_CPU: Duration = Duration::from_micros(100);

/// When a fold slice looks at the CPU clock. The clock is a system call, so
/// cheap events are timed a few at a time; but one look per few costly
/// events would let a slice run several times its CPU allowance and hold
/// the node's core from the other partitions meanwhile, so after a costly
/// stretch every event is timed.
struct SliceClock {
    began: Duration,
    last_look: Duration,
    since_look: u32,
    stride: u32,
}

impl SliceClock {
    fn new(began: Duration) -> Self {
        SliceClock { began, last_look: began, since_look: 0, stride: 1 }
    }

    /// Called after each event: the slice's CPU so far, or zero when this
    /// event is not one to look after.
    fn spent_after_event(&mut self) -> Duration {
        self.since_look += 1;
        if self.since_look < self.stride {
            return Duration::ZERO;
        }
        let now = thread_cpu_time();
        let per_event = now.saturating_sub(self.last_look) / self.since_look;
        self.stride = if per_event >= COSTLY_EVENT_CPU { 1 } else { CHEAP_EVENTS_PER_LOOK };
        self.last_look = now;
        self.since_look = 0;
        now.saturating_sub(self.began)
    }
}

/// Proposes the processors' states at `offset`, in pieces, then their
/// seal; answers whether the checkpoint committed.
async fn propose_checkpoint(
    ctx: &RunnerContext,
    processors: &Arc<Mutex<Vec<Box<dyn Processor>>>>,
    offset: u64,
) -> bool {
    let (encoding, max_bytes) = (processors.clone(), ctx.config.max_checkpoint_bytes);
    // Encoding a large state is processor work: on the node's CPU pool.
    let split = ctx.cpu.run(move || {
        let Ok(processors) = encoding.lock() else { return None };
        let mut states = std::collections::BTreeMap::new();
        for p in processors.iter() {
            match caught(|| p.checkpoint()) {
                Ok(state) => states.insert(p.name().to_owned(), state),
                Err(message) => return Some(Err((p.name().to_owned(), message))),
            };
        }
        Some(Ok(crate::checkpoint::split(&Checkpoint { offset, states }, crate::checkpoint::fresh_id(), max_bytes)))
    });
    let (chunks, seal) = match split.await {
        Ok((Some(Ok(Ok(split))), _)) => split,
        Ok((Some(Err((processor, message))), _)) => {
            let doing = Doing::Checkpointing;
            let at_ms = wall_clock_ms();
            ctx.panics.record(ProcessorPanic { partition: ctx.partition, processor, doing, message, at_ms });
            return false;
        }
        Ok((Some(Ok(Err(err))), _)) => {
            crate::metrics::checkpoint_skipped(ctx.partition);
            tracing::warn!(partition = ctx.partition, offset, error = %err, "processor checkpoint skipped; a new leader replays the log instead");
            return false;
        }
        _ => return false,
    };
    let pieces = chunks.len();
    for chunk in chunks {
        if let Err(err) = ctx.raft.client_write(PartitionCommand::CheckpointChunk(chunk)).await {
            tracing::debug!(partition = ctx.partition, error = %err, "processor checkpoint piece not committed");
            return false;
        }
    }
    match ctx.raft.client_write(PartitionCommand::Checkpoint(seal)).await {
        Ok(_) => {
            crate::metrics::checkpoint_committed(ctx.partition, seal.len);
            tracing::debug!(
                partition = ctx.partition,
                offset,
                bytes = seal.len,
                pieces,
                "processor checkpoint committed"
            );
            true
        }
        Err(err) => {
            tracing::debug!(partition = ctx.partition, error = %err, "processor checkpoint not committed");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use eddy_core::{Event, Hlc};

    use super::*;
    use crate::processors::synthetic::Synthetic;

    fn events(event_type: &str, count: u64) -> Vec<StoredEvent> {
        (0..count)
            .map(|offset| StoredEvent {
                partition: 0,
                offset,
                uid: EventUid::new(1, 0, offset),
                hlc: Hlc::from_millis(offset),
                event: Event { event_type: event_type.to_owned(), ..Event::default() },
            })
            .collect()
    }

    fn synthetic(costs_us: &[(&str, u64)]) -> Mutex<Vec<Box<dyn Processor>>> {
        let costs: BTreeMap<String, u64> = costs_us.iter().map(|(t, c)| ((*t).to_owned(), *c)).collect();
        Mutex::new(vec![Box::new(Synthetic::new(costs)) as Box<dyn Processor>])
    }

    #[test]
    fn a_slice_of_costly_events_stops_once_its_cpu_is_spent() {
        // 3 ms each against a 5 ms slice: the second event spends it.
        let processors = synthetic(&[("heavy", 3_000)]);
        let batch = events("heavy", 20);
        assert_eq!(fold_slice(&processors, &batch, 0).next, 2);
        assert_eq!(fold_slice(&processors, &batch, 2).next, 4);
    }

    #[test]
    fn cheap_events_fold_in_one_slice() {
        let processors = synthetic(&[("light", 0)]);
        let batch = events("light", 1_000);
        assert_eq!(fold_slice(&processors, &batch, 0).next, 1_000);
    }

    #[test]
    fn a_costly_event_after_cheap_ones_ends_the_slice_at_once() {
        let processors = synthetic(&[("light", 0), ("heavy", 6_000)]);
        let mut batch = events("light", 100);
        batch.extend(events("heavy", 20));
        // The cheap stretch is timed every few events; the first costly
        // event is timed within that stride, the next ones one by one.
        let stopped = fold_slice(&processors, &batch, 0).next;
        assert!((101..=100 + CHEAP_EVENTS_PER_LOOK as usize).contains(&stopped), "stopped at {stopped}");
    }
}
