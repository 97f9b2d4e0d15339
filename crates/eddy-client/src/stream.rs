//! Pipelined submits: one SubmitStream per node, many requests in flight on
//! it, answers matched by request id. Far cheaper per request than unary
//! calls when each request carries few events.
//!
//! Every request has a deadline: a leader that stops answering with its
//! connection still open (a paused process) holds a request for one
//! attempt timeout, not for as long as it is silent.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eddy_proto::v1::event_service_client::EventServiceClient;
use eddy_proto::v1::{SubmitRequest, SubmitResponse, SubmitStreamResponse, submit_stream_response};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;

use crate::ClientError;
use crate::events::EventClient;

type Waiters = Arc<Mutex<HashMap<u64, oneshot::Sender<SubmitStreamResponse>>>>;

/// One open SubmitStream to a node.
struct NodeStream {
    requests: mpsc::Sender<SubmitRequest>,
    waiting: Waiters,
}

pub struct StreamSubmitter {
    client: Arc<EventClient>,
    streams: Mutex<HashMap<String, Arc<NodeStream>>>,
    next_id: AtomicU64,
    attempts: u32,
}

/// How many requests may wait to be sent on one node's stream.
const STREAM_QUEUE: usize = 4096;

impl StreamSubmitter {
    pub fn new(client: Arc<EventClient>) -> Self {
        StreamSubmitter { client, streams: Mutex::new(HashMap::new()), next_id: AtomicU64::new(1), attempts: 20 }
    }

    pub fn client(&self) -> &Arc<EventClient> {
        &self.client
    }

    fn stream_to(&self, partition: u32) -> Result<(String, Arc<NodeStream>), ClientError> {
        let (url, channel) = self.client.leader_channel(partition)?;
        let mut streams = self.streams.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(stream) = streams.get(&url).filter(|s| !s.requests.is_closed()) {
            return Ok((url, stream.clone()));
        }
        let (requests, outgoing) = mpsc::channel(STREAM_QUEUE);
        let waiting: Waiters = Arc::default();
        let stream = Arc::new(NodeStream { requests, waiting: waiting.clone() });
        streams.insert(url.clone(), stream.clone());
        tokio::spawn(async move {
            let mut client = EventServiceClient::new(channel).max_decoding_message_size(64 << 20);
            if let Ok(answers) = client.submit_stream(ReceiverStream::new(outgoing)).await {
                let mut answers = answers.into_inner();
                while let Ok(Some(answer)) = answers.message().await {
                    let waiter = waiting.lock().ok().and_then(|mut w| w.remove(&answer.request_id));
                    if let Some(waiter) = waiter {
                        let _ = waiter.send(answer);
                    }
                }
            }
            // The stream broke: its waiters hear nothing and retry.
            if let Ok(mut waiting) = waiting.lock() {
                waiting.clear();
            }
        });
        Ok((url, stream))
    }

    /// Forgets the stream to `url` (its node went silent): the next
    /// request to that node opens a new one, and whoever waits on the old
    /// one gives up at its deadline.
    fn drop_stream(&self, url: &str) {
        let mut streams = self.streams.lock().unwrap_or_else(|p| p.into_inner());
        streams.remove(url);
    }

    /// Submits a batch to its partition's leader over the pipelined stream,
    /// following "not leader" answers and retrying what may be retried.
    /// Each attempt waits at most the retry policy's attempt timeout: a
    /// leader that went silent with its connection open (a paused process)
    /// costs one such wait, then the partition's other replicas are asked.
    /// A retried batch is stored once only if it carries a producer stamp.
    pub async fn submit(&self, mut request: SubmitRequest) -> Result<SubmitResponse, ClientError> {
        let partition = request
            .partition
            .ok_or_else(|| ClientError::Malformed("submit: the request must name its partition".into()))?;
        let policy = self.client.retry_policy();
        let attempt_timeout = policy.submit_attempt_timeout(&request);
        let deadline = tokio::time::Instant::now() + policy.deadline;
        let mut backoff = Duration::from_millis(10);
        let mut redirects = 0u32;
        let mut last = String::new();
        for _ in 0..self.attempts {
            if tokio::time::Instant::now() >= deadline {
                break;
            }
            let (url, stream) = self.stream_to(partition)?;
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            request.request_id = id;
            let (waiter, answer) = oneshot::channel();
            if let Ok(mut waiting) = stream.waiting.lock() {
                waiting.insert(id, waiter);
            }
            if stream.requests.send(request.clone()).await.is_err() {
                last = "the stream to the leader closed".into();
                continue;
            }
            let answer = match tokio::time::timeout(attempt_timeout, answer).await {
                Ok(Ok(answer)) => answer,
                Ok(Err(_)) => {
                    last = format!("the stream to {url} broke");
                    self.drop_stream(&url);
                    self.client.leader_silent(partition, &url);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
                Err(_) => {
                    if let Ok(mut waiting) = stream.waiting.lock() {
                        waiting.remove(&id);
                    }
                    last = format!("{url} did not answer within {attempt_timeout:?}");
                    self.drop_stream(&url);
                    self.client.leader_silent(partition, &url);
                    continue;
                }
            };
            match answer.result {
                Some(submit_stream_response::Result::Ok(ack)) => return Ok(ack),
                Some(submit_stream_response::Result::Error(err)) => {
                    let code = Code::from_i32(err.code);
                    if !err.leader_addr.is_empty() {
                        let elsewhere = self.client.redirect(partition, &url, &err.leader_addr);
                        redirects += 1;
                        // One redirect is followed at once; more mean the
                        // leadership is moving, so wait for it to settle.
                        if redirects > 1 || elsewhere {
                            tokio::time::sleep(backoff.min(Duration::from_millis(200))).await;
                            backoff = (backoff * 2).min(Duration::from_secs(1));
                        }
                    } else if matches!(code, Code::Unavailable)
                        || (code == Code::ResourceExhausted && err.retry_after_ms > 0)
                    {
                        // No leader yet (an election takes about a second) or
                        // no room: back off, at least as long as the hint says.
                        tokio::time::sleep(backoff.max(Duration::from_millis(err.retry_after_ms))).await;
                        backoff = (backoff * 2).min(Duration::from_secs(1));
                        self.client.refresh_later();
                    } else {
                        return Err(ClientError::Refused { code, message: err.message });
                    }
                    last = err.message;
                }
                None => last = "an empty answer".into(),
            }
        }
        Err(ClientError::Unreachable { tried: vec![(format!("partition {partition}"), last)] })
    }
}
