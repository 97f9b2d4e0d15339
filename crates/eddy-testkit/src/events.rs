//! What a test compares to find lost or duplicated events: the events a
//! bench saw acknowledged (its `--ack-log`) and the events the cluster
//! stores (`eddyctl tail`).

use std::collections::BTreeSet;
use std::path::Path;

use crate::TestCluster;

/// An event as both sides name it: partition, offset, key and uid.
pub type EventRef = (u64, u64, String, String);

/// The events of an `eddyctl bench --ack-log` file: one line per
/// acknowledged event, `partition offset key uid`.
pub fn acked_events(path: &Path) -> anyhow::Result<BTreeSet<EventRef>> {
    let text = std::fs::read_to_string(path)?;
    text.lines()
        .map(|line| {
            let f: Vec<&str> = line.split(' ').collect();
            anyhow::ensure!(f.len() == 4, "not an ack-log line: {line:?}");
            Ok((f[0].parse()?, f[1].parse()?, f[2].to_owned(), f[3].to_owned()))
        })
        .collect()
}

impl TestCluster {
    /// Every event the cluster stores, as `eddyctl tail` on node `via`
    /// reads them from the earliest to the latest offset of each partition.
    pub fn stored_events(&self, via: u64) -> anyhow::Result<BTreeSet<EventRef>> {
        let tail = self.eddyctl(via, &["tail", "--from", "earliest", "--until-latest", "--json"])?;
        anyhow::ensure!(tail.status.success(), "tail: {}", String::from_utf8_lossy(&tail.stderr));
        String::from_utf8(tail.stdout)?
            .lines()
            .map(|line| {
                let e: serde_json::Value = serde_json::from_str(line)?;
                let number = |k: &str| e[k].as_u64().ok_or_else(|| anyhow::anyhow!("no {k} in {line}"));
                let text = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
                Ok((number("partition")?, number("offset")?, text("key"), text("uid")))
            })
            .collect()
    }
}
