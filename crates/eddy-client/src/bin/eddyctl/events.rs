//! Event commands: submit, tail.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use eddy_client::events::{EventAck, EventClient, RetryPolicy};
use eddy_client::producer::{Producer, ProducerConfig};
use eddy_core::{EventUid, Hlc};
use eddy_proto::v1;
use serde_json::json;

#[derive(Debug, clap::Args)]
pub struct SubmitArgs {
    /// Event type.
    #[arg(long = "type", default_value = "event")]
    event_type: String,
    /// Event key: events with the same key keep their order.
    #[arg(long)]
    key: Option<String>,
    /// An attribute, key=value; repeatable.
    #[arg(long = "attr", value_parser = parse_attr)]
    attributes: Vec<(String, String)>,
    /// The payload; without it every line of standard input is one event.
    #[arg(long)]
    payload: Option<String>,
    /// One JSON object per acknowledged event.
    #[arg(long)]
    json: bool,
}

fn parse_attr(text: &str) -> Result<(String, String), String> {
    let (k, v) = text.split_once('=').ok_or_else(|| format!("`{text}` is not key=value"))?;
    Ok((k.to_owned(), v.to_owned()))
}

pub async fn connect(endpoints: &[String], timeout: Duration) -> anyhow::Result<Arc<EventClient>> {
    let client = EventClient::connect(endpoints, timeout, RetryPolicy::default())
        .await
        .context("cannot read the partition map")?;
    Ok(Arc::new(client))
}

fn ack_json(ack: &EventAck) -> serde_json::Value {
    json!({
        "partition": ack.partition,
        "offset": ack.offset,
        "uid": ack.uid.to_string(),
        "hlc": ack.hlc.0,
        "duplicate": ack.duplicate,
    })
}

pub async fn submit(client: Arc<EventClient>, args: SubmitArgs) -> anyhow::Result<()> {
    let producer = Arc::new(Producer::new(client, ProducerConfig::default()));
    let attributes: BTreeMap<String, String> = args.attributes.into_iter().collect();
    let make = |payload: String| v1::Event {
        key: args.key.clone().unwrap_or_default().into_bytes().into(),
        r#type: args.event_type.clone(),
        payload: payload.into_bytes().into(),
        attributes: attributes.clone(),
    };
    let payloads: Vec<String> = match args.payload {
        Some(payload) => vec![payload],
        None => std::io::stdin().lock().lines().collect::<Result<_, _>>().context("reading standard input")?,
    };
    // All events go out at once; the producer batches and orders them.
    let sends: Vec<_> = payloads
        .into_iter()
        .map(|payload| {
            let producer = producer.clone();
            let event = make(payload);
            tokio::spawn(async move { producer.send(event).await })
        })
        .collect();
    let mut out = std::io::stdout().lock();
    for send in sends {
        let ack = send.await?.map_err(|e| anyhow::anyhow!("{e}"))?;
        if args.json {
            writeln!(out, "{}", ack_json(&ack))?;
        } else {
            writeln!(out, "partition {} offset {} uid {} hlc {}", ack.partition, ack.offset, ack.uid, Hlc(ack.hlc.0))?;
        }
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct TailArgs {
    /// Partitions to read (repeatable); all when absent.
    #[arg(long)]
    partition: Vec<u32>,
    /// Where to start: earliest, latest, or an offset.
    #[arg(long, default_value = "latest")]
    from: String,
    /// Stop at each partition's end as of the start, instead of following.
    #[arg(long)]
    until_latest: bool,
    /// Only events of this type.
    #[arg(long = "type")]
    event_type: Option<String>,
    /// One JSON object per event and line.
    #[arg(long)]
    json: bool,
}

pub fn event_json(event: &v1::StoredEvent) -> serde_json::Value {
    let body = event.event.clone().unwrap_or_default();
    let uid = u128::from_be_bytes(event.uid.as_slice().try_into().unwrap_or([0; 16]));
    json!({
        "partition": event.partition,
        "offset": event.offset,
        "uid": EventUid(uid).to_string(),
        "hlc": event.hlc,
        "key": String::from_utf8_lossy(&body.key),
        "type": body.r#type,
        "payload": String::from_utf8_lossy(&body.payload),
        "attributes": body.attributes,
    })
}

pub async fn tail(client: Arc<EventClient>, args: TailArgs) -> anyhow::Result<()> {
    let partitions: Vec<u32> =
        if args.partition.is_empty() { (0..client.partition_count()).collect() } else { args.partition.clone() };
    // Where each partition is read from, and where it stops (None: follow).
    let mut cursors = BTreeMap::new();
    for p in &partitions {
        let head = client.read(*p, 0, 0, 1).await;
        let (start, end) = match head {
            Ok(r) => (r.start_offset, r.end_offset),
            Err(err) if err.code() == Some(tonic::Code::OutOfRange) => (0, 0),
            Err(err) => return Err(err).with_context(|| format!("partition {p}")),
        };
        let from = match args.from.as_str() {
            "earliest" => start,
            "latest" => end,
            offset => offset.parse::<u64>().context("--from takes earliest, latest or an offset")?.max(start),
        };
        cursors.insert(*p, (from, args.until_latest.then_some(end)));
    }
    let mut out = std::io::stdout().lock();
    loop {
        let mut progressed = false;
        for (p, (next, stop)) in cursors.iter_mut() {
            if stop.is_some_and(|stop| *next >= stop) {
                continue;
            }
            let read =
                client.read(*p, *next, stop.unwrap_or(0), 1000).await.with_context(|| format!("partition {p}"))?;
            for event in &read.events {
                *next = event.offset + 1;
                progressed = true;
                let body = event.event.as_ref();
                if args.event_type.as_ref().is_some_and(|t| body.is_none_or(|b| &b.r#type != t)) {
                    continue;
                }
                if args.json {
                    writeln!(out, "{}", event_json(event))?;
                } else {
                    let body = body.cloned().unwrap_or_default();
                    writeln!(
                        out,
                        "{}:{} {} {} {}",
                        event.partition,
                        event.offset,
                        String::from_utf8_lossy(&body.key),
                        body.r#type,
                        String::from_utf8_lossy(&body.payload)
                    )?;
                }
            }
        }
        out.flush()?;
        let done = cursors.values().all(|(next, stop)| stop.is_some_and(|stop| *next >= stop));
        if done {
            return Ok(());
        }
        if !progressed {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
