//! `eddyctl query`: processors' answers and a key's events.

use std::sync::Arc;

use anyhow::Context;
use eddy_client::events::EventClient;
use eddy_proto::v1::{self, AggregateQuery, EventsByKey, ProcessorQuery, QueryRequest, aggregate_query, query_request};
use serde_json::{Value, json};

#[derive(Debug, clap::Subcommand)]
pub enum QueryCommand {
    /// Count, sum, min, max and average of the `stats` processor, for a key
    /// or (over every partition) for a type; in total, or over the windows
    /// that start between --from-ms and --to-ms (event time).
    Stats {
        #[arg(long, conflicts_with = "event_type", required_unless_present = "event_type")]
        key: Option<String>,
        #[arg(long = "type")]
        event_type: Option<String>,
        #[arg(long)]
        from_ms: Option<u64>,
        #[arg(long)]
        to_ms: Option<u64>,
    },
    /// The last events of a key (the `latest` processor).
    Latest {
        #[arg(long)]
        key: String,
    },
    /// A key's events from its partition's log.
    Events {
        #[arg(long)]
        key: String,
        #[arg(long, default_value_t = 0)]
        from_offset: u64,
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Any processor of one partition, with a JSON request.
    Processor {
        name: String,
        #[arg(long)]
        partition: u32,
        #[arg(long, default_value = "{}")]
        request: String,
    },
}

pub async fn run(client: Arc<EventClient>, command: QueryCommand) -> anyhow::Result<()> {
    let answer = match command {
        QueryCommand::Stats { key: Some(key), from_ms, to_ms, .. } => {
            let of = aggregate_query::Of::Key(key.clone());
            let query = query_request::Query::Aggregate(AggregateQuery { of: Some(of), from_ms, to_ms });
            ask(&client, client.partition_for_key(key.as_bytes()), query).await?
        }
        QueryCommand::Stats { event_type: Some(kind), from_ms, to_ms, .. } => {
            // A type's events are in every partition: ask them all, merge.
            let mut merged = Value::Null;
            for partition in 0..client.partition_count() {
                let of = aggregate_query::Of::Type(kind.clone());
                let query = query_request::Query::Aggregate(AggregateQuery { of: Some(of), from_ms, to_ms });
                let part = ask(&client, partition, query).await?;
                let field = if from_ms.is_some() || to_ms.is_some() { "range" } else { "total" };
                merged = merge(&merged, &part[field]);
            }
            json!({"of": {"type": kind}, "stats": merged})
        }
        QueryCommand::Stats { .. } => anyhow::bail!("name a --key or a --type"),
        QueryCommand::Latest { key } => {
            let query = query_request::Query::Processor(ProcessorQuery {
                name: "latest".into(),
                json: json!({"key": key}).to_string(),
            });
            ask(&client, client.partition_for_key(key.as_bytes()), query).await?
        }
        QueryCommand::Events { key, from_offset, limit } => {
            let partition = client.partition_for_key(key.as_bytes());
            let query =
                query_request::Query::EventsByKey(EventsByKey { key: key.clone().into_bytes(), from_offset, limit });
            let response = client.query(QueryRequest { partition, query: Some(query), wait_for_offset: 0 }).await?;
            let events: Vec<Value> = response.events.iter().map(super::events::event_json).collect();
            json!({"key": key, "partition": partition, "events": events})
        }
        QueryCommand::Processor { name, partition, request } => {
            serde_json::from_str::<Value>(&request).context("--request must be JSON")?;
            ask(&client, partition, query_request::Query::Processor(ProcessorQuery { name, json: request })).await?
        }
    };
    println!("{}", serde_json::to_string_pretty(&answer)?);
    Ok(())
}

/// Asks a processor, once it has folded in every event stored when the
/// question arrives: a query right after a submit sees the event.
async fn ask(client: &EventClient, partition: u32, query: query_request::Query) -> anyhow::Result<Value> {
    let request = QueryRequest { partition, query: Some(query), wait_for_offset: u64::MAX };
    let response: v1::QueryResponse = client.query(request).await?;
    serde_json::from_str(&response.json).context("the processor's answer is not JSON")
}

/// Merges two aggregates as `stats` prints them.
fn merge(a: &Value, b: &Value) -> Value {
    if a.is_null() {
        return b.clone();
    }
    let num = |v: &Value, k: &str| v[k].as_f64();
    let count = num(a, "count").unwrap_or(0.0) + num(b, "count").unwrap_or(0.0);
    let measured = num(a, "measured").unwrap_or(0.0) + num(b, "measured").unwrap_or(0.0);
    let sum = num(a, "sum").unwrap_or(0.0) + num(b, "sum").unwrap_or(0.0);
    let pick = |k: &str, f: fn(f64, f64) -> f64| match (num(a, k), num(b, k)) {
        (Some(x), Some(y)) => Some(f(x, y)),
        (x, y) => x.or(y),
    };
    json!({
        "count": count,
        "measured": measured,
        "sum": sum,
        "min": pick("min", f64::min),
        "max": pick("max", f64::max),
        "avg": (measured > 0.0).then(|| sum / measured),
    })
}
