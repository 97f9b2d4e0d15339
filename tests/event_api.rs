//! The event API on a one-node cluster: bad input is refused with a clear
//! error and stores nothing; queries answer from the processors; a
//! subscription delivers events in order and resumes where it stopped.

use std::time::Duration;

use bytes::Bytes;
use eddy_client::events::{EventClient, RetryPolicy};
use eddy_proto::v1::event_service_client::EventServiceClient;
use eddy_proto::v1::{
    self, AggregateQuery, QueryRequest, SubmitRequest, SubscribeRequest, aggregate_query, query_request,
    subscribe_request,
};
use eddy_testkit::{ClusterSpec, TestCluster, bins, healthy};
use tonic::Code;
use tonic::transport::Channel;

const SETTLE: Duration = Duration::from_secs(60);

async fn single_node() -> anyhow::Result<(TestCluster, EventClient)> {
    let spec = ClusterSpec { voters: 1, replication_factor: 1, ..ClusterSpec::default() };
    let cluster = TestCluster::start(bins!(), spec)?;
    cluster.wait_until(1, "a healthy node", SETTLE, |s| healthy(s, 1)).await?;
    let client = EventClient::connect(&cluster.endpoints(), Duration::from_secs(5), RetryPolicy::default()).await?;
    for partition in 0..client.partition_count() {
        client.read(partition, 0, 0, 1).await?;
    }
    Ok((cluster, client))
}

fn event(key: &str, kind: &str, payload: Vec<u8>) -> v1::Event {
    v1::Event {
        key: Bytes::from(key.to_owned()),
        r#type: kind.into(),
        payload: Bytes::from(payload),
        attributes: Default::default(),
    }
}

async fn raw_client(cluster: &TestCluster) -> anyhow::Result<EventServiceClient<Channel>> {
    let channel =
        tonic::transport::Endpoint::from_shared(format!("http://{}", cluster.endpoint(1)?))?.connect().await?;
    Ok(EventServiceClient::new(channel).max_encoding_message_size(64 << 20))
}

async fn total_stored(client: &EventClient) -> anyhow::Result<u64> {
    let mut total = 0;
    for partition in 0..client.partition_count() {
        total += client.read(partition, 0, 0, 1).await?.end_offset;
    }
    Ok(total)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_clearly_and_stores_nothing() -> anyhow::Result<()> {
    let (cluster, client) = single_node().await?;
    let mut raw = raw_client(&cluster).await?;
    let partition = client.partition_for_key(b"k");
    let submit = |events: Vec<v1::Event>, partition: Option<u32>| SubmitRequest {
        partition,
        events,
        producer: None,
        request_id: 0,
        ..Default::default()
    };
    let cases: Vec<(&str, SubmitRequest, Code, &str)> = vec![
        (
            "oversize payload",
            submit(vec![event("k", "t", vec![0; 2 << 20])], Some(partition)),
            Code::InvalidArgument,
            "max_event_bytes",
        ),
        (
            "oversize key",
            submit(vec![event(&"k".repeat(2000), "t", vec![1])], None),
            Code::InvalidArgument,
            "max_key_bytes",
        ),
        (
            "too many events",
            submit((0..10_001).map(|_| event("k", "t", vec![1])).collect(), Some(partition)),
            Code::InvalidArgument,
            "max_batch_events",
        ),
        (
            "too many bytes",
            submit((0..5).map(|_| event("k", "t", vec![0; 900_000])).collect(), Some(partition)),
            Code::InvalidArgument,
            "max_batch_bytes",
        ),
        (
            "unknown partition",
            submit(vec![event("", "t", vec![1])], Some(99)),
            Code::InvalidArgument,
            "unknown partition 99",
        ),
        ("no events", submit(Vec::new(), Some(partition)), Code::InvalidArgument, "at least one event"),
        (
            "key of another partition",
            submit(vec![event("k", "t", vec![1])], Some((partition + 1) % 16)),
            Code::InvalidArgument,
            "maps to partition",
        ),
    ];
    for (what, request, code, says) in cases {
        let refused = raw.submit(request).await.expect_err(what);
        assert_eq!(refused.code(), code, "{what}: {refused:?}");
        assert!(refused.message().contains(says), "{what}: {}", refused.message());
    }
    // A message past the transport's limit, and bytes that are no message at all.
    let huge = submit(vec![event("k", "t", vec![0; 20 << 20])], Some(partition));
    let refused = raw.submit(huge).await.expect_err("a message past the limit");
    assert!(matches!(refused.code(), Code::ResourceExhausted | Code::OutOfRange), "{refused:?}");
    let garbage = raw_bytes_call(&cluster, vec![0xff, 0xff, 0xff, 0x0f, 0x01]).await?;
    let refused = garbage.expect_err("garbage must be refused");
    assert_eq!(refused.code(), Code::InvalidArgument, "the sender's mistake, not the server's: {refused:?}");
    assert_eq!(total_stored(&client).await?, 0, "nothing refused is stored");
    // The node keeps serving.
    let ok = raw.submit(submit(vec![event("k", "t", b"{\"value\": 1}".to_vec())], None)).await?.into_inner();
    assert_eq!((ok.partition, ok.first_offset, ok.count), (partition, 0, 1));
    assert_eq!(total_stored(&client).await?, 1);
    Ok(())
}

/// Sends `bytes` as the body of a Submit call, not as a message.
async fn raw_bytes_call(cluster: &TestCluster, bytes: Vec<u8>) -> anyhow::Result<Result<(), tonic::Status>> {
    let channel =
        tonic::transport::Endpoint::from_shared(format!("http://{}", cluster.endpoint(1)?))?.connect().await?;
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await?;
    let path = tonic::codegen::http::uri::PathAndQuery::from_static("/eddy.v1.EventService/Submit");
    let answer = grpc.unary(tonic::Request::new(bytes), path, raw::RawCodec).await;
    Ok(answer.map(|_| ()))
}

mod raw {
    //! A codec that sends bytes as they are.
    use bytes::{Buf, BufMut};
    use tonic::Status;
    use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

    pub struct RawCodec;
    pub struct Raw;

    impl Codec for RawCodec {
        type Encode = Vec<u8>;
        type Decode = Vec<u8>;
        type Encoder = Raw;
        type Decoder = Raw;
        fn encoder(&mut self) -> Raw {
            Raw
        }
        fn decoder(&mut self) -> Raw {
            Raw
        }
    }

    impl Encoder for Raw {
        type Item = Vec<u8>;
        type Error = Status;
        fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
            dst.put_slice(&item);
            Ok(())
        }
    }

    impl Decoder for Raw {
        type Item = Vec<u8>;
        type Error = Status;
        fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
            let bytes = src.copy_to_bytes(src.remaining());
            Ok(Some(bytes.to_vec()))
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_and_subscriptions_see_committed_events_in_order() -> anyhow::Result<()> {
    let (cluster, client) = single_node().await?;
    let partition = client.partition_for_key(b"sensor-1");
    let mut raw = raw_client(&cluster).await?;
    let mut subscription = raw
        .subscribe(SubscribeRequest {
            partition,
            start: Some(subscribe_request::Start::Earliest(true)),
            types: vec!["reading".into()],
        })
        .await?
        .into_inner();
    let mut last = 0;
    for value in 1..=10 {
        let events = vec![
            event("sensor-1", "reading", format!("{{\"value\": {value}}}").into_bytes()),
            event("sensor-1", "note", b"{}".to_vec()),
        ];
        last = raw
            .submit(SubmitRequest { partition: None, events, producer: None, request_id: 0, ..Default::default() })
            .await?
            .into_inner()
            .first_offset
            + 1;
    }
    // Read your writes: the query waits for the processors to reach the offset.
    let ask = AggregateQuery { of: Some(aggregate_query::Of::Key("sensor-1".into())), from_ms: None, to_ms: None };
    let answer = client
        .query(QueryRequest { partition, query: Some(query_request::Query::Aggregate(ask)), wait_for_offset: last + 1 })
        .await?;
    let stats: serde_json::Value = serde_json::from_str(&answer.json)?;
    assert_eq!(stats["total"]["count"], 20);
    assert_eq!(stats["total"]["measured"], 10);
    assert_eq!(stats["total"]["sum"], 55.0);
    assert_eq!(stats["total"]["max"], 10.0);
    // The subscription got the readings, in order, and not the notes.
    let mut seen = Vec::new();
    while seen.len() < 10 {
        let next = tokio::time::timeout(SETTLE, subscription.message()).await??.expect("the stream goes on");
        seen.push(next);
    }
    assert!(seen.iter().all(|e| e.event.as_ref().is_some_and(|b| b.r#type == "reading")));
    assert!(seen.windows(2).all(|w| w[0].offset < w[1].offset));
    // Resuming from an offset picks up exactly there.
    let resume_at = seen[4].offset;
    let mut resumed = raw
        .subscribe(SubscribeRequest {
            partition,
            start: Some(subscribe_request::Start::Offset(resume_at)),
            types: Vec::new(),
        })
        .await?
        .into_inner();
    let first = resumed.message().await?.expect("an event");
    assert_eq!(first.offset, resume_at);
    Ok(())
}
