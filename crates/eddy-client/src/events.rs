//! The event client: routes each partition's calls to its leader, learns
//! leaders from the partition map and from "not leader" answers, and retries
//! what may be retried, with backoff, until a deadline.

use std::sync::RwLock;
use std::time::Duration;

use eddy_core::{EventUid, Hlc, PartitionId, partition_for_key};
use eddy_proto::meta;
use eddy_proto::v1::event_service_client::EventServiceClient;
use eddy_proto::v1::{self, ReadRequest, SubmitRequest, SubmitResponse};
use tonic::transport::Channel;
use tonic::{Code, Status};

use crate::{ClientError, ClusterClient, normalize_endpoint};

/// Where one event of an acknowledged batch is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventAck {
    pub partition: PartitionId,
    pub offset: u64,
    pub uid: EventUid,
    pub hlc: Hlc,
    /// The batch had been stored before (an idempotent retry).
    pub duplicate: bool,
}

/// Expands a batch acknowledgement into one per event.
pub fn event_acks(response: &SubmitResponse) -> Vec<EventAck> {
    (0..u64::from(response.count))
        .map(|i| {
            let offset = response.first_offset + i;
            EventAck {
                partition: response.partition,
                offset,
                uid: EventUid::new(response.uid_salt, response.partition, offset),
                hlc: Hlc(response.first_hlc + i),
                duplicate: response.duplicate,
            }
        })
        .collect()
}

#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Give up on a call after this long.
    pub deadline: Duration,
    /// How long one attempt of a submit may wait for its answer before the
    /// node counts as silent (paused, or cut off with its connections
    /// open) and the submit is tried on the partition's other replicas.
    /// A submit that asks to be answered once processed may wait this
    /// long on top of the server's processing wait.
    pub attempt_timeout: Duration,
    pub first_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            deadline: Duration::from_secs(30),
            attempt_timeout: Duration::from_secs(5),
            first_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_secs(1),
        }
    }
}

/// How long the server waits for processors before it answers a submit
/// that asked for the processed acknowledgement anyway.
pub const SERVER_PROCESSED_WAIT: Duration = Duration::from_secs(30);

impl RetryPolicy {
    /// How long one attempt of `request` may wait for its answer.
    pub fn submit_attempt_timeout(&self, request: &SubmitRequest) -> Duration {
        if request.ack() == v1::AckLevel::Processed {
            self.attempt_timeout + SERVER_PROCESSED_WAIT
        } else {
            self.attempt_timeout
        }
    }
}

#[derive(Debug, Default)]
struct Routes {
    epoch: u64,
    nodes_version: u64,
    partition_count: u32,
    /// Leader URL per partition, when known.
    leaders: Vec<Option<String>>,
    /// Replica URLs per partition: where to ask when the leader is gone.
    replicas: Vec<Vec<String>>,
}

/// How long a node that did not answer is avoided.
const SUSPECT_FOR: Duration = Duration::from_secs(5);
/// Retries read the partition map again at most this often.
const REFRESH_EVERY: Duration = Duration::from_millis(500);

#[derive(Debug)]
pub struct EventClient {
    cluster: ClusterClient,
    routes: RwLock<Routes>,
    retry: RetryPolicy,
    /// Nodes that recently did not answer, and when.
    suspects: std::sync::Mutex<std::collections::HashMap<String, tokio::time::Instant>>,
    refreshed: std::sync::Mutex<Option<tokio::time::Instant>>,
}

/// What a failed attempt calls for.
enum Next {
    Redirect(String),
    Backoff(Option<Duration>),
    Fail,
}

fn classify(status: &Status) -> Next {
    let text = |key: &str| status.metadata().get(key).and_then(|v| v.to_str().ok()).map(str::to_owned);
    if let Some(addr) = text(meta::LEADER_ADDR).filter(|a| !a.is_empty()) {
        return Next::Redirect(addr);
    }
    let hint = text(meta::RETRY_AFTER_MS).and_then(|v| v.parse().ok()).map(Duration::from_millis);
    match status.code() {
        Code::Unavailable | Code::Unknown | Code::Cancelled | Code::DeadlineExceeded | Code::Aborted => {
            Next::Backoff(hint)
        }
        Code::ResourceExhausted if hint.is_some() => Next::Backoff(hint),
        _ => Next::Fail,
    }
}

impl EventClient {
    /// A client of the cluster at `endpoints`; reads the partition map.
    pub async fn connect(endpoints: &[String], timeout: Duration, retry: RetryPolicy) -> Result<Self, ClientError> {
        let client = EventClient {
            cluster: ClusterClient::new(endpoints, timeout)?,
            routes: RwLock::default(),
            retry,
            suspects: Default::default(),
            refreshed: Default::default(),
        };
        client.refresh().await?;
        Ok(client)
    }

    pub fn cluster(&self) -> &ClusterClient {
        &self.cluster
    }

    /// Reads the partition map again, from the controller leader: a node
    /// cut off from the others would hand out an old one.
    pub async fn refresh(&self) -> Result<(), ClientError> {
        let map = self.cluster.leader_partition_map().await?;
        self.learn(&map);
        Ok(())
    }

    /// Refreshes unless a refresh happened within the last moments: many
    /// retries at once need one map, not one each.
    async fn refresh_soon(&self) {
        let due = self.refreshed.lock().is_ok_and(|at| at.is_none_or(|at| at.elapsed() > REFRESH_EVERY));
        if due {
            if let Ok(mut at) = self.refreshed.lock() {
                *at = Some(tokio::time::Instant::now());
            }
            let _ = self.refresh().await;
        }
    }

    /// Takes in a partition map if it is newer than what is known; leaders
    /// learnt from "not leader" answers are not undone by the same map.
    pub fn learn(&self, map: &v1::PartitionMap) {
        let Ok(mut routes) = self.routes.write() else { return };
        let newer = map.epoch >= routes.epoch
            && map.nodes_version >= routes.nodes_version
            && (map.epoch, map.nodes_version) != (routes.epoch, routes.nodes_version);
        if routes.partition_count != 0 && !newer {
            return;
        }
        let addr_of = |id: u64| map.nodes.iter().find(|n| n.id == id).and_then(|n| normalize_endpoint(&n.addr).ok());
        routes.epoch = map.epoch;
        routes.nodes_version = map.nodes_version;
        routes.partition_count = map.settings.map_or(0, |s| s.partition_count);
        routes.leaders = map.partitions.iter().map(|p| (p.leader != 0).then(|| addr_of(p.leader)).flatten()).collect();
        routes.replicas =
            map.partitions.iter().map(|p| p.replicas.iter().filter_map(|r| addr_of(*r)).collect()).collect();
    }

    pub fn retry_policy(&self) -> RetryPolicy {
        self.retry
    }

    /// Takes note that `url`, asked about `partition`, did not answer in
    /// time: it is avoided for a while, the partition's next attempt goes to
    /// another replica (which knows the new leader, or is it), and the map
    /// is read again in the background.
    pub(crate) fn leader_silent(self: &std::sync::Arc<Self>, partition: PartitionId, url: &str) {
        self.suspect(url);
        self.try_another_replica(partition, url);
        self.refresh_later();
    }

    /// Reads the map again in the background: the controller leader may be
    /// the silent node too, and a retry should not wait for that to show.
    pub(crate) fn refresh_later(self: &std::sync::Arc<Self>) {
        let client = self.clone();
        tokio::spawn(async move { client.refresh_soon().await });
    }

    /// Follows a "not leader" answer that `from` gave for `partition`,
    /// naming `addr`. A replica that has not yet noticed its silent leader's
    /// loss still names it: then the next attempt goes to another replica
    /// instead. Answers whether the caller should pause before it.
    pub(crate) fn redirect(&self, partition: PartitionId, from: &str, addr: &str) -> bool {
        if self.is_suspect(addr) && self.try_another_replica(partition, from) {
            return true;
        }
        self.note_leader(partition, addr);
        false
    }

    /// Remembers that `url` did not answer; it is avoided for a while.
    fn suspect(&self, url: &str) {
        if let Ok(mut suspects) = self.suspects.lock() {
            suspects.insert(url.to_owned(), tokio::time::Instant::now());
        }
    }

    fn clear_suspect(&self, url: &str) {
        if let Ok(mut suspects) = self.suspects.lock()
            && !suspects.is_empty()
        {
            suspects.remove(url);
        }
    }

    fn is_suspect(&self, url: &str) -> bool {
        let Ok(addr) = normalize_endpoint(url) else { return false };
        self.suspects.lock().is_ok_and(|s| s.get(&addr).is_some_and(|at| at.elapsed() < SUSPECT_FOR))
    }

    /// Points `partition` at a replica other than `from` that is not
    /// suspect: it knows the new leader, or is it. False when none is left.
    fn try_another_replica(&self, partition: PartitionId, from: &str) -> bool {
        let candidates: Vec<String> =
            self.routes.read().ok().and_then(|r| r.replicas.get(partition as usize).cloned()).unwrap_or_default();
        let next = candidates.into_iter().find(|r| r != from && !self.is_suspect(r));
        let Ok(mut routes) = self.routes.write() else { return false };
        match (next, routes.leaders.get_mut(partition as usize)) {
            (Some(next), Some(slot)) => {
                *slot = Some(next);
                true
            }
            _ => false,
        }
    }

    pub fn partition_count(&self) -> u32 {
        self.routes.read().map_or(0, |r| r.partition_count)
    }

    pub fn partition_for_key(&self, key: &[u8]) -> PartitionId {
        partition_for_key(key, self.partition_count())
    }

    fn leader_url(&self, partition: PartitionId) -> Option<String> {
        self.routes.read().ok()?.leaders.get(partition as usize)?.clone()
    }

    /// Records that `addr` leads `partition` (from a "not leader" answer).
    pub fn learn_leader(&self, partition: PartitionId, addr: &str) {
        self.note_leader(partition, addr);
    }

    fn note_leader(&self, partition: PartitionId, addr: &str) {
        let Ok(url) = normalize_endpoint(addr) else { return };
        if let Ok(mut routes) = self.routes.write()
            && let Some(slot) = routes.leaders.get_mut(partition as usize)
        {
            *slot = Some(url);
        }
    }

    fn client_for(&self, partition: PartitionId) -> Result<(String, EventServiceClient<Channel>), ClientError> {
        let url = self.leader_url(partition).unwrap_or_else(|| self.cluster.endpoints()[0].clone());
        let client = EventServiceClient::new(self.cluster.channel(&url)?)
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(64 << 20);
        Ok((url, client))
    }

    /// Runs `call` against the partition's leader until it answers, the
    /// refusal is final, or the deadline passes.
    async fn with_leader<T, F, Fut>(&self, partition: PartitionId, call: F) -> Result<T, ClientError>
    where
        F: Fn(EventServiceClient<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let deadline = tokio::time::Instant::now() + self.retry.deadline;
        let mut backoff = self.retry.first_backoff;
        let mut tried = Vec::new();
        loop {
            let (url, client) = self.client_for(partition)?;
            let status = match call(client).await {
                Ok(response) => {
                    self.clear_suspect(&url);
                    return Ok(response.into_inner());
                }
                Err(status) => status,
            };
            let unreachable =
                matches!(status.code(), Code::Unavailable | Code::DeadlineExceeded | Code::Unknown | Code::Cancelled)
                    && status.metadata().get(meta::RETRY_AFTER_MS).is_none();
            if unreachable {
                self.suspect(&url);
            }
            match classify(&status) {
                Next::Redirect(addr) => {
                    if self.redirect(partition, &url, &addr) {
                        tokio::time::sleep(backoff.min(Duration::from_millis(100))).await;
                    }
                }
                Next::Fail => return Err(status.into()),
                // A node that does not answer may be down: its peers know
                // who leads now, so ask them before waiting.
                Next::Backoff(_) if unreachable && self.try_another_replica(partition, &url) => {}
                Next::Backoff(hint) => {
                    if tokio::time::Instant::now() + backoff > deadline {
                        tried.push((url, status.message().to_owned()));
                        return Err(ClientError::Unreachable { tried });
                    }
                    tokio::time::sleep(hint.unwrap_or(backoff)).await;
                    backoff = (backoff * 2).min(self.retry.max_backoff);
                    // The leader may have moved without telling us: a newer
                    // map, or another replica, knows.
                    self.refresh_soon().await;
                    if self.leader_url(partition).as_deref() == Some(url.as_str()) {
                        self.try_another_replica(partition, &url);
                    }
                }
            }
            if tokio::time::Instant::now() > deadline {
                tried.push((url, status.message().to_owned()));
                return Err(ClientError::Unreachable { tried });
            }
        }
    }

    /// Submits a batch to the leader of `request.partition` (which must be
    /// set), retrying until it is stored or refused for good.
    pub async fn submit(&self, request: SubmitRequest) -> Result<SubmitResponse, ClientError> {
        let partition = request
            .partition
            .ok_or_else(|| ClientError::Malformed("submit: the request must name its partition".into()))?;
        let attempt = self.retry.submit_attempt_timeout(&request);
        self.with_leader(partition, |mut client| {
            let request = request.clone();
            async move {
                match tokio::time::timeout(attempt, client.submit(request)).await {
                    Ok(answer) => answer,
                    Err(_) => Err(Status::deadline_exceeded(format!("no answer within {attempt:?}"))),
                }
            }
        })
        .await
    }

    /// Events `from..to` (to = 0: to the end) of a partition, from its leader.
    pub async fn read(
        &self,
        partition: PartitionId,
        from: u64,
        to: u64,
        max_events: u32,
    ) -> Result<v1::ReadResponse, ClientError> {
        self.with_leader(partition, |mut client| async move {
            client
                .read(ReadRequest { partition, from_offset: from, to_offset: to, max_events, any_replica: false })
                .await
        })
        .await
    }

    /// Asks the leader of `request.partition` a query.
    pub async fn query(&self, request: v1::QueryRequest) -> Result<v1::QueryResponse, ClientError> {
        let partition = request.partition;
        self.with_leader(partition, |mut client| {
            let request = request.clone();
            async move { client.query(request).await }
        })
        .await
    }

    /// The digest of a partition's processor states, from its leader.
    pub async fn processor_digest(&self, partition: PartitionId) -> Result<v1::DigestResponse, ClientError> {
        self.with_leader(partition, |mut client| async move {
            client.processor_digest(v1::DigestRequest { partition }).await
        })
        .await
    }

    /// A channel to the leader of `partition` as known now (for streams).
    pub fn leader_channel(&self, partition: PartitionId) -> Result<(String, Channel), ClientError> {
        let url = self.leader_url(partition).unwrap_or_else(|| self.cluster.endpoints()[0].clone());
        Ok((url.clone(), self.cluster.channel(&url)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_acks_expand_per_event() {
        let response = SubmitResponse {
            partition: 3,
            first_offset: 10,
            count: 2,
            first_hlc: 500,
            uid_salt: 7,
            duplicate: false,
            request_id: 0,
            processed: false,
        };
        let acks = event_acks(&response);
        assert_eq!(acks.len(), 2);
        assert_eq!((acks[1].offset, acks[1].hlc), (11, Hlc(501)));
        assert_eq!(acks[1].uid, EventUid::new(7, 3, 11));
    }

    #[test]
    fn refusals_are_classified() {
        let mut redirect = Status::failed_precondition("not leader");
        redirect.metadata_mut().insert(meta::LEADER_ADDR, "127.0.0.1:1".parse().unwrap());
        assert!(matches!(classify(&redirect), Next::Redirect(_)));
        assert!(matches!(classify(&Status::unavailable("x")), Next::Backoff(None)));
        assert!(matches!(classify(&Status::resource_exhausted("too big")), Next::Fail));
        let mut busy = Status::resource_exhausted("busy");
        busy.metadata_mut().insert(meta::RETRY_AFTER_MS, "50".parse().unwrap());
        assert!(matches!(classify(&busy), Next::Backoff(Some(_))));
        assert!(matches!(classify(&Status::invalid_argument("bad")), Next::Fail));
    }
}
