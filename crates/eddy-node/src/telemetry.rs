//! The node's telemetry: once a second, a report of the node (sysinfo: host
//! CPU and memory, this process's CPU and memory; the manifest's capacity
//! and price; processor CPU and response time) and of each local replica
//! (rates, CPU per event, commit latency, queue depth, log size), streamed
//! to the controller leader.
//!
//! The last ten minutes of reports are kept; on a new connection (a new
//! leader) they are sent first, so the new leader rebuilds its models
//! instead of starting blind. The queue to the stream is bounded: when the
//! leader is slow or away, the oldest reports are dropped, never memory.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use eddy_core::NodeSpec;
use eddy_proto::channels::PeerChannels;
use eddy_proto::v1::controller_service_client::ControllerServiceClient;
use eddy_proto::v1::{NodeTelemetry, PartitionTelemetry, TelemetryReport};
use eddy_worker::Worker;
use eddy_worker::telemetry::{ReplicaTelemetry, latency_histogram};
use hdrhistogram::Histogram;
use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};
use tokio::sync::mpsc;

use crate::status::leader_addr;

/// Reports kept for a new leader: ten minutes at one a second.
pub const BACKLOG_REPORTS: usize = 600;
/// Reports waiting for the stream before the oldest are dropped.
const STREAM_QUEUE: usize = 64;

pub struct Telemetry {
    pub spec: NodeSpec,
    pub worker: Arc<Worker>,
    pub controllers: Vec<String>,
    pub channels: PeerChannels,
    pub interval: Duration,
}

impl Telemetry {
    /// Samples and streams until the node stops.
    pub async fn run(self) {
        let (reports, queued) = mpsc::channel(STREAM_QUEUE);
        let backlog = Arc::new(std::sync::Mutex::new(VecDeque::with_capacity(BACKLOG_REPORTS)));
        let streamer = tokio::spawn(stream(self.controllers.clone(), self.channels.clone(), queued, backlog.clone()));
        let mut sampler = Sampler::new(self.spec.clone(), self.worker.clone());
        let mut ticks = tokio::time::interval(self.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            let report = sampler.sample();
            if let Ok(mut backlog) = backlog.lock() {
                if backlog.len() == BACKLOG_REPORTS {
                    backlog.pop_front();
                }
                backlog.push_back(report.clone());
            }
            // Full: the stream is behind; this report stays in the backlog.
            let _ = reports.try_send(report);
            if streamer.is_finished() {
                return;
            }
        }
    }
}

struct Sampler {
    spec: NodeSpec,
    worker: Arc<Worker>,
    /// None where sysinfo cannot read this platform: host figures read 0.
    system: Option<System>,
    pid: Option<Pid>,
    last: std::time::Instant,
}

impl Sampler {
    fn new(spec: NodeSpec, worker: Arc<Worker>) -> Self {
        let mut system = System::new().ok();
        if let Some(system) = &mut system {
            system.refresh_cpu_usage();
        }
        let pid = sysinfo::get_current_pid().ok();
        Sampler { spec, worker, system, pid, last: std::time::Instant::now() }
    }

    fn sample(&mut self) -> TelemetryReport {
        let interval = self.last.elapsed().max(Duration::from_millis(1));
        self.last = std::time::Instant::now();
        let interval_s = interval.as_secs_f64();
        let (host_cpu_busy, memory_used, memory_total) = match &mut self.system {
            Some(system) => {
                system.refresh_cpu_usage();
                system.refresh_memory();
                (f64::from(system.global_cpu_usage()) / 100.0, system.used_memory(), system.total_memory())
            }
            None => (0.0, 0, 0),
        };
        let (process_cpu_cores, process_memory_bytes) = self.process();
        let replicas = self.worker.telemetry();
        let mut processed = latency_histogram();
        let (mut processed_events, mut processor_cpu_us) = (0u64, 0u64);
        for r in replicas.iter().filter(|r| r.leader) {
            if let Some(reading) = &r.reading {
                let _ = processed.add(&reading.processed_us);
                processed_events += reading.processed_events;
                processor_cpu_us += reading.processor_cpu_us;
            }
        }
        let node = NodeTelemetry {
            node_id: self.spec.id,
            at_ms: crate::services::now_ms(),
            interval_ms: interval.as_millis() as u64,
            capacity_cores: self.spec.capacity_cores,
            price_per_hour: self.spec.price_per_hour,
            host_cpu_busy,
            process_cpu_cores,
            host_memory_used_bytes: memory_used,
            host_memory_total_bytes: memory_total,
            process_memory_bytes,
            processor_cpu_cores: processor_cpu_us as f64 / 1e6 / interval_s,
            processed_events,
            processed_p50_ms: quantile_ms(&processed, 0.5),
            processed_p99_ms: quantile_ms(&processed, 0.99),
        };
        let partitions = replicas.iter().map(|r| partition_telemetry(r, interval_s)).collect();
        TelemetryReport { node: Some(node), partitions }
    }

    fn process(&mut self) -> (f64, u64) {
        let (Some(pid), Some(system)) = (self.pid, &mut self.system) else { return (0.0, 0) };
        system.refresh_processes_specifics(
            ProcessesToUpdate::Some(&[pid]),
            true,
            ProcessRefreshKind::nothing().with_cpu().with_memory(),
        );
        // sysinfo gives a process's CPU in percent of one core.
        system.process(pid).map_or((0.0, 0), |p| (f64::from(p.cpu_usage()) / 100.0, p.memory()))
    }
}

fn partition_telemetry(r: &ReplicaTelemetry, interval_s: f64) -> PartitionTelemetry {
    let mut out = PartitionTelemetry {
        partition: r.partition,
        leader: r.leader,
        queue_depth: r.queue_depth as u64,
        log_bytes: r.log_bytes,
        ..PartitionTelemetry::default()
    };
    if let Some(reading) = &r.reading {
        out.events = reading.stored_events;
        out.events_per_s = reading.stored_events as f64 / interval_s;
        out.bytes_per_s = reading.stored_bytes as f64 / interval_s;
        out.cpu_ms_per_event = reading.cpu_ms_per_event();
        out.commit_p50_ms = quantile_ms(&reading.commit_us, 0.5);
        out.commit_p99_ms = quantile_ms(&reading.commit_us, 0.99);
        out.processed_p99_ms = quantile_ms(&reading.processed_us, 0.99);
        out.processed_events = reading.processed_events;
    }
    out
}

fn quantile_ms(h: &Histogram<u64>, q: f64) -> f64 {
    if h.is_empty() { 0.0 } else { h.value_at_quantile(q) as f64 / 1000.0 }
}

/// Keeps a stream open to the controller leader: the backlog first, then
/// live reports. Follows "not leader" answers to the leader.
async fn stream(
    controllers: Vec<String>,
    channels: PeerChannels,
    mut queued: mpsc::Receiver<TelemetryReport>,
    backlog: Arc<std::sync::Mutex<VecDeque<TelemetryReport>>>,
) {
    let mut next = 0usize;
    let mut target: Option<String> = None;
    loop {
        let addr = target.take().unwrap_or_else(|| controllers[next % controllers.len().max(1)].clone());
        next += 1;
        // Reports queued while disconnected are in the backlog too.
        while queued.try_recv().is_ok() {}
        let resend: Vec<TelemetryReport> = backlog.lock().map(|b| b.iter().cloned().collect()).unwrap_or_default();
        let (to_stream, from_queue) = mpsc::channel(STREAM_QUEUE);
        let outcome = match channels.get(&addr) {
            Ok(channel) => {
                let mut client = ControllerServiceClient::new(channel);
                let call = client.report_telemetry(tokio_stream::wrappers::ReceiverStream::new(from_queue));
                let feed = async {
                    for report in resend {
                        if to_stream.send(report).await.is_err() {
                            return;
                        }
                    }
                    while let Some(report) = queued.recv().await {
                        if to_stream.send(report).await.is_err() {
                            return;
                        }
                    }
                };
                tokio::select! {
                    answer = call => answer.err(),
                    () = feed => None,
                }
            }
            Err(err) => Some(tonic::Status::from(err)),
        };
        if queued.is_closed() && queued.is_empty() {
            return;
        }
        if let Some(status) = outcome {
            target = leader_addr(&status);
            tracing::debug!(controller = %addr, error = %status.message(), "telemetry stream ended");
        }
        if target.is_none() {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}
