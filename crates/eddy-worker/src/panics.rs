//! Processor panics: caught where a processor runs (folding an event,
//! answering a query, encoding a checkpoint) so that one bad event or query
//! never poisons a partition's processors, and remembered for a while so
//! that the node reports them (heartbeat, status, metric, log).

use std::any::Any;
use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;
use std::time::Duration;

use eddy_core::PartitionId;

/// Panics remembered per node, newest last.
const KEPT: usize = 16;
/// How long a panic stays in the node's reports.
pub const REPORTED_FOR: Duration = Duration::from_secs(600);

/// What a processor was doing when it panicked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Doing {
    /// Folding the event at this offset in; the processor was restarted
    /// from its checkpoint and that event passed over.
    Folding { offset: u64 },
    /// Answering a query; its state was not changed.
    Answering,
    /// Encoding its state for a checkpoint; none was taken.
    Checkpointing,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessorPanic {
    pub partition: PartitionId,
    pub processor: String,
    pub doing: Doing,
    pub message: String,
    /// Wall clock, ms since the Unix epoch.
    pub at_ms: u64,
}

impl ProcessorPanic {
    /// The panic in words, for logs and the status.
    pub fn describe(&self) -> String {
        let doing = match self.doing {
            Doing::Folding { offset } => {
                format!(
                    "folding the event at offset {offset} in (restarted from its checkpoint; that event passed over)"
                )
            }
            Doing::Answering => "answering a query (its state is unchanged)".to_owned(),
            Doing::Checkpointing => "encoding a checkpoint (none was taken)".to_owned(),
        };
        format!("processor `{}` of partition {} panicked {doing}: {}", self.processor, self.partition, self.message)
    }
}

/// The node's recent processor panics.
#[derive(Debug, Default)]
pub struct PanicLog {
    recent: Mutex<VecDeque<ProcessorPanic>>,
}

impl PanicLog {
    pub fn record(&self, panic: ProcessorPanic) {
        tracing::error!(partition = panic.partition, processor = %panic.processor, "{}", panic.describe());
        crate::metrics::processor_panicked(panic.partition, &panic.processor);
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent.push_back(panic);
        while recent.len() > KEPT {
            recent.pop_front();
        }
    }

    /// Panics since `since_ms`, oldest first.
    pub fn since(&self, since_ms: u64) -> Vec<ProcessorPanic> {
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent.iter().filter(|p| p.at_ms >= since_ms).cloned().collect()
    }
}

/// Runs `f`, turning a panic into its message.
pub fn caught<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| message(payload.as_ref()))
}

fn message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panics_are_caught_with_their_message_and_kept_within_bounds() {
        assert_eq!(caught(|| 5), Ok(5));
        let err = caught(|| -> u8 { panic!("bad {}", 7) }).unwrap_err();
        assert_eq!(err, "bad 7");
        let log = PanicLog::default();
        for i in 0..(KEPT as u64 + 4) {
            log.record(ProcessorPanic {
                partition: 1,
                processor: "stats".into(),
                doing: Doing::Folding { offset: i },
                message: "boom".into(),
                at_ms: 1000 + i,
            });
        }
        let kept = log.since(0);
        assert_eq!(kept.len(), KEPT);
        assert_eq!(kept[0].doing, Doing::Folding { offset: 4 });
        assert_eq!(log.since(1000 + KEPT as u64 + 3).len(), 1);
        assert!(kept[0].describe().contains("offset 4"));
    }
}
