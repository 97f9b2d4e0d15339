//! `synthetic`: spends a configured CPU time per event, by type, to
//! emulate costly handlers in load tests. Its state is what it did: events
//! and CPU time per type.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use eddy_core::StoredEvent;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Processor, decode_state, encode_state};
use crate::cpu::thread_cpu_time;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Spent {
    events: u64,
    cost_us: u64,
}

pub struct Synthetic {
    cost_us: BTreeMap<String, u64>,
    spent: BTreeMap<String, Spent>,
}

impl Synthetic {
    pub fn new(cost_us: BTreeMap<String, u64>) -> Self {
        Synthetic { cost_us, spent: BTreeMap::new() }
    }

    fn cost_of(&self, event_type: &str) -> u64 {
        self.cost_us.get(event_type).or_else(|| self.cost_us.get("default")).copied().unwrap_or(0)
    }
}

/// Spends `duration` of this thread's CPU time. CPU time, not wall time:
/// on a busy host a wall-clock loop would cost less CPU than configured,
/// and what a handler costs is what the models must learn.
fn burn(duration: Duration) {
    let start = thread_cpu_time();
    let wall = Instant::now();
    let mut x = 0u64;
    // The wall-clock bound only guards against a clock that does not move.
    while thread_cpu_time().saturating_sub(start) < duration && wall.elapsed() < duration * 100 {
        for i in 0..256u64 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(i);
        }
        std::hint::black_box(x);
    }
}

impl Processor for Synthetic {
    fn name(&self) -> &str {
        "synthetic"
    }

    fn apply(&mut self, event: &StoredEvent) {
        let cost = self.cost_of(&event.event.event_type);
        if cost > 0 {
            burn(Duration::from_micros(cost));
        }
        let spent = self.spent.entry(event.event.event_type.clone()).or_default();
        spent.events += 1;
        spent.cost_us += cost;
    }

    fn checkpoint(&self) -> Vec<u8> {
        encode_state(&self.spent)
    }

    fn restore(&mut self, checkpoint: &[u8]) -> Result<(), String> {
        self.spent = decode_state(checkpoint)?;
        Ok(())
    }

    /// `{}`: events and CPU time spent per type.
    fn query(&self, _request: &Value) -> Result<Value, String> {
        let types: BTreeMap<&String, Value> =
            self.spent.iter().map(|(t, s)| (t, json!({"events": s.events, "cost_us": s.cost_us}))).collect();
        Ok(json!({"types": types}))
    }
}
