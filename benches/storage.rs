//! The storage and apply paths of a partition, without the network:
//! - event_log: appending a record of 500 events of 256 bytes to the
//!   partition's event log (no fsync: the log is synced at snapshots);
//! - raft_log: appending a Raft entry of 500 such events to the node's
//!   fjall database and waiting for the group-commit fsync, alone and with
//!   16 groups appending at once (what one fsync covers);
//! - apply: applying a committed entry of 500 events to the partition
//!   state (offsets, hlcs, producer table) and encoding its record.
//!
//! cargo bench --bench storage

// A benchmark that cannot set up must stop, loudly.
#![allow(clippy::expect_used)]

use std::time::Duration;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use eddy_core::Event;
use eddy_storage::eventlog::{EventLog, EventLogConfig, RecordHeader};
use eddy_storage::{RaftLogStore, Store, StoreOptions};
use eddy_worker::state::PartitionState;
use eddy_worker::types::{AppendRequest, PartitionCommand, PartitionTypes, ProducerStamp};
use openraft::entry::RaftEntry;
use openraft::impls::leader_id_adv::LeaderId;
use openraft::storage::{IOFlushed, RaftLogStorage};
use openraft::type_config::TypeConfigExt;
use openraft::{Entry, EntryPayload, LogId};

const EVENTS: usize = 500;

fn events() -> Vec<Event> {
    (0..EVENTS)
        .map(|i| Event {
            key: Bytes::from(format!("key-{}", i % 100)),
            event_type: "bench".into(),
            payload: Bytes::from(vec![b'x'; 256]),
            attributes: Default::default(),
        })
        .collect()
}

fn request(sequence: u64) -> AppendRequest {
    AppendRequest { producer: Some(ProducerStamp { id: 7, sequence }), proposed_ms: 1_000, events: events() }
}

fn log_id(index: u64) -> LogId<LeaderId<u64, u64>> {
    LogId::new(LeaderId { term: 1, node_id: 1 }, index)
}

fn event_log(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let (log, _) = EventLog::open(dir.path(), EventLogConfig::default(), 0).expect("event log");
    let payload = vec![b'x'; EVENTS * 300];
    let mut group = c.benchmark_group("event_log");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.bench_function("append_500_events", |b| {
        b.iter(|| {
            let first_offset = log.next_offset();
            let header = RecordHeader { tag: 1, first_offset, count: EVENTS as u32, first_hlc: 1, last_hlc: 2 };
            log.append(&header, &payload).expect("append");
        });
    });
    group.bench_function("read_500_events", |b| {
        b.iter(|| log.read(0, payload.len()).expect("read"));
    });
    group.finish();
}

fn raft_log(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path(), &StoreOptions::default()).expect("store");
    let mut group = c.benchmark_group("raft_log");
    group.sample_size(30).measurement_time(Duration::from_secs(8));
    for groups in [1u64, 16] {
        group.throughput(Throughput::Elements(EVENTS as u64 * groups));
        let mut logs: Vec<RaftLogStore<PartitionTypes>> =
            (1..=groups).map(|g| RaftLogStore::new(store.clone(), g)).collect();
        let mut index = 0u64;
        group.bench_with_input(BenchmarkId::new("append_durable", format!("{groups}_groups")), &groups, |b, _| {
            b.to_async(&runtime).iter(|| {
                index += 1;
                let mut waits = Vec::new();
                let mut appends = Vec::new();
                for log in logs.iter_mut() {
                    let entry: Entry<_, _> =
                        Entry::new(log_id(index), EntryPayload::Normal(PartitionCommand::Append(vec![request(index)])));
                    let (done, wait) = PartitionTypes::oneshot();
                    waits.push(wait);
                    appends.push((log.clone(), entry, IOFlushed::<PartitionTypes>::signal(done)));
                }
                async move {
                    // The groups append at once, as a node's partitions do.
                    let appending = appends.into_iter().map(|(mut log, entry, flushed)| {
                        tokio::spawn(async move { log.append([entry], flushed).await.expect("append") })
                    });
                    futures::future::join_all(appending).await;
                    for wait in waits {
                        wait.await.expect("flushed").expect("durable");
                    }
                }
            });
        });
    }
    group.finish();
}

fn apply(c: &mut Criterion) {
    let mut group = c.benchmark_group("apply");
    group.throughput(Throughput::Elements(EVENTS as u64));
    let requests = vec![request(0)];
    group.bench_function("apply_and_encode_500_events", |b| {
        let mut state = PartitionState::default();
        let mut index = 0u64;
        b.iter(|| {
            index += 1;
            // A fresh producer each time: every batch is accepted.
            let mut batch = requests.clone();
            batch[0].producer = Some(ProducerStamp { id: index, sequence: 0 });
            let (record, _) = state.apply_append(log_id(index), &batch);
            let (_, record) = record.expect("events are logged");
            postcard::to_allocvec(&record).expect("encode")
        });
    });
    group.finish();
}

criterion_group!(benches, event_log, raft_log, apply);
criterion_main!(benches);
