//! The event API: submit, pipelined submit stream, read.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use eddy_core::{Event, EventUid};
use eddy_proto::meta;
use eddy_proto::v1::event_service_server::EventService;
use eddy_proto::v1::{
    self, AckLevel, DigestRequest, DigestResponse, QueryRequest, QueryResponse, ReadRequest, ReadResponse, SubmitError,
    SubmitRequest, SubmitResponse, SubmitStreamResponse, SubscribeRequest, submit_stream_response,
};
use eddy_worker::Worker;
use eddy_worker::api::SubmitAck;
use eddy_worker::types::ProducerStamp;
use futures::Stream;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::status::worker_status;

/// Requests of one submit stream in flight at once.
const STREAM_IN_FLIGHT: usize = 1024;
/// Events one read returns at most.
const MAX_READ_EVENTS: usize = 10_000;

pub struct EventApi {
    pub node_id: u64,
    pub worker: Option<Arc<Worker>>,
}

fn event_from_wire(event: v1::Event) -> Event {
    Event { key: event.key, event_type: event.r#type, payload: event.payload, attributes: event.attributes }
}

fn event_to_wire(event: Event) -> v1::Event {
    v1::Event { key: event.key, r#type: event.event_type, payload: event.payload, attributes: event.attributes }
}

fn ack_to_wire(ack: &SubmitAck, processed: bool, request_id: u64) -> SubmitResponse {
    SubmitResponse {
        partition: ack.partition,
        first_offset: ack.ack.first_offset,
        count: ack.ack.count,
        first_hlc: ack.ack.first_hlc.0,
        uid_salt: ack.uid_salt,
        duplicate: ack.duplicate,
        request_id,
        processed,
    }
}

fn error_to_wire(status: &Status) -> SubmitError {
    let text = |key: &str| status.metadata().get(key).and_then(|v| v.to_str().ok()).map(str::to_owned);
    SubmitError {
        code: status.code() as i32,
        message: status.message().to_owned(),
        leader_id: text(meta::LEADER_ID).and_then(|v| v.parse().ok()).unwrap_or(0),
        leader_addr: text(meta::LEADER_ADDR).unwrap_or_default(),
        retry_after_ms: text(meta::RETRY_AFTER_MS).and_then(|v| v.parse().ok()).unwrap_or(0),
    }
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl EventApi {
    fn worker(&self) -> Result<&Arc<Worker>, Status> {
        self.worker.as_ref().ok_or_else(|| {
            Status::failed_precondition(format!("node {} has no worker role; send events to a worker", self.node_id))
        })
    }
}

/// How long an answer waits for the processors, with ACK_LEVEL_PROCESSED,
/// before it goes out as committed only.
const PROCESSED_WAIT: Duration = Duration::from_secs(30);

/// Queues a request's batch; the returned future waits for its commit
/// and, when the request asks, for its processing. It answers the ack and
/// whether the processors had folded the batch in.
fn begin(
    worker: &Arc<Worker>,
    request: SubmitRequest,
) -> Result<impl Future<Output = Result<(SubmitAck, bool), Status>> + use<>, Status> {
    let producer = request.producer.map(|p| ProducerStamp { id: p.id, sequence: p.sequence });
    let wait_processed = request.ack() == AckLevel::Processed;
    let events = request.events.into_iter().map(event_from_wire).collect();
    let queued = worker.begin_submit(request.partition, events, producer, now_ms()).map_err(|e| worker_status(&e))?;
    let worker = worker.clone();
    Ok(async move {
        let ack = queued.finish().await.map_err(|e| worker_status(&e))?;
        // A committed batch is never answered with an error: if the
        // processors cannot be waited for, the answer says so.
        let end = ack.ack.first_offset + u64::from(ack.ack.count);
        let processed = wait_processed && worker.wait_processed(ack.partition, end, PROCESSED_WAIT).await;
        Ok((ack, processed))
    })
}

type AnswerStream = Pin<Box<dyn Stream<Item = Result<SubmitStreamResponse, Status>> + Send>>;

#[tonic::async_trait]
impl EventService for EventApi {
    async fn submit(&self, request: Request<SubmitRequest>) -> Result<Response<SubmitResponse>, Status> {
        let request = request.into_inner();
        let request_id = request.request_id;
        let (ack, processed) = begin(self.worker()?, request)?.await?;
        Ok(Response::new(ack_to_wire(&ack, processed, request_id)))
    }

    type SubmitStreamStream = AnswerStream;

    async fn submit_stream(
        &self,
        request: Request<Streaming<SubmitRequest>>,
    ) -> Result<Response<Self::SubmitStreamStream>, Status> {
        let worker = self.worker()?.clone();
        let mut requests = request.into_inner();
        let (answers, stream) = mpsc::channel(STREAM_IN_FLIGHT);
        // One task per stream: it reads requests while fewer than the window
        // are in flight, and answers them as they commit.
        tokio::spawn(async move {
            let mut in_flight = FuturesUnordered::new();
            let mut reading = true;
            loop {
                tokio::select! {
                    next = requests.next(), if reading && in_flight.len() < STREAM_IN_FLIGHT => match next {
                        Some(Ok(request)) => {
                            let request_id = request.request_id;
                            // Queued in arrival order, so batches keep their order per partition.
                            let waiting = begin(&worker, request);
                            in_flight.push(async move {
                                let result = match waiting {
                                    Ok(waiting) => waiting.await,
                                    Err(status) => Err(status),
                                };
                                (request_id, result)
                            });
                        }
                        Some(Err(status)) => {
                            let _ = answers.send(Err(status)).await;
                            return;
                        }
                        None => reading = false,
                    },
                    Some((request_id, result)) = in_flight.next(), if !in_flight.is_empty() => {
                        let answer = match result {
                            Ok((ack, processed)) => {
                                submit_stream_response::Result::Ok(ack_to_wire(&ack, processed, request_id))
                            }
                            Err(status) => submit_stream_response::Result::Error(error_to_wire(&status)),
                        };
                        if answers.send(Ok(SubmitStreamResponse { request_id, result: Some(answer) })).await.is_err() {
                            return;
                        }
                    }
                    else => return,
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(stream))))
    }

    async fn read(&self, request: Request<ReadRequest>) -> Result<Response<ReadResponse>, Status> {
        let worker = self.worker()?;
        let request = request.into_inner();
        let limit = read_limit(request.max_events);
        let result = if request.any_replica {
            worker.read_any_replica(request.partition, request.from_offset, request.to_offset, limit)
        } else {
            worker.read(request.partition, request.from_offset, request.to_offset, limit)
        }
        .map_err(|e| worker_status(&e))?;
        let events = result.events.into_iter().map(stored_to_wire).collect();
        Ok(Response::new(ReadResponse { events, end_offset: result.end_offset, start_offset: result.start_offset }))
    }

    async fn query(&self, request: Request<QueryRequest>) -> Result<Response<QueryResponse>, Status> {
        super::query::answer(self.worker()?, request.into_inner()).await.map(Response::new)
    }

    type SubscribeStream = Pin<Box<dyn Stream<Item = Result<v1::StoredEvent, Status>> + Send>>;

    async fn subscribe(&self, request: Request<SubscribeRequest>) -> Result<Response<Self::SubscribeStream>, Status> {
        let stream = super::query::subscribe(self.worker()?.clone(), request.into_inner())?;
        Ok(Response::new(stream))
    }

    async fn processor_digest(&self, request: Request<DigestRequest>) -> Result<Response<DigestResponse>, Status> {
        let (offset, digest, restored_from) =
            self.worker()?.processor_digest(request.into_inner().partition).map_err(|e| worker_status(&e))?;
        Ok(Response::new(DigestResponse { offset, digest, restored_from }))
    }
}

pub fn read_limit(requested: u32) -> usize {
    if requested == 0 { MAX_READ_EVENTS } else { (requested as usize).min(MAX_READ_EVENTS) }
}

pub fn stored_to_wire(stored: eddy_core::StoredEvent) -> v1::StoredEvent {
    v1::StoredEvent {
        partition: stored.partition,
        offset: stored.offset,
        uid: uid_bytes(stored.uid),
        hlc: stored.hlc.0,
        event: Some(event_to_wire(stored.event)),
    }
}

pub fn uid_bytes(uid: EventUid) -> Vec<u8> {
    uid.0.to_be_bytes().to_vec()
}
