//! `latest`: the last N events of every key.

use std::collections::{BTreeMap, VecDeque};

use eddy_core::StoredEvent;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Processor, decode_state, encode_state};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Kept {
    offset: u64,
    hlc: u64,
    event_type: String,
    payload: Vec<u8>,
}

pub struct Latest {
    per_key: usize,
    keys: BTreeMap<Vec<u8>, VecDeque<Kept>>,
}

impl Latest {
    pub fn new(per_key: usize) -> Self {
        Latest { per_key: per_key.max(1), keys: BTreeMap::new() }
    }
}

impl Processor for Latest {
    fn name(&self) -> &str {
        "latest"
    }

    fn apply(&mut self, event: &StoredEvent) {
        let kept = self.keys.entry(event.event.key.to_vec()).or_default();
        kept.push_back(Kept {
            offset: event.offset,
            hlc: event.hlc.0,
            event_type: event.event.event_type.clone(),
            payload: event.event.payload.to_vec(),
        });
        while kept.len() > self.per_key {
            kept.pop_front();
        }
    }

    fn checkpoint(&self) -> Vec<u8> {
        encode_state(&self.keys)
    }

    fn restore(&mut self, checkpoint: &[u8]) -> Result<(), String> {
        self.keys = decode_state(checkpoint)?;
        Ok(())
    }

    /// `{"key": K}`: the key's last events, newest last.
    fn query(&self, request: &Value) -> Result<Value, String> {
        let key = request.get("key").and_then(Value::as_str).ok_or("latest: name a \"key\"")?;
        let events: Vec<Value> = self
            .keys
            .get(key.as_bytes())
            .into_iter()
            .flatten()
            .map(|k| {
                json!({
                    "offset": k.offset,
                    "hlc": k.hlc,
                    "type": k.event_type,
                    "payload": String::from_utf8_lossy(&k.payload),
                })
            })
            .collect();
        Ok(json!({"key": key, "events": events}))
    }
}
