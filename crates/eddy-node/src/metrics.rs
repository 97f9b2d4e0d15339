//! The node's Prometheus exporter: installs the process-wide recorder that
//! the storage, worker and node metrics go to, and answers `GET /metrics`
//! (HTTP/1.1, Prometheus text format) on the node's gRPC port, so a node
//! has one address for everything.

use std::sync::OnceLock;

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::config::NodeConfig;

use eddy_core::node::METRICS_PATH;

pub const NODE_INFO: &str = "eddy_node_info";
pub const CAPACITY_CORES: &str = "eddy_node_capacity_cores";
pub const PRICE_PER_HOUR: &str = "eddy_node_price_per_hour";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The recorder's handle, installing the recorder on first use. Several
/// nodes in one process (tests, embedding) share it.
fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("another metrics recorder is installed; /metrics will show only what reaches this one");
        }
        eddy_storage::metrics::describe();
        eddy_worker::metrics::describe();
        metrics::describe_gauge!(NODE_INFO, "always 1; labels name the node, its zone and roles");
        metrics::describe_gauge!(CAPACITY_CORES, "CPU cores the node's manifest gives it");
        metrics::describe_gauge!(PRICE_PER_HOUR, "the node's price per hour, from its manifest");
        handle
    })
}

/// Installs the recorder and publishes what the manifest says of the node.
pub fn install(config: &NodeConfig) {
    handle();
    let node = &config.node;
    let roles: Vec<String> = node.roles.iter().map(|r| format!("{r:?}").to_lowercase()).collect();
    let id = node.id.to_string();
    metrics::gauge!(NODE_INFO, "node" => id.clone(), "zone" => node.zone.clone(), "roles" => roles.join(",")).set(1.0);
    metrics::gauge!(CAPACITY_CORES, "node" => id.clone()).set(node.capacity_cores);
    metrics::gauge!(PRICE_PER_HOUR, "node" => id).set(node.price_per_hour);
}

/// The `/metrics` route, to merge into the gRPC server's router.
pub fn router() -> axum::Router {
    axum::Router::new().route(METRICS_PATH, get(render))
}

async fn render() -> impl IntoResponse {
    let handle = handle();
    // Histograms keep their samples until rendered; trim them as we go.
    handle.run_upkeep();
    ([(CONTENT_TYPE, "text/plain; version=0.0.4")], handle.render())
}
