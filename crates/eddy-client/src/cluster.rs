//! A client of the cluster API that fails over between endpoints.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use eddy_proto::meta;
use eddy_proto::v1::cluster_service_client::ClusterServiceClient;
use eddy_proto::v1::{self, BootstrapRequest, ClusterStatusRequest, GetPartitionMapRequest, WatchPartitionMapRequest};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use crate::view::StatusView;
use crate::{ClientError, normalize_endpoint};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long controller calls keep trying while no controller leads.
const CONTROLLER_RETRY_FOR: Duration = Duration::from_secs(15);
/// HTTP/2 pings on every connection: a node that stops answering with its
/// connection open (a paused process, a cut link) is noticed within
/// interval plus timeout, and everything waiting on it is retried
/// elsewhere, reads and streams included.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(2);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(4);

/// Calls the cluster API on the first endpoint that answers; a "not leader"
/// answer sends the call on to the leader it names.
#[derive(Debug)]
pub struct ClusterClient {
    endpoints: Vec<String>,
    timeout: Duration,
    channels: Mutex<HashMap<String, Channel>>,
    preferred: Mutex<Option<String>>,
}

impl ClusterClient {
    pub fn new(endpoints: &[String], timeout: Duration) -> Result<Self, ClientError> {
        let endpoints = endpoints.iter().map(|e| normalize_endpoint(e)).collect::<Result<Vec<_>, _>>()?;
        if endpoints.is_empty() {
            return Err(ClientError::InvalidEndpoint { endpoint: String::new(), reason: "no endpoint given".into() });
        }
        Ok(ClusterClient { endpoints, timeout, channels: Mutex::new(HashMap::new()), preferred: Mutex::new(None) })
    }

    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    pub(crate) fn channel(&self, url: &str) -> Result<Channel, ClientError> {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(channel) = channels.get(url) {
            return Ok(channel.clone());
        }
        let channel = Endpoint::from_shared(url.to_owned())
            .map_err(|e| ClientError::InvalidEndpoint { endpoint: url.to_owned(), reason: e.to_string() })?
            .connect_timeout(CONNECT_TIMEOUT)
            .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
            .keep_alive_timeout(KEEPALIVE_TIMEOUT)
            .keep_alive_while_idle(true)
            .tcp_nodelay(true)
            .timeout(self.timeout)
            .connect_lazy();
        channels.insert(url.to_owned(), channel.clone());
        Ok(channel)
    }

    /// Runs `call` against each endpoint in turn until one answers. Transport
    /// failures move on to the next endpoint; a "not leader" answer moves to
    /// the leader it names; any other refusal is final.
    async fn call<T, F, Fut>(&self, call: F) -> Result<T, ClientError>
    where
        F: Fn(ClusterServiceClient<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let mut tried = Vec::new();
        // The endpoint that answered last goes first: one that stopped
        // answering costs a timeout per call otherwise.
        let preferred = self.preferred.lock().ok().and_then(|p| p.clone());
        let mut queue: Vec<String> =
            self.endpoints.iter().rev().filter(|e| Some(*e) != preferred.as_ref()).cloned().collect();
        queue.extend(preferred);
        while let Some(url) = queue.pop() {
            let client = ClusterServiceClient::new(self.channel(&url)?);
            match call(client).await {
                Ok(response) => {
                    if let Ok(mut preferred) = self.preferred.lock() {
                        *preferred = Some(url);
                    }
                    return Ok(response.into_inner());
                }
                Err(status) => {
                    if let Some(leader) = leader_addr(&status) {
                        let leader = normalize_endpoint(&leader)?;
                        if !tried.iter().any(|(u, _)| *u == leader) && leader != url {
                            queue.push(leader);
                        }
                    } else if !is_transport_failure(&status) {
                        return Err(status.into());
                    }
                    tried.push((url, describe(&status)));
                }
            }
        }
        Err(ClientError::Unreachable { tried })
    }

    pub async fn status(&self) -> Result<StatusView, ClientError> {
        let status = self.call(|mut c| async move { c.cluster_status(ClusterStatusRequest {}).await }).await?;
        StatusView::from_wire(status).map_err(ClientError::Malformed)
    }

    /// The status as the controller leader answers it: current, unlike a
    /// follower's or a restarted node's view, which may lag.
    pub async fn leader_status(&self) -> Result<StatusView, ClientError> {
        let status = self.status().await?;
        if status.confirmed_leader {
            return Ok(status);
        }
        let Some(addr) = status.leader_addr.as_deref().filter(|_| status.leader != Some(status.served_by)) else {
            return Ok(status);
        };
        ClusterClient::new(&[addr.to_owned()], self.timeout)?.status().await
    }

    /// The partition map as the controller leader knows it.
    pub async fn leader_partition_map(&self) -> Result<v1::PartitionMap, ClientError> {
        let status = self.status().await?;
        match status.leader_addr.as_deref().filter(|_| !status.confirmed_leader) {
            Some(addr) => match ClusterClient::new(&[addr.to_owned()], self.timeout)?.partition_map().await {
                Ok(map) => Ok(map),
                // The leader did not answer: any node's map is better than none.
                Err(_) => self.partition_map().await,
            },
            None => self.partition_map().await,
        }
    }

    pub async fn partition_map(&self) -> Result<v1::PartitionMap, ClientError> {
        self.call(|mut c| async move { c.get_partition_map(GetPartitionMapRequest {}).await }).await
    }

    /// Streams the partition map now and after every change.
    pub async fn watch_partition_map(
        &self,
        after_epoch: u64,
    ) -> Result<tonic::Streaming<v1::PartitionMap>, ClientError> {
        self.call(|mut c| async move {
            c.watch_partition_map(WatchPartitionMapRequest { after_epoch, after_nodes_version: 0 }).await
        })
        .await
    }

    /// Moves a partition's replica; any controller forwards it to the leader.
    pub async fn move_replica(
        &self,
        partition: u32,
        from: u64,
        to: u64,
    ) -> Result<v1::MoveReplicaResponse, ClientError> {
        self.controller_call(|mut c| async move {
            c.move_replica(v1::MoveReplicaRequest { partition, from_node: from, to_node: to }).await
        })
        .await
    }

    /// Hands a partition's leadership to the replica on `to`.
    pub async fn transfer_leader(&self, partition: u32, to: u64) -> Result<v1::TransferLeaderResponse, ClientError> {
        self.controller_call(|mut c| async move {
            c.transfer_leader(v1::TransferLeaderRequest { partition, to_node: to }).await
        })
        .await
    }

    /// Runs a controller call on each endpoint until one answers; any
    /// controller forwards these to the leader. Endpoints that do not
    /// answer, have no controller role, or know no leader (an election is
    /// under way) are passed over; when all were, the round is tried again
    /// until the client's timeout has passed.
    async fn controller_call<T, F, Fut>(&self, call: F) -> Result<T, ClientError>
    where
        F: Fn(v1::controller_service_client::ControllerServiceClient<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let deadline = tokio::time::Instant::now() + self.timeout.max(CONTROLLER_RETRY_FOR);
        loop {
            let mut tried = Vec::new();
            for url in &self.endpoints {
                let client = v1::controller_service_client::ControllerServiceClient::new(self.channel(url)?);
                match call(client).await {
                    Ok(response) => return Ok(response.into_inner()),
                    Err(status)
                        if is_transport_failure(&status)
                            || leader_addr(&status).is_some()
                            || status.metadata().get(meta::NOT_A_CONTROLLER).is_some() =>
                    {
                        tried.push((url.clone(), describe(&status)));
                    }
                    Err(status) => return Err(status.into()),
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ClientError::Unreachable { tried });
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// The controller leader's load, latency and cost models, as JSON.
    pub async fn models(&self) -> Result<serde_json::Value, ClientError> {
        let reply = self.controller_call(|mut c| async move { c.get_models(v1::GetModelsRequest {}).await }).await?;
        serde_json::from_str(&reply.json).map_err(|e| ClientError::Malformed(format!("models: {e}")))
    }

    /// The recorded load history, in the trace format (JSON text).
    pub async fn trace_json(&self) -> Result<String, ClientError> {
        let reply =
            self.controller_call(|mut c| async move { c.export_trace(v1::ExportTraceRequest {}).await }).await?;
        Ok(reply.json)
    }

    /// A dry run of the planner on the controller leader under the policy
    /// given as TOML (empty: the defaults); the plan as JSON.
    pub async fn plan(&self, policy_toml: &str) -> Result<serde_json::Value, ClientError> {
        let policy_toml = policy_toml.to_owned();
        let reply = self
            .controller_call(|mut c| {
                let policy_toml = policy_toml.clone();
                async move { c.plan(v1::PlanRequest { policy_toml }).await }
            })
            .await?;
        serde_json::from_str(&reply.json).map_err(|e| ClientError::Malformed(format!("plan: {e}")))
    }

    /// The placement mode and policy (TOML).
    pub async fn placement(&self) -> Result<String, ClientError> {
        let reply = self
            .controller_call(|mut c| async move { c.get_placement(v1::PlacementRequest { toml: String::new() }).await })
            .await?;
        Ok(reply.toml)
    }

    /// Replaces the placement mode and policy (TOML); answers them as set.
    pub async fn set_placement(&self, toml: &str) -> Result<String, ClientError> {
        let toml = toml.to_owned();
        let reply = self
            .controller_call(|mut c| {
                let toml = toml.clone();
                async move { c.set_placement(v1::PlacementRequest { toml }).await }
            })
            .await?;
        Ok(reply.toml)
    }

    /// Marks a worker draining (or up again with `undo`); answers its state.
    pub async fn drain(&self, node: u64, undo: bool) -> Result<String, ClientError> {
        let reply = self
            .controller_call(|mut c| async move { c.drain(v1::DrainRequest { node_id: node, undo }).await })
            .await?;
        Ok(reply.state)
    }

    /// A partition group's committed members as the replica on the node at
    /// `addr` knows them, and whether it leads the group.
    pub async fn members(&self, addr: &str, partition: u32) -> Result<v1::MembersReply, ClientError> {
        let channel = self.channel(&format!("http://{addr}"))?;
        let mut client = v1::raft_service_client::RaftServiceClient::new(channel);
        let request =
            v1::RaftRequest { group: eddy_core::raft_group_of(partition), payload: Vec::new(), cluster: String::new() };
        let call = tokio::time::timeout(self.timeout, client.members(request));
        match call.await {
            Ok(Ok(reply)) => Ok(reply.into_inner()),
            Ok(Err(status)) => Err(status.into()),
            Err(_) => Err(ClientError::Unreachable { tried: vec![(addr.to_owned(), "timed out".to_owned())] }),
        }
    }

    /// The control loop's latest planner round (JSON), if any.
    pub async fn last_plan(&self) -> Result<Option<serde_json::Value>, ClientError> {
        let reply = self.controller_call(|mut c| async move { c.last_plan(v1::LastPlanRequest {}).await }).await?;
        if reply.json.is_empty() {
            return Ok(None);
        }
        serde_json::from_str(&reply.json).map(Some).map_err(|e| ClientError::Malformed(format!("last plan: {e}")))
    }

    /// Asks the first endpoint's node to bootstrap the controller group.
    pub async fn bootstrap(&self) -> Result<v1::BootstrapResponse, ClientError> {
        let url = &self.endpoints[0];
        let mut client = ClusterServiceClient::new(self.channel(url)?);
        match client.bootstrap(BootstrapRequest {}).await {
            Ok(response) => Ok(response.into_inner()),
            Err(status) if is_transport_failure(&status) => {
                Err(ClientError::Unreachable { tried: vec![(url.clone(), describe(&status))] })
            }
            Err(status) => Err(status.into()),
        }
    }
}

fn leader_addr(status: &Status) -> Option<String> {
    let addr = status.metadata().get(meta::LEADER_ADDR)?.to_str().ok()?;
    (!addr.is_empty()).then(|| addr.to_owned())
}

fn is_transport_failure(status: &Status) -> bool {
    matches!(status.code(), Code::Unavailable | Code::DeadlineExceeded | Code::Unknown | Code::Cancelled)
}

fn describe(status: &Status) -> String {
    if status.message().is_empty() { status.code().to_string() } else { status.message().to_owned() }
}
