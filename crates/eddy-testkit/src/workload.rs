//! A workload for fault tests: many keys, each sending numbered events one
//! after another through the producer, and a record of what was
//! acknowledged, so a checker can compare it with what the cluster holds.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eddy_client::events::{EventAck, EventClient, RetryPolicy};
use eddy_client::producer::{Producer, ProducerConfig};
use eddy_proto::v1;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What became of one event.
#[derive(Debug, Clone)]
pub enum Sent {
    Acked(EventAck),
    /// The producer gave up; the event may or may not be stored.
    Unknown(String),
}

/// Every event the workload sent, per key, in sending order.
#[derive(Debug, Default, Clone)]
pub struct History {
    pub keys: BTreeMap<String, Vec<(u64, Sent)>>,
    /// Per partition: when events were acknowledged (since the start).
    pub ack_times: BTreeMap<u32, Vec<Duration>>,
}

impl History {
    pub fn acked(&self) -> usize {
        self.keys.values().flatten().filter(|(_, s)| matches!(s, Sent::Acked(_))).count()
    }

    pub fn unknown(&self) -> usize {
        self.keys.values().flatten().filter(|(_, s)| matches!(s, Sent::Unknown(_))).count()
    }

    /// Per partition, the longest time without an acknowledgement between
    /// `from` and `to` (since the workload's start).
    pub fn longest_gaps(&self, from: Duration, to: Duration) -> BTreeMap<u32, Duration> {
        self.ack_times
            .iter()
            .map(|(p, times)| {
                let mut points: Vec<Duration> = times.iter().copied().filter(|t| *t >= from && *t <= to).collect();
                points.push(from);
                points.push(to);
                points.sort_unstable();
                let gap = points.windows(2).map(|w| w[1] - w[0]).max().unwrap_or_default();
                (*p, gap)
            })
            .collect()
    }
}

pub struct Workload {
    started: Instant,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    history: Arc<Mutex<History>>,
}

/// The payload of event `seq` of `key`: what the checker recognises.
pub fn payload(key: &str, seq: u64) -> String {
    format!("{key}#{seq}")
}

impl Workload {
    /// Starts `keys` senders against the cluster at `endpoints`. Each sends
    /// its next event once the previous one is answered; `pause` between
    /// events bounds the load.
    pub async fn start(endpoints: &[String], keys: usize, pause: Duration) -> anyhow::Result<Self> {
        let retry = RetryPolicy { deadline: Duration::from_secs(20), ..RetryPolicy::default() };
        let client = Arc::new(EventClient::connect(endpoints, Duration::from_secs(2), retry).await?);
        let producer = Arc::new(Producer::new(client, ProducerConfig::default()));
        let (stop, stopped) = watch::channel(false);
        let history = Arc::new(Mutex::new(History::default()));
        let started = Instant::now();
        let tasks = (0..keys)
            .map(|k| {
                let key = format!("key-{k:03}");
                let producer = producer.clone();
                let history = history.clone();
                let stopped = stopped.clone();
                tokio::spawn(async move {
                    let mut seq = 0u64;
                    while !*stopped.borrow() {
                        let event = v1::Event {
                            key: key.clone().into_bytes().into(),
                            r#type: "test".into(),
                            payload: payload(&key, seq).into_bytes().into(),
                            attributes: Default::default(),
                        };
                        let sent = match producer.send(event).await {
                            Ok(ack) => Sent::Acked(ack),
                            Err(err) => Sent::Unknown(err.to_string()),
                        };
                        if let Ok(mut h) = history.lock() {
                            if let Sent::Acked(ack) = &sent {
                                h.ack_times.entry(ack.partition).or_default().push(started.elapsed());
                            }
                            h.keys.entry(key.clone()).or_default().push((seq, sent));
                        }
                        seq += 1;
                        tokio::time::sleep(pause).await;
                    }
                })
            })
            .collect();
        Ok(Workload { started, stop, tasks, history })
    }

    /// Time since the workload started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Acknowledged events so far.
    pub fn acked(&self) -> usize {
        self.history.lock().map_or(0, |h| h.acked())
    }

    /// Stops sending, waits for the events in flight, returns the history.
    pub async fn stop(self) -> History {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        self.history.lock().map(|h| h.clone()).unwrap_or_default()
    }
}
