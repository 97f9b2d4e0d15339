//! `eddyctl bench`: the load generator. Sends events of a given size with a
//! given concurrency and batch size, over keys drawn uniformly or with zipf
//! skew, at a target rate or as fast as the cluster takes them, and reports
//! throughput, submit latency percentiles, errors and fsyncs per second.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use eddy_client::events::{EventClient, event_acks};
use eddy_client::stream::StreamSubmitter;
use eddy_proto::v1::cluster_service_client::ClusterServiceClient;
use eddy_proto::v1::{self, NodeMetricsRequest, SubmitRequest};
use hdrhistogram::Histogram;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use rand_distr::{Distribution, Zipf};
use serde_json::json;
use tokio::sync::mpsc;

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Events to send; without it, send for --duration-secs.
    #[arg(long)]
    events: Option<u64>,
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    /// Payload bytes per event.
    #[arg(long, default_value_t = 256)]
    event_size: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Events per request.
    #[arg(long, default_value_t = 1)]
    batch_size: usize,
    /// Distinct keys.
    #[arg(long, default_value_t = 1000)]
    keys: u64,
    /// Zipf exponent of key popularity (0: uniform).
    #[arg(long, default_value_t = 0.0)]
    zipf: f64,
    /// Target events per second (0: as fast as possible).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// With --rate, how requests are spaced: `uniform` (evenly, senders
    /// staggered) or `poisson` (random gaps, as independent clients send;
    /// queues form below saturation, as they do in production).
    #[arg(long, value_enum, default_value_t = Arrivals::Uniform)]
    arrivals: Arrivals,
    #[arg(long = "type", default_value = "bench")]
    event_type: String,
    /// Send only to these partitions (comma-separated): the keys are the
    /// first --keys keys that hash into them.
    #[arg(long, value_delimiter = ',')]
    partitions: Vec<u32>,
    /// When an answer counts: `committed` (stored on a quorum) or
    /// `processed` (also folded in by the partition's processors).
    #[arg(long, value_enum, default_value_t = AckArg::Committed)]
    ack: AckArg,
    /// Stamp each request as an idempotent producer's (an id per sender,
    /// a sequence per partition), so that a request retried after a
    /// timeout or a lost connection is stored once.
    #[arg(long)]
    idempotent: bool,
    /// Print the result as one JSON object.
    #[arg(long)]
    json: bool,
    /// Write one line per acknowledged event: partition offset key uid.
    #[arg(long)]
    ack_log: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Arrivals {
    Uniform,
    Poisson,
}

/// When a sender sends next, at `rate` events a second of its own.
struct Pacer {
    rate: f64,
    arrivals: Arrivals,
    next: Instant,
    rng: SmallRng,
}

impl Pacer {
    /// Sender `index` of `senders`: uniform senders start staggered, so
    /// that together they send evenly rather than in bursts.
    fn new(rate: f64, arrivals: Arrivals, index: usize, senders: usize, seed: u64) -> Self {
        let stagger = Duration::from_secs_f64(index as f64 / (rate * senders as f64));
        let mut pacer = Pacer { rate, arrivals, next: Instant::now() + stagger, rng: SmallRng::seed_from_u64(seed) };
        if arrivals == Arrivals::Poisson {
            pacer.next = Instant::now() + pacer.gap(1);
        }
        pacer
    }

    fn gap(&mut self, events: usize) -> Duration {
        let mean = events as f64 / self.rate;
        match self.arrivals {
            Arrivals::Uniform => Duration::from_secs_f64(mean),
            Arrivals::Poisson => {
                let exponential: f64 = rand_distr::Exp1.sample(&mut self.rng);
                let gap = mean * exponential;
                Duration::from_secs_f64(gap.min(3600.0))
            }
        }
    }

    /// Waits for this request's turn and schedules the next one.
    async fn wait(&mut self, events: usize) {
        tokio::time::sleep_until(self.next.into()).await;
        let gap = self.gap(events);
        self.next += gap;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AckArg {
    Committed,
    Processed,
}

impl AckArg {
    fn level(self) -> v1::AckLevel {
        match self {
            AckArg::Committed => v1::AckLevel::Committed,
            AckArg::Processed => v1::AckLevel::Processed,
        }
    }
}

/// What one sender saw.
struct Tally {
    latency_us: Histogram<u64>,
    errors: BTreeMap<String, u64>,
    /// Answers that asked for processing but came back committed only.
    not_processed: u64,
}

/// The keys a run draws from: `key-N`, or, with --partitions, the first
/// keys that hash into those partitions.
fn key_table(client: &EventClient, args: &BenchArgs) -> anyhow::Result<Option<Arc<Vec<String>>>> {
    if args.partitions.is_empty() {
        return Ok(None);
    }
    let count = client.partition_count();
    if let Some(bad) = args.partitions.iter().find(|p| **p >= count) {
        anyhow::bail!("--partitions: the cluster has {count} partitions (0 to {}), not {bad}", count.saturating_sub(1));
    }
    let keys: Vec<String> = (1..)
        .take(20_000_000)
        .map(|i| format!("key-{i}"))
        .filter(|k| args.partitions.contains(&client.partition_for_key(k.as_bytes())))
        .take(args.keys as usize)
        .collect();
    anyhow::ensure!(keys.len() as u64 == args.keys, "--partitions: found only {} keys for them", keys.len());
    Ok(Some(Arc::new(keys)))
}

/// Makes requests: keys by the configured distribution, each request's
/// events all of one partition.
struct Generator {
    rng: SmallRng,
    zipf: Option<Zipf<f64>>,
    keys: u64,
    table: Option<Arc<Vec<String>>>,
    ack: v1::AckLevel,
    payload: Bytes,
    event_type: String,
    batch: usize,
    partitions: u32,
    client: Arc<EventClient>,
    buffers: Vec<Vec<v1::Event>>,
    /// With --idempotent: this sender's producer id and its next sequence
    /// per partition.
    producer: Option<(u64, Vec<u64>)>,
}

impl Generator {
    fn key(&mut self) -> String {
        let n = match &self.zipf {
            Some(zipf) => zipf.sample(&mut self.rng) as u64,
            None => rand::Rng::random_range(&mut self.rng, 1..=self.keys),
        };
        match &self.table {
            Some(table) => table[(n.clamp(1, table.len() as u64) - 1) as usize].clone(),
            None => format!("key-{n}"),
        }
    }

    /// The next full request; `None` once `budget` has no event left.
    fn next(&mut self, budget: &AtomicU64) -> Option<SubmitRequest> {
        loop {
            if budget.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| left.checked_sub(1)).is_err() {
                // Send what is buffered before stopping.
                let partition = self.buffers.iter().position(|b| !b.is_empty())?;
                return Some(self.take(partition as u32));
            }
            let key = self.key();
            let partition = self.client.partition_for_key(key.as_bytes());
            let event = v1::Event {
                key: Bytes::from(key),
                r#type: self.event_type.clone(),
                payload: self.payload.clone(),
                attributes: Default::default(),
            };
            let buffer = &mut self.buffers[partition as usize % self.partitions as usize];
            buffer.push(event);
            if buffer.len() >= self.batch {
                return Some(self.take(partition));
            }
        }
    }

    fn take(&mut self, partition: u32) -> SubmitRequest {
        let events = std::mem::take(&mut self.buffers[partition as usize]);
        let producer = self
            .producer
            .as_ref()
            .map(|(id, sequences)| v1::Producer { id: *id, sequence: sequences[partition as usize] });
        SubmitRequest { partition: Some(partition), events, producer, request_id: 0, ack: self.ack as i32 }
    }

    /// A request was answered: the partition's sequence moves on.
    fn stored(&mut self, partition: u32, events: u64) {
        if let Some((_, sequences)) = &mut self.producer {
            sequences[partition as usize] += events;
        }
    }

    /// A request failed for good: whether it was stored is unknown, so the
    /// sender goes on as a new producer, whose requests cannot be taken
    /// for retries of it.
    fn failed(&mut self) {
        if let Some((id, sequences)) = &mut self.producer {
            *id = rand::Rng::random(&mut self.rng);
            sequences.iter_mut().for_each(|s| *s = 0);
        }
    }
}

/// The longest time the run went without any answer: how long a fault
/// (a paused leader, say) held the clients up.
struct StallClock {
    /// Since the run's start: the last answer, and the longest gap so far.
    state: std::sync::Mutex<(Duration, Duration)>,
    started: Instant,
}

impl StallClock {
    fn new(started: Instant) -> Self {
        StallClock { state: std::sync::Mutex::new((Duration::ZERO, Duration::ZERO)), started }
    }

    fn answered(&self) {
        let now = self.started.elapsed();
        if let Ok(mut state) = self.state.lock() {
            let (last, longest) = *state;
            *state = (now, longest.max(now.saturating_sub(last)));
        }
    }

    fn longest(&self) -> Duration {
        self.state.lock().map_or(Duration::ZERO, |s| s.1)
    }
}

fn payload(size: usize) -> Bytes {
    let mut text = String::from("{\"value\":1,\"pad\":\"");
    while text.len() + 2 < size {
        text.push('x');
    }
    text.push_str("\"}");
    if size < 24 {
        return Bytes::from(vec![b'x'; size]);
    }
    Bytes::from(text)
}

async fn fsyncs(client: &EventClient) -> (u64, u64, u64) {
    let Ok(map) = client.cluster().partition_map().await else { return (0, 0, 0) };
    let mut total = (0, 0, 0);
    for node in &map.nodes {
        let Ok(channel) = tonic::transport::Endpoint::from_shared(format!("http://{}", node.addr)) else { continue };
        let Ok(channel) = channel.connect().await else { continue };
        if let Ok(m) = ClusterServiceClient::new(channel).node_metrics(NodeMetricsRequest {}).await {
            total.0 += m.get_ref().fsyncs;
            total.1 += m.get_ref().synced_writes;
            total.2 += m.get_ref().fsync_micros;
        }
    }
    total
}

pub async fn run(client: Arc<EventClient>, args: BenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.concurrency > 0 && args.batch_size > 0 && args.keys > 0,
        "concurrency, batch size and keys must be at least 1"
    );
    let duration = Duration::from_secs(args.duration_secs.clamp(1, 3600));
    let budget = Arc::new(AtomicU64::new(args.events.unwrap_or(u64::MAX)));
    let acked = Arc::new(AtomicU64::new(0));
    let submitter = Arc::new(StreamSubmitter::new(client.clone()));
    let table = key_table(&client, &args)?;
    let zipf = if args.zipf > 0.0 { Some(Zipf::new(args.keys as f64, args.zipf).context("--zipf")?) } else { None };
    let (ack_lines, ack_writer) = match &args.ack_log {
        Some(path) => {
            let file = std::fs::File::create(path).with_context(|| format!("--ack-log {}", path.display()))?;
            let (send, receive) = mpsc::channel::<String>(65_536);
            (Some(send), Some(tokio::task::spawn_blocking(move || write_acks(file, receive))))
        }
        None => (None, None),
    };
    let before = fsyncs(&client).await;
    let started = Instant::now();
    let deadline = started + if args.events.is_some() { Duration::from_secs(3600) } else { duration };
    let progress = progress_bar(&args, acked.clone(), started, duration);
    let per_sender_rate = (args.rate > 0).then(|| args.rate as f64 / args.concurrency as f64);
    let (arrivals, concurrency, idempotent) = (args.arrivals, args.concurrency, args.idempotent);
    let seed = u64::from(std::process::id()) << 20 ^ started.elapsed().as_nanos() as u64;
    let stalls = Arc::new(StallClock::new(started));
    let histograms = (0..args.concurrency).map(|_| Histogram::<u64>::new(3)).collect::<Result<Vec<_>, _>>()?;
    let senders: Vec<_> = histograms
        .into_iter()
        .enumerate()
        .map(|(i, latency_us)| {
            let mut generator = Generator {
                rng: SmallRng::seed_from_u64(i as u64 + 1),
                zipf,
                keys: args.keys,
                table: table.clone(),
                ack: args.ack.level(),
                payload: payload(args.event_size),
                event_type: args.event_type.clone(),
                batch: args.batch_size,
                partitions: client.partition_count().max(1),
                client: client.clone(),
                buffers: vec![Vec::new(); client.partition_count().max(1) as usize],
                producer: idempotent.then(|| {
                    let mut rng = SmallRng::seed_from_u64(seed ^ i as u64);
                    (rand::Rng::random(&mut rng), vec![0; client.partition_count().max(1) as usize])
                }),
            };
            let (submitter, budget, acked, ack_lines, stalls) =
                (submitter.clone(), budget.clone(), acked.clone(), ack_lines.clone(), stalls.clone());
            tokio::spawn(async move {
                let mut tally = Tally { latency_us, errors: BTreeMap::new(), not_processed: 0 };
                let mut pacer =
                    per_sender_rate.map(|rate| Pacer::new(rate, arrivals, i, concurrency, 1_000_003 * (i as u64 + 1)));
                while Instant::now() < deadline {
                    let Some(request) = generator.next(&budget) else { break };
                    if let Some(pacer) = &mut pacer {
                        pacer.wait(request.events.len()).await;
                    }
                    let keys: Vec<Bytes> = request.events.iter().map(|e| e.key.clone()).collect();
                    let request_ack = request.ack();
                    let partition = request.partition.unwrap_or(0);
                    let sent = Instant::now();
                    match submitter.submit(request).await {
                        Ok(response) => {
                            stalls.answered();
                            generator.stored(partition, keys.len() as u64);
                            let _ = tally.latency_us.record(sent.elapsed().as_micros() as u64);
                            if request_ack == v1::AckLevel::Processed && !response.processed {
                                tally.not_processed += 1;
                            }
                            acked.fetch_add(u64::from(response.count), Ordering::Relaxed);
                            if let Some(lines) = &ack_lines {
                                for (ack, key) in event_acks(&response).iter().zip(keys) {
                                    let line = format!(
                                        "{} {} {} {}",
                                        ack.partition,
                                        ack.offset,
                                        String::from_utf8_lossy(&key),
                                        ack.uid
                                    );
                                    let _ = lines.send(line).await;
                                }
                            }
                        }
                        Err(err) => {
                            generator.failed();
                            let kind = err.code().map_or_else(|| "unreachable".to_owned(), |c| format!("{c:?}"));
                            *tally.errors.entry(kind).or_default() += 1;
                        }
                    }
                }
                tally
            })
        })
        .collect();
    let mut latency = Histogram::<u64>::new(3).context("histogram")?;
    let mut errors = BTreeMap::<String, u64>::new();
    let mut not_processed = 0;
    for sender in senders {
        let tally = sender.await?;
        not_processed += tally.not_processed;
        latency.add(&tally.latency_us).context("merging latencies")?;
        for (kind, n) in tally.errors {
            *errors.entry(kind).or_default() += n;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    drop(ack_lines);
    if let Some(writer) = ack_writer {
        writer.await??;
    }
    let after = fsyncs(&client).await;
    let syncs = (after.0 - before.0, after.1 - before.1, after.2 - before.2);
    let outcome =
        Outcome { acked: acked.load(Ordering::Relaxed), not_processed, elapsed, longest_stall: stalls.longest() };
    report(&args, &outcome, &errors, &latency, syncs)
}

fn write_acks(file: std::fs::File, mut lines: mpsc::Receiver<String>) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::new(file);
    while let Some(line) = lines.blocking_recv() {
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    Ok(())
}

fn progress_bar(
    args: &BenchArgs,
    acked: Arc<AtomicU64>,
    started: Instant,
    duration: Duration,
) -> Option<indicatif::ProgressBar> {
    if args.quiet || args.json {
        return None;
    }
    let bar = match args.events {
        Some(n) => indicatif::ProgressBar::new(n),
        None => indicatif::ProgressBar::new(duration.as_secs()),
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let ticking = bar.clone();
    let counted = args.events.is_some();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let done = acked.load(Ordering::Relaxed);
            let secs = started.elapsed().as_secs_f64();
            ticking.set_position(if counted { done } else { secs as u64 });
            ticking.set_message(format!("{done} acked, {:.0} events/s", done as f64 / secs.max(0.001)));
            if ticking.is_finished() {
                return;
            }
        }
    });
    Some(bar)
}

/// Counts of a finished run.
struct Outcome {
    acked: u64,
    not_processed: u64,
    elapsed: f64,
    /// The longest time without any answer.
    longest_stall: Duration,
}

fn report(
    args: &BenchArgs,
    &Outcome { acked, not_processed, elapsed, longest_stall }: &Outcome,
    errors: &BTreeMap<String, u64>,
    latency: &Histogram<u64>,
    (syncs, synced, sync_micros): (u64, u64, u64),
) -> anyhow::Result<()> {
    let ack = match args.ack {
        AckArg::Committed => "committed",
        AckArg::Processed => "processed",
    };
    let rate = acked as f64 / elapsed.max(0.001);
    let p = |q: f64| latency.value_at_quantile(q);
    let error_count: u64 = errors.values().sum();
    let summary = json!({
        "acked": acked,
        "errors": error_count,
        "errors_by_kind": errors,
        "not_processed": not_processed,
        "duration_s": elapsed,
        "events_per_s": rate,
        "mib_per_s": rate * args.event_size as f64 / (1024.0 * 1024.0),
        "latency_us": { "p50": p(0.5), "p90": p(0.9), "p99": p(0.99), "p999": p(0.999), "max": latency.max() },
        "longest_stall_ms": longest_stall.as_millis() as u64,
        "fsyncs_per_s": syncs as f64 / elapsed.max(0.001),
        "writes_per_fsync": if syncs > 0 { synced as f64 / syncs as f64 } else { 0.0 },
        "fsync_avg_us": if syncs > 0 { sync_micros as f64 / syncs as f64 } else { 0.0 },
        "config": {
            "event_size": args.event_size, "concurrency": args.concurrency, "batch_size": args.batch_size,
            "keys": args.keys, "zipf": args.zipf, "rate": args.rate, "ack": ack, "arrivals": format!("{:?}", args.arrivals).to_lowercase(),
            "partitions": args.partitions, "type": args.event_type, "idempotent": args.idempotent,
        },
    });
    if args.json {
        println!("{summary}");
        return Ok(());
    }
    println!(
        "acked {acked} events in {elapsed:.1} s: {rate:.0} events/s ({:.1} MiB/s)",
        summary["mib_per_s"].as_f64().unwrap_or(0.0)
    );
    println!(
        "submit-to-{ack} latency (us): p50 {} p90 {} p99 {} p999 {} max {}",
        p(0.5),
        p(0.9),
        p(0.99),
        p(0.999),
        latency.max()
    );
    println!("longest stall: {} ms without any answer", longest_stall.as_millis());
    if not_processed > 0 {
        println!("answered before processing (leadership moved or 30 s behind): {not_processed} requests");
    }
    if error_count == 0 {
        println!("errors: none");
    } else {
        println!("errors: {error_count} ({errors:?})");
    }
    println!(
        "fsyncs: {:.0}/s across the cluster, {:.1} writes made durable per fsync, {:.0} us each on average",
        summary["fsyncs_per_s"].as_f64().unwrap_or(0.0),
        summary["writes_per_fsync"].as_f64().unwrap_or(0.0),
        summary["fsync_avg_us"].as_f64().unwrap_or(0.0)
    );
    Ok(())
}
