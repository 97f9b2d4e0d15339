//! Processor CPU: a pool of threads sized by the node's configured cores,
//! and the thread CPU clock that measures what each job really costs.
//!
//! The pool is how a node honours its capacity: processor work runs on
//! `ceil(cores)` threads, and a CPU-time budget refilled at `cores` CPU
//! seconds per second makes a thread pause after a job until the budget
//! has paid for it. So a node with 0.5 cores saturates at half a core even
//! on a host with more, just as a host of that size would, and several
//! nodes sharing one host each keep to their share.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::time::{ClockId, clock_gettime};
use tokio::sync::{mpsc, oneshot};

/// CPU time the calling thread has used so far; zero where the clock is
/// unavailable (measurements then read as free, never as negative).
pub fn thread_cpu_time() -> Duration {
    clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID).map_or(Duration::ZERO, Duration::from)
}

type Job = Box<dyn FnOnce() + Send>;

/// The pool stopped (the node is shutting down).
#[derive(Debug, thiserror::Error)]
#[error("the processor pool has stopped")]
pub struct PoolStopped;

/// CPU seconds the pool may spend, refilled at `cores` per second.
struct Budget {
    cores: f64,
    /// Most credit kept while idle: a short burst above the rate is fine.
    burst: Duration,
    state: Mutex<(f64, Instant)>,
}

impl Budget {
    /// Takes `used` CPU from the budget; answers how long to pause so that
    /// the pool stays within its cores.
    fn charge(&self, used: Duration) -> Duration {
        let Ok(mut state) = self.state.lock() else { return Duration::ZERO };
        let (credit, last) = &mut *state;
        let now = Instant::now();
        *credit = (*credit + now.duration_since(*last).as_secs_f64() * self.cores).min(self.burst.as_secs_f64());
        *last = now;
        *credit -= used.as_secs_f64();
        if *credit >= 0.0 { Duration::ZERO } else { Duration::from_secs_f64(-*credit / self.cores) }
    }
}

/// A pool of processor threads honouring a number of cores.
pub struct CpuPool {
    jobs: mpsc::Sender<Job>,
    cores: f64,
    threads: Vec<JoinHandle<()>>,
}

impl CpuPool {
    pub fn new(cores: f64) -> Self {
        let cores = if cores.is_finite() && cores > 0.0 { cores } else { 1.0 };
        let count = (cores.ceil() as usize).clamp(1, 256);
        let (jobs, receiver) = mpsc::channel::<Job>(count * 4);
        let receiver = Arc::new(Mutex::new(receiver));
        let budget =
            Arc::new(Budget { cores, burst: Duration::from_millis(50), state: Mutex::new((0.0, Instant::now())) });
        let threads = (0..count)
            .filter_map(|i| {
                let (receiver, budget) = (receiver.clone(), budget.clone());
                std::thread::Builder::new().name(format!("eddy-cpu-{i}")).spawn(move || work(&receiver, &budget)).ok()
            })
            .collect();
        CpuPool { jobs, cores, threads }
    }

    pub fn cores(&self) -> f64 {
        self.cores
    }

    /// Runs `job` on a pool thread; answers its result and the CPU time it
    /// took. Waits while the pool's queue is full.
    pub async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<(T, Duration), PoolStopped> {
        let (answer, result) = oneshot::channel();
        let wrapped: Job = Box::new(move || {
            let started = thread_cpu_time();
            let value = job();
            let _ = answer.send((value, thread_cpu_time().saturating_sub(started)));
        });
        self.jobs.send(wrapped).await.map_err(|_| PoolStopped)?;
        result.await.map_err(|_| PoolStopped)
    }
}

impl Drop for CpuPool {
    fn drop(&mut self) {
        // Threads end when the channel closes; they are not joined here so
        // that dropping the pool never blocks the runtime.
        self.threads.clear();
    }
}

fn work(receiver: &Mutex<mpsc::Receiver<Job>>, budget: &Budget) {
    loop {
        let job = match receiver.lock() {
            Ok(mut receiver) => receiver.blocking_recv(),
            Err(_) => None,
        };
        let Some(job) = job else { return };
        let started = thread_cpu_time();
        job();
        let pause = budget.charge(thread_cpu_time().saturating_sub(started));
        if !pause.is_zero() {
            std::thread::sleep(pause);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Spends `amount` of this thread's CPU (bounded in wall time so that a
    /// starved thread fails a test instead of hanging it).
    fn burn(amount: Duration) {
        let start = thread_cpu_time();
        let wall = Instant::now();
        let mut x = 1u64;
        while thread_cpu_time() - start < amount && wall.elapsed() < Duration::from_secs(30) {
            for _ in 0..10_000 {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
        }
    }

    #[test]
    fn busy_work_shows_up_and_sleeping_does_not() {
        let start = thread_cpu_time();
        burn(Duration::from_millis(5));
        let busy = thread_cpu_time() - start;
        assert!(busy >= Duration::from_millis(5), "busy {busy:?}");
        let before_sleep = thread_cpu_time();
        std::thread::sleep(Duration::from_millis(30));
        assert!(thread_cpu_time() - before_sleep < Duration::from_millis(10));
    }

    #[tokio::test]
    async fn half_a_core_takes_twice_the_cpu_time_in_wall_time() -> Result<(), PoolStopped> {
        let pool = CpuPool::new(0.5);
        let started = Instant::now();
        let mut spent = Duration::ZERO;
        for _ in 0..20 {
            let ((), cpu) = pool.run(|| burn(Duration::from_millis(10))).await?;
            spent += cpu;
        }
        let wall = started.elapsed();
        assert!(spent >= Duration::from_millis(200), "spent {spent:?}");
        // The budget starts with no credit and keeps at most 50 ms, so the
        // 200 ms of CPU cannot take less than (200 - 50) / 0.5 ms.
        assert!(wall >= Duration::from_millis(300), "200 ms of CPU on half a core took only {wall:?}");
        Ok(())
    }

    #[tokio::test]
    async fn jobs_run_on_as_many_threads_as_whole_cores() {
        let pool = Arc::new(CpuPool::new(2.0));
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let jobs: Vec<_> = (0..12)
            .map(|_| {
                let (pool, running, most) = (pool.clone(), running.clone(), most.clone());
                tokio::spawn(async move {
                    pool.run(move || {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        // Waiting, not computing: the budget does not slow it.
                        std::thread::sleep(Duration::from_millis(40));
                        running.fetch_sub(1, Ordering::SeqCst);
                    })
                    .await
                    .is_ok()
                })
            })
            .collect();
        for job in jobs {
            assert!(job.await.unwrap_or(false));
        }
        assert_eq!(most.load(Ordering::SeqCst), 2);
    }
}
