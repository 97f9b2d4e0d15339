//! Compares what a workload was told with what the cluster holds: every
//! acknowledged event is stored exactly once, where it was acknowledged;
//! offsets are dense; each key's events are in the order they were sent.

use std::collections::{BTreeMap, HashMap};

use anyhow::{bail, ensure};
use eddy_client::events::EventClient;
use eddy_proto::v1;

use crate::workload::{History, Sent, payload};

/// Reads every partition from its oldest offset to its end.
pub async fn read_all(client: &EventClient) -> anyhow::Result<BTreeMap<u32, Vec<v1::StoredEvent>>> {
    let mut all = BTreeMap::new();
    for partition in 0..client.partition_count() {
        let mut events = Vec::new();
        let first = client.read(partition, 0, 0, 1).await?;
        let (mut next, end) = (first.start_offset, first.end_offset);
        while next < end {
            let read = client.read(partition, next, end, 10_000).await?;
            let Some(last) = read.events.last() else {
                bail!("partition {partition}: no events at {next} before {end}")
            };
            next = last.offset + 1;
            events.extend(read.events);
        }
        all.insert(partition, events);
    }
    Ok(all)
}

#[derive(Debug, Default)]
pub struct Report {
    pub stored: usize,
    pub acked: usize,
    /// Events whose fate the workload did not learn, found stored.
    pub unknown_stored: usize,
    pub unknown_missing: usize,
}

/// Checks the stored partitions against the history.
pub fn check(history: &History, stored: &BTreeMap<u32, Vec<v1::StoredEvent>>) -> anyhow::Result<Report> {
    let mut report = Report::default();
    // Where each payload is stored; a payload found twice is a duplicate.
    let mut found: HashMap<String, (u32, u64)> = HashMap::new();
    for (partition, events) in stored {
        for pair in events.windows(2) {
            ensure!(
                pair[1].offset == pair[0].offset + 1,
                "partition {partition}: gap between offsets {} and {}",
                pair[0].offset,
                pair[1].offset
            );
        }
        for event in events {
            report.stored += 1;
            let body = String::from_utf8_lossy(&event.event.as_ref().map(|e| e.payload.to_vec()).unwrap_or_default())
                .into_owned();
            if let Some(first) = found.insert(body.clone(), (*partition, event.offset)) {
                bail!("event {body} is stored twice: at {first:?} and at ({partition}, {})", event.offset);
            }
        }
    }
    for (key, sent) in &history.keys {
        let mut last_offset: Option<u64> = None;
        for (seq, outcome) in sent {
            let body = payload(key, *seq);
            let place = found.get(&body).copied();
            match (outcome, place) {
                (Sent::Acked(ack), Some(place)) => {
                    ensure!(
                        place == (ack.partition, ack.offset),
                        "event {body} acknowledged at ({}, {}) but stored at {place:?}",
                        ack.partition,
                        ack.offset
                    );
                    report.acked += 1;
                }
                (Sent::Acked(ack), None) => {
                    bail!("acknowledged event {body} (partition {}, offset {}) is missing", ack.partition, ack.offset)
                }
                (Sent::Unknown(_), Some(_)) => report.unknown_stored += 1,
                (Sent::Unknown(_), None) => report.unknown_missing += 1,
            }
            if let Some((_, offset)) = place {
                ensure!(
                    last_offset.is_none_or(|last| offset > last),
                    "key {key}: event {seq} is stored before an earlier one"
                );
                last_offset = Some(offset);
            }
        }
    }
    Ok(report)
}
