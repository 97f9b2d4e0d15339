//! Small things many cluster tests need: a health predicate and raw calls
//! to the controller API.

use eddy_client::view::{NodeView, StatusView};
use eddy_proto::v1::controller_service_client::ControllerServiceClient;
use eddy_proto::v1::{NodeSpec, RegisterNodeRequest};
use tonic::transport::Channel;

/// A leader, exactly `up` nodes up, and every partition led.
/// The node leading the most partitions and `count` of the partitions it
/// leads (the lowest ids): the hot spot a test of skewed load puts its
/// costly events on, as hash placement left it.
pub fn hot_spot(leaders: &[Option<u64>], count: usize) -> anyhow::Result<(u64, Vec<u32>)> {
    let led = |node: u64| (0u32..).zip(leaders).filter(move |(_, l)| **l == Some(node)).map(|(p, _)| p);
    let busiest = leaders.iter().flatten().copied().max_by_key(|n| (led(*n).count(), std::cmp::Reverse(*n)));
    let Some(busiest) = busiest else { anyhow::bail!("no partition has a leader: {leaders:?}") };
    let hot: Vec<u32> = led(busiest).take(count).collect();
    anyhow::ensure!(hot.len() == count, "node {busiest} leads fewer than {count} partitions: {leaders:?}");
    Ok((busiest, hot))
}

pub fn healthy(status: &StatusView, up: usize) -> bool {
    status.leader.is_some()
        && status.nodes.iter().filter(|n| n.state == "up").count() == up
        && !status.partitions.is_empty()
        && status.partitions.iter().all(|p| p.leader.is_some())
}

/// The request a node sends to register itself as it is registered now;
/// committing it changes nothing but still appends to the controller log.
pub fn re_registration(node: &NodeView) -> RegisterNodeRequest {
    let spec = NodeSpec {
        id: node.id,
        addr: node.addr.clone(),
        zone: node.zone.clone(),
        capacity_cores: node.capacity_cores,
        price_per_hour: node.price_per_hour,
        roles: node.roles.clone(),
    };
    RegisterNodeRequest { node: Some(spec), cluster_id: String::new() }
}

/// A connected client of the controller API on `addr`.
pub async fn controller_client(addr: &str) -> anyhow::Result<ControllerServiceClient<Channel>> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?.connect().await?;
    Ok(ControllerServiceClient::new(channel))
}

/// Where each partition's replicas are, leaders aside: what placement
/// decides, while leaders move with elections.
pub fn placement(status: &StatusView) -> Vec<(u32, Vec<u64>)> {
    status
        .partitions
        .iter()
        .map(|p| {
            let mut replicas = p.replicas.clone();
            replicas.sort_unstable();
            (p.id, replicas)
        })
        .collect()
}
