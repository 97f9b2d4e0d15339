//! Bringing a partition's processors back: from the latest checkpoint
//! when a run starts, and one processor alone after it panicked folding an
//! event (restored, brought up to that event, which it passes over).

use std::sync::{Arc, Mutex};

use super::runner::{CHUNK_BYTES, RunnerContext, events_of};
use super::{Checkpoint, Processor};
use crate::panics::{Doing, ProcessorPanic, caught};
use crate::worker::wall_clock_ms;

fn restore(processors: &mut [Box<dyn Processor>], checkpoint: &Checkpoint) -> Result<(), String> {
    for p in processors.iter_mut() {
        if let Some(state) = checkpoint.states.get(p.name()) {
            p.restore(state).map_err(|e| format!("{}: {e}", p.name()))?;
        }
    }
    Ok(())
}

/// Restores the latest checkpoint into fresh processors, reading its
/// pieces from the log (off the runtime: a checkpoint may be large).
/// Answers the offset the processors go on from.
pub(super) async fn restore_latest(ctx: &RunnerContext, processors: &Arc<Mutex<Vec<Box<dyn Processor>>>>) -> u64 {
    let (log, reference) = {
        let view = ctx.view.borrow();
        (view.log.clone(), view.checkpoint)
    };
    let start = log.start_offset();
    let Some(reference) = reference else {
        if start > 0 {
            tracing::warn!(
                partition = ctx.partition,
                from = start,
                "no checkpoint and the log starts late: processors see only retained events"
            );
        }
        return start;
    };
    let (partition, config, extra) = (ctx.partition, ctx.config.clone(), ctx.extra.clone());
    let restoring = processors.clone();
    let restored = tokio::task::spawn_blocking(move || {
        let checkpoint = crate::sm::read_checkpoint(&log, &reference).map_err(|e| e.to_string())?;
        let Ok(mut slot) = restoring.lock() else { return Err("processors unavailable".to_owned()) };
        if let Err(err) = restore(&mut slot, &checkpoint) {
            *slot = super::processors(partition, &config, &extra);
            return Err(err);
        }
        Ok(checkpoint.offset)
    })
    .await;
    match restored {
        Ok(Ok(offset)) => offset,
        Ok(Err(err)) => {
            tracing::warn!(partition = ctx.partition, error = %err, "cannot restore the processor checkpoint; replaying the log");
            start
        }
        Err(err) => {
            tracing::warn!(partition = ctx.partition, error = %err, "processor restore stopped; replaying the log");
            start
        }
    }
}

/// Replaces processor `index`, which panicked folding the event at
/// `offset` in and may be left half-changed, with a fresh one restored
/// from the latest checkpoint and brought up to that event, which it
/// passes over (folding it again would panic again). Events that panic
/// while it is brought up are passed over too.
pub(super) async fn restart_processor(
    ctx: &RunnerContext,
    processors: &Arc<Mutex<Vec<Box<dyn Processor>>>>,
    index: usize,
    offset: u64,
    message: String,
) {
    let name = processors.lock().ok().and_then(|p| p.get(index).map(|p| p.name().to_owned())).unwrap_or_default();
    ctx.panics.record(ProcessorPanic {
        partition: ctx.partition,
        processor: name.clone(),
        doing: Doing::Folding { offset },
        message,
        at_ms: wall_clock_ms(),
    });
    let (log, reference) = {
        let view = ctx.view.borrow();
        (view.log.clone(), view.checkpoint)
    };
    let (partition, salt, config, extra) = (ctx.partition, ctx.uid_salt, ctx.config.clone(), ctx.extra.clone());
    let (restarting, named) = (processors.clone(), name.clone());
    let restarted = tokio::task::spawn_blocking(move || -> Result<(), String> {
        let mut fresh = super::processors(partition, &config, &extra)
            .into_iter()
            .nth(index)
            .ok_or_else(|| format!("no processor at {index}"))?;
        let mut next = log.start_offset();
        let restored = reference.and_then(|r| crate::sm::read_checkpoint(&log, &r).ok()).filter(|c| c.offset <= offset);
        if let Some(checkpoint) = restored
            && let Some(state) = checkpoint.states.get(&named)
            && caught(|| fresh.restore(state)).is_ok_and(|r| r.is_ok())
        {
            next = checkpoint.offset;
        }
        while next < offset {
            let records = log.read_events(next, CHUNK_BYTES).map_err(|e| e.to_string())?;
            let Some(end) = records.last().map(|(h, _)| h.end_offset()) else { break };
            for event in events_of(partition, salt, &records, next)?.iter().filter(|e| e.offset < offset) {
                let _ = caught(|| fresh.apply(event));
            }
            next = end;
        }
        let mut processors = restarting.lock().map_err(|_| "processors unavailable".to_owned())?;
        if let Some(slot) = processors.get_mut(index) {
            *slot = fresh;
        }
        Ok(())
    })
    .await;
    match restarted {
        Ok(Ok(())) => tracing::info!(partition, processor = %name, offset, "processor restarted after its panic"),
        Ok(Err(err)) => tracing::warn!(partition, processor = %name, error = %err, "processor not restarted"),
        Err(err) => tracing::warn!(partition, processor = %name, error = %err, "processor restart stopped"),
    }
}
