//! What a test compares to find lost or duplicated events: the events a
//! bench saw acknowledged (its `--ack-log`) and the events the cluster
//! stores (`eddyctl tail`).

use std::collections::{BTreeMap, BTreeSet};
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
    /// The payload of every event node `id`'s own replica of `partition`
    /// holds, by offset, read from that node alone (a follower's replica
    /// may lag; no other node need answer). A second event at an offset is
    /// an error.
    pub async fn replica_payloads(&self, id: u64, partition: u32) -> anyhow::Result<BTreeMap<u64, Vec<u8>>> {
        use eddy_proto::v1::{ReadRequest, event_service_client::EventServiceClient};
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", self.endpoint(id)?))?;
        let mut client = EventServiceClient::new(channel.connect().await?).max_decoding_message_size(64 << 20);
        let mut stored = BTreeMap::new();
        let mut next = 0;
        loop {
            let request =
                ReadRequest { partition, from_offset: next, to_offset: 0, max_events: 500, any_replica: true };
            let read = client.read(request).await?.into_inner();
            let Some(last) = read.events.last() else { return Ok(stored) };
            next = last.offset + 1;
            for event in read.events {
                let payload = event.event.map(|e| e.payload.to_vec()).unwrap_or_default();
                anyhow::ensure!(stored.insert(event.offset, payload).is_none(), "offset {} twice", event.offset);
            }
        }
    }

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
