//! Queries (processors, a key's events, offset ranges) and subscriptions.

use std::pin::Pin;
use std::sync::Arc;

use eddy_proto::v1::{
    self, QueryRequest, QueryResponse, SubscribeRequest, aggregate_query, query_request, subscribe_request,
};
use eddy_worker::Worker;
use eddy_worker::api::SubscribeFrom;
use futures::Stream;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use super::events::{read_limit, stored_to_wire};
use crate::status::worker_status;

/// Events a subscription reads from the log at a time.
const SUBSCRIBE_CHUNK: usize = 1000;
/// Events a subscriber may lag behind before the stream waits for it.
const SUBSCRIBE_BUFFER: usize = 1024;

pub async fn answer(worker: &Worker, request: QueryRequest) -> Result<QueryResponse, Status> {
    let partition = request.partition;
    let query = request.query.ok_or_else(|| Status::invalid_argument("a query must say what it asks"))?;
    match query {
        query_request::Query::Aggregate(aggregate) => {
            let mut ask = match aggregate.of {
                Some(aggregate_query::Of::Key(key)) => json!({"key": key}),
                Some(aggregate_query::Of::Type(kind)) => json!({"type": kind}),
                None => return Err(Status::invalid_argument("an aggregate query names a key or a type")),
            };
            if let Some(from) = aggregate.from_ms {
                ask["from_ms"] = json!(from);
            }
            if let Some(to) = aggregate.to_ms {
                ask["to_ms"] = json!(to);
            }
            processor(worker, partition, "stats", &ask, request.wait_for_offset).await
        }
        query_request::Query::Processor(p) => {
            let ask: Value = if p.json.trim().is_empty() {
                json!({})
            } else {
                serde_json::from_str(&p.json).map_err(|e| Status::invalid_argument(format!("processor query: {e}")))?
            };
            processor(worker, partition, &p.name, &ask, request.wait_for_offset).await
        }
        query_request::Query::EventsByKey(by_key) => {
            let key = by_key.key.clone();
            let result = worker
                .read_matching(partition, by_key.from_offset, 0, read_limit(by_key.limit), |e| e.event.key == key)
                .map_err(|e| worker_status(&e))?;
            Ok(events(result))
        }
        query_request::Query::Offsets(range) => {
            let result = worker
                .read(partition, range.from_offset, range.to_offset, read_limit(range.max_events))
                .map_err(|e| worker_status(&e))?;
            Ok(events(result))
        }
    }
}

fn events(result: eddy_worker::api::ReadResult) -> QueryResponse {
    QueryResponse {
        events: result.events.into_iter().map(stored_to_wire).collect(),
        end_offset: result.end_offset,
        ..Default::default()
    }
}

async fn processor(
    worker: &Worker,
    partition: u32,
    name: &str,
    ask: &Value,
    wait_for: u64,
) -> Result<QueryResponse, Status> {
    let (answer, processed) =
        worker.query_processor(partition, name, ask, wait_for).await.map_err(|e| worker_status(&e))?;
    Ok(QueryResponse { json: answer.to_string(), processed_offset: processed, ..Default::default() })
}

type EventStream = Pin<Box<dyn Stream<Item = Result<v1::StoredEvent, Status>> + Send>>;

pub fn subscribe(worker: Arc<Worker>, request: SubscribeRequest) -> Result<EventStream, Status> {
    let partition = request.partition;
    let from = match request.start {
        None | Some(subscribe_request::Start::Latest(_)) => SubscribeFrom::Latest,
        Some(subscribe_request::Start::Earliest(_)) => SubscribeFrom::Earliest,
        Some(subscribe_request::Start::Offset(offset)) => SubscribeFrom::Offset(offset),
        Some(subscribe_request::Start::TimeMs(ms)) => SubscribeFrom::TimeMs(ms),
    };
    let (mut next, mut view) = worker.subscription(partition, from).map_err(|e| worker_status(&e))?;
    let types = request.types;
    let (send, receive) = mpsc::channel(SUBSCRIBE_BUFFER);
    tokio::spawn(async move {
        loop {
            let end = view.borrow_and_update().next_offset;
            while next < end {
                let read = worker.read_matching(partition, next, end, SUBSCRIBE_CHUNK, |e| {
                    types.is_empty() || types.contains(&e.event.event_type)
                });
                let read = match read {
                    Ok(read) => read,
                    // Leadership moved, or retention passed us: the
                    // subscriber resubscribes where it stopped.
                    Err(err) => {
                        let _ = send.send(Err(worker_status(&err))).await;
                        return;
                    }
                };
                let reached = read.events.last().map(|e| e.offset + 1);
                for event in read.events {
                    if send.send(Ok(stored_to_wire(event))).await.is_err() {
                        return;
                    }
                }
                // A filtered read may return nothing for a whole chunk.
                next = reached.unwrap_or(end).max(if types.is_empty() {
                    next
                } else {
                    end.min(next + SUBSCRIBE_CHUNK as u64)
                });
            }
            tokio::select! {
                changed = view.changed() => if changed.is_err() { return },
                () = send.closed() => return,
            }
        }
    });
    Ok(Box::pin(ReceiverStream::new(receive)))
}
