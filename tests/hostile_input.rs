//! No input breaks a node. On one node run in this process (so that it can
//! embed a processor that panics on demand): a processor's panic on an
//! event or a query is caught, shown in the status and a metric, and the
//! partition keeps answering; a reversed stats range, a producer sequence
//! at the end of u64, a read of large events and telemetry from thousands
//! of made-up nodes are refused or bounded, and the node keeps serving.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use eddy_client::ClusterClient;
use eddy_client::events::{EventClient, RetryPolicy};
use eddy_core::{PartitionId, StoredEvent};
use eddy_node::RunningNode;
use eddy_node::config::NodeConfig;
use eddy_proto::v1::{self, ProcessorQuery, QueryRequest, SubmitRequest, query_request};
use eddy_testkit::scrape::{scrape, sum};
use eddy_worker::processors::{Processor, ProcessorFactory};
use tonic::Code;

const SETTLE: Duration = Duration::from_secs(60);

/// Counts events; panics on events of type `poison` and on the query
/// `{"explode": true}`.
struct Fragile {
    count: u64,
}

impl Processor for Fragile {
    fn name(&self) -> &str {
        "fragile"
    }
    fn apply(&mut self, event: &StoredEvent) {
        assert!(event.event.event_type != "poison", "poisoned at offset {}", event.offset);
        self.count += 1;
    }
    fn checkpoint(&self) -> Vec<u8> {
        self.count.to_le_bytes().to_vec()
    }
    fn restore(&mut self, checkpoint: &[u8]) -> Result<(), String> {
        self.count = u64::from_le_bytes(checkpoint.try_into().map_err(|_| "not a count".to_owned())?);
        Ok(())
    }
    fn query(&self, request: &serde_json::Value) -> Result<serde_json::Value, String> {
        assert!(request["explode"] != true, "asked to explode");
        Ok(serde_json::json!({ "count": self.count }))
    }
}

fn event(key: &str, kind: &str, payload: Vec<u8>) -> v1::Event {
    v1::Event {
        key: Bytes::from(key.to_owned()),
        r#type: kind.into(),
        payload: Bytes::from(payload),
        ..Default::default()
    }
}

async fn ask(client: &EventClient, partition: PartitionId, name: &str, json: &str) -> Result<serde_json::Value, Code> {
    let query = query_request::Query::Processor(ProcessorQuery { name: name.into(), json: json.into() });
    let request = QueryRequest { partition, query: Some(query), wait_for_offset: u64::MAX };
    let answer = client.query(request).await.map_err(|e| e.code().unwrap_or(Code::Unknown))?;
    serde_json::from_str(&answer.json).map_err(|_| Code::Internal)
}

async fn start() -> anyhow::Result<(RunningNode, tempfile::TempDir, String)> {
    let dir = tempfile::tempdir()?;
    let addr = format!("127.0.0.1:{}", eddy_testkit::free_port()?);
    let mut config = NodeConfig::dev(dir.path(), &addr);
    config.cluster.partition_count = 2;
    config.liveness.heartbeat_interval_ms = 200;
    let fragile: Arc<dyn ProcessorFactory> =
        Arc::new(|_: PartitionId| Box::new(Fragile { count: 0 }) as Box<dyn Processor>);
    let node = RunningNode::start_with(config, vec![fragile]).await?;
    let cluster = ClusterClient::new(std::slice::from_ref(&addr), Duration::from_secs(5))?;
    let deadline = tokio::time::Instant::now() + SETTLE;
    loop {
        let up = |s: &eddy_client::view::StatusView| {
            s.confirmed_leader && !s.partitions.is_empty() && s.partitions.iter().all(|p| p.leader.is_some())
        };
        if cluster.status().await.is_ok_and(|s| up(&s)) {
            break;
        }
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "the node did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok((node, dir, addr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_input_breaks_a_node() -> anyhow::Result<()> {
    let (node, _dir, addr) = start().await?;
    let client =
        EventClient::connect(std::slice::from_ref(&addr), Duration::from_secs(5), RetryPolicy::default()).await?;
    let partition = client.partition_for_key(b"k");
    let submit = |events: Vec<v1::Event>, producer: Option<v1::Producer>| {
        let request = SubmitRequest { partition: Some(partition), events, producer, ..Default::default() };
        client.submit(request)
    };

    // A processor that panics on an event is restarted and passes it over;
    // the other processors and the partition go on.
    for kind in ["reading", "reading", "poison", "reading"] {
        submit(vec![event("k", kind, b"{\"value\": 1}".to_vec())], None).await?;
    }
    assert_eq!(ask(&client, partition, "fragile", "{}").await.map(|a| a["count"].clone()), Ok(3.into()));
    let stats = ask(&client, partition, "stats", "{\"type\": \"reading\"}").await;
    assert_eq!(stats.map(|a| a["total"]["count"].clone()), Ok(3.into()));
    // A panic answering a query is an error for that query only.
    assert_eq!(ask(&client, partition, "fragile", "{\"explode\": true}").await, Err(Code::InvalidArgument));
    assert_eq!(ask(&client, partition, "fragile", "{}").await.map(|a| a["count"].clone()), Ok(3.into()));
    // Both show in the status and in a metric.
    let cluster = ClusterClient::new(std::slice::from_ref(&addr), Duration::from_secs(5))?;
    let deadline = tokio::time::Instant::now() + SETTLE;
    let panics = loop {
        let status = cluster.status().await?;
        if status.processor_panics.len() >= 2 || tokio::time::Instant::now() > deadline {
            break status.processor_panics;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        panics.iter().any(|p| p.processor == "fragile" && p.description.contains("poisoned at offset 2")),
        "{panics:?}"
    );
    assert!(panics.iter().any(|p| p.description.contains("answering a query")), "{panics:?}");
    assert_eq!(sum(&scrape(&addr).await?, "eddy_worker_processor_panics_total"), 2.0);

    // A reversed stats range is refused, and the processor keeps answering.
    let reversed = ask(&client, partition, "stats", "{\"type\": \"reading\", \"from_ms\": 10, \"to_ms\": 5}").await;
    assert_eq!(reversed, Err(Code::InvalidArgument));
    assert!(ask(&client, partition, "stats", "{\"type\": \"reading\"}").await.is_ok());

    // A producer sequence at the end of u64 is refused before it is stored.
    let overflow =
        submit(vec![event("k", "t", b"1".to_vec()); 3], Some(v1::Producer { id: 9, sequence: u64::MAX - 1 }));
    assert_eq!(overflow.await.map_err(|e| e.code()).err(), Some(Some(Code::InvalidArgument)));

    // A read of many large events is bounded in bytes; the reader goes on.
    for _ in 0..8 {
        submit(vec![event("k", "big", vec![b'x'; 1000 * 1024]); 3], None).await?;
    }
    let read = client.read(partition, 0, 0, 10_000).await?;
    let bytes: usize = read.events.iter().map(|e| e.event.as_ref().map_or(0, |e| e.payload.len())).sum();
    assert!(bytes <= eddy_worker::api::MAX_READ_BYTES, "{bytes} bytes in one read");
    assert!(read.events.len() < 24 && (read.events.last().map_or(0, |e| e.offset) + 1) < read.end_offset);

    // Telemetry from made-up nodes is dropped: the models do not grow.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?.connect().await?;
    let mut controller = v1::controller_service_client::ControllerServiceClient::new(channel);
    let reports = (1_000..11_000u64).map(|node_id| v1::TelemetryReport {
        node: Some(v1::NodeTelemetry {
            node_id,
            at_ms: 1,
            interval_ms: 1000,
            capacity_cores: 1.0,
            ..Default::default()
        }),
        partitions: vec![v1::PartitionTelemetry { partition: 0, leader: true, ..Default::default() }],
    });
    let ack = controller.report_telemetry(futures::stream::iter(reports)).await?.into_inner();
    assert_eq!((ack.accepted, ack.refused), (0, 10_000));
    let models = cluster.models().await?;
    let nodes = models["nodes"].as_array().map_or(0, Vec::len);
    assert!(nodes <= 1, "the models know {nodes} nodes");

    // Still serving.
    submit(vec![event("k", "reading", b"{\"value\": 2}".to_vec())], None).await?;
    node.shutdown().await;
    Ok(())
}
