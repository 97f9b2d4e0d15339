//! Append-entries requests of all groups on a node, sent to each peer in
//! batches.
//!
//! Every partition group replicates on its own, so without batching a node
//! makes one call per group per peer and a follower makes one fsync per
//! call. Here one task per peer sends what is queued for it as one call;
//! a request that finds a free slot goes at once, so an idle cluster adds
//! no delay, while under load requests gather behind the calls in flight.
//! The follower appends the batch's requests together, so they share one
//! group commit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eddy_proto::RAFT_MAX_MESSAGE_BYTES;
use eddy_proto::channels::PeerChannels;
use eddy_proto::v1::raft_service_client::RaftServiceClient;
use eddy_proto::v1::{RaftBatchRequest, RaftReply, RaftRequest};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

/// Batches to one peer in flight at once.
const BATCHES_IN_FLIGHT: usize = 2;
/// Requests queued for one peer before callers wait.
const QUEUE_DEPTH: usize = 1024;
/// Requests in one batch.
const MAX_BATCH_REQUESTS: usize = 256;
/// Payload bytes in one batch.
const MAX_BATCH_BYTES: usize = 1 << 20;
/// Requests larger than this go in calls of their own: the cost of a call
/// is small next to theirs, and in a batch they would hold up the small
/// requests (heartbeats, single events) queued behind them.
pub const MAX_BATCHED_REQUEST_BYTES: usize = 64 * 1024;

struct Queued {
    request: RaftRequest,
    ttl: Duration,
    reply: oneshot::Sender<Result<RaftReply, String>>,
}

/// Shared by the groups of a node; cheap to clone.
#[derive(Debug, Clone)]
pub struct AppendBatcher {
    channels: PeerChannels,
    queues: Arc<Mutex<HashMap<String, mpsc::Sender<Queued>>>>,
}

impl AppendBatcher {
    pub fn new(channels: PeerChannels) -> Self {
        AppendBatcher { channels, queues: Arc::default() }
    }

    fn queue(&self, addr: &str) -> mpsc::Sender<Queued> {
        let mut queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(queue) = queues.get(addr).filter(|q| !q.is_closed()) {
            return queue.clone();
        }
        let (queue, pending) = mpsc::channel(QUEUE_DEPTH);
        tokio::spawn(run(addr.to_owned(), self.channels.clone(), pending));
        queues.insert(addr.to_owned(), queue.clone());
        queue
    }

    /// Sends `request` to `addr` in the next batch; answers its reply, or
    /// why there is none.
    pub async fn call(&self, addr: &str, request: RaftRequest, ttl: Duration) -> Result<RaftReply, String> {
        let (reply, answer) = oneshot::channel();
        let queued = Queued { request, ttl, reply };
        let wait = async {
            self.queue(addr).send(queued).await.map_err(|_| "the batch sender stopped".to_owned())?;
            answer.await.map_err(|_| "the batch was dropped".to_owned())?
        };
        match tokio::time::timeout(ttl, wait).await {
            Ok(result) => result,
            Err(_) => Err(format!("timed out after {ttl:?}")),
        }
    }
}

/// Sends what is queued for one peer, up to [`BATCHES_IN_FLIGHT`] calls at
/// once. Ends when every [`AppendBatcher`] is gone.
async fn run(addr: String, channels: PeerChannels, mut pending: mpsc::Receiver<Queued>) {
    let slots = Arc::new(Semaphore::new(BATCHES_IN_FLIGHT));
    while let Some(first) = pending.recv().await {
        // Waiting for a slot lets more requests gather for this batch.
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let mut bytes = first.request.payload.len();
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH_REQUESTS && bytes + MAX_BATCHED_REQUEST_BYTES <= MAX_BATCH_BYTES {
            match pending.try_recv() {
                Ok(next) => {
                    bytes += next.request.payload.len();
                    batch.push(next);
                }
                Err(_) => break,
            }
        }
        tokio::spawn(send(addr.clone(), channels.clone(), batch, slot));
    }
}

async fn send(addr: String, channels: PeerChannels, batch: Vec<Queued>, _slot: OwnedSemaphorePermit) {
    let ttl = batch.iter().map(|q| q.ttl).max().unwrap_or(Duration::from_secs(1));
    let (requests, replies): (Vec<_>, Vec<_>) = batch.into_iter().map(|q| (q.request, q.reply)).unzip();
    let count = requests.len();
    let outcome = async {
        let channel = channels.get(&addr).map_err(|e| e.to_string())?;
        let mut client = RaftServiceClient::new(channel)
            .max_decoding_message_size(RAFT_MAX_MESSAGE_BYTES)
            .max_encoding_message_size(RAFT_MAX_MESSAGE_BYTES);
        let call = client.append_entries_batch(RaftBatchRequest { requests });
        match tokio::time::timeout(ttl, call).await {
            Err(_) => Err(format!("batch of {count} timed out after {ttl:?}")),
            Ok(Err(status)) => Err(status.to_string()),
            Ok(Ok(reply)) if reply.get_ref().replies.len() != count => {
                Err(format!("batch of {count} requests answered with {} replies", reply.get_ref().replies.len()))
            }
            Ok(Ok(reply)) => Ok(reply.into_inner().replies),
        }
    };
    match outcome.await {
        Ok(answers) => {
            for (reply, answer) in replies.into_iter().zip(answers) {
                let _ = reply.send(Ok(answer));
            }
        }
        Err(reason) => {
            for reply in replies {
                let _ = reply.send(Err(reason.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use eddy_proto::v1::raft_service_server::{RaftService, RaftServiceServer};
    use eddy_proto::v1::{MembersReply, RaftBatchReply, SnapshotChunk};
    use tokio::net::TcpListener;
    use tonic::transport::server::TcpIncoming;
    use tonic::{Request, Response, Status, Streaming};

    use super::*;

    /// Answers each request of a batch with its group and payload reversed,
    /// and counts the calls it took.
    #[derive(Default)]
    struct Echo {
        calls: Arc<std::sync::atomic::AtomicUsize>,
    }

    fn unused<T>() -> Result<Response<T>, Status> {
        Err(Status::unimplemented("not used by the batcher"))
    }

    #[tonic::async_trait]
    impl RaftService for Echo {
        async fn append_entries_batch(
            &self,
            request: Request<RaftBatchRequest>,
        ) -> Result<Response<RaftBatchReply>, Status> {
            self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            // Slow enough that concurrent callers queue behind the calls in flight.
            tokio::time::sleep(Duration::from_millis(20)).await;
            let replies = request
                .into_inner()
                .requests
                .into_iter()
                .map(|r| {
                    let mut payload = r.payload;
                    payload.reverse();
                    payload.extend_from_slice(&r.group.to_be_bytes());
                    RaftReply { payload, is_error: false }
                })
                .collect();
            Ok(Response::new(RaftBatchReply { replies }))
        }
        async fn append_entries(&self, _: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
            unused()
        }
        async fn vote(&self, _: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
            unused()
        }
        async fn pre_vote(&self, _: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
            unused()
        }
        async fn transfer_leader(&self, _: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
            unused()
        }
        async fn install_snapshot(&self, _: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
            unused()
        }
        async fn install_snapshot_stream(
            &self,
            _: Request<Streaming<SnapshotChunk>>,
        ) -> Result<Response<RaftReply>, Status> {
            unused()
        }
        async fn members(&self, _: Request<RaftRequest>) -> Result<Response<MembersReply>, Status> {
            unused()
        }
    }

    async fn echo_server() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let echo = Echo::default();
        let calls = echo.calls.clone();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(RaftServiceServer::new(echo))
                .serve_with_incoming(TcpIncoming::from(listener)),
        );
        (addr, calls)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_caller_gets_its_own_reply_and_calls_are_shared() {
        let (addr, calls) = echo_server().await;
        let batcher = AppendBatcher::new(PeerChannels::default());
        let callers: Vec<_> = (0..64u64)
            .map(|group| {
                let (batcher, addr) = (batcher.clone(), addr.clone());
                tokio::spawn(async move {
                    let request = RaftRequest { group, payload: vec![1, 2, group as u8], cluster: String::new() };
                    (group, batcher.call(&addr, request, Duration::from_secs(10)).await)
                })
            })
            .collect();
        for caller in callers {
            let (group, reply) = caller.await.expect("caller");
            let mut want = vec![group as u8, 2, 1];
            want.extend_from_slice(&group.to_be_bytes());
            assert_eq!(reply.expect("a reply").payload, want, "group {group} got another group's reply");
        }
        let calls = calls.load(std::sync::atomic::Ordering::SeqCst);
        assert!(calls < 64, "64 concurrent requests took {calls} calls: nothing was batched");
    }

    #[tokio::test]
    async fn a_cut_link_fails_every_request_at_once() {
        let (addr, _) = echo_server().await;
        let channels = PeerChannels::default();
        channels.set_blocked([addr.clone()].into_iter().collect());
        let batcher = AppendBatcher::new(channels);
        let request = RaftRequest { group: 7, payload: vec![1], cluster: String::new() };
        let err = batcher.call(&addr, request, Duration::from_secs(10)).await.expect_err("the link is cut");
        assert!(err.contains("cut"), "unexpected reason: {err}");
    }
}
