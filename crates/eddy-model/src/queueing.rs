//! Queueing formulas behind the latency prior: the M/M/c response-time
//! tail (Erlang C), generalised to G/G/c with the Allen-Cunneen correction
//! (which for one server is Kingman's formula).
//!
//! All functions take and return plain numbers and never panic; inputs out
//! of range are clamped, so callers get a finite, non-negative answer.

use serde::{Deserialize, Serialize};

/// Utilisations at or above this are treated as this: the queue is
/// saturated and the answer is the (large, finite) tail at this point.
pub const SATURATION_UTILISATION: f64 = 0.995;

/// A queue of `servers` identical servers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Queue {
    pub servers: u32,
    /// Mean service time of one request on one server.
    pub service_time_ms: f64,
    /// Squared coefficient of variation of inter-arrival times (1 for Poisson).
    pub arrival_scv: f64,
    /// Squared coefficient of variation of service times (1 for
    /// exponential, 0 for constant).
    pub service_scv: f64,
}

impl Queue {
    /// M/M/c: Poisson arrivals, exponential service.
    pub fn mmc(servers: u32, service_time_ms: f64) -> Self {
        Queue { servers, service_time_ms, arrival_scv: 1.0, service_scv: 1.0 }
    }

    /// A node of `cores` (possibly fractional) spending `cpu_ms_per_event`
    /// per event: `max(1, floor(cores))` servers, each slowed so that the
    /// servers together deliver exactly `cores` of CPU.
    pub fn for_cores(cores: f64, cpu_ms_per_event: f64) -> Self {
        let cores = finite_at_least(cores, 1e-3);
        let servers = cores.floor().clamp(1.0, 1024.0);
        let service_time_ms = finite_at_least(cpu_ms_per_event, 1e-6) * servers / cores;
        Queue::mmc(servers as u32, service_time_ms)
    }

    /// The response time (wait + service) that a share `1 - q` of requests
    /// exceed, at utilisation `utilisation` (arrival rate over total
    /// service rate).
    pub fn response_quantile_ms(&self, utilisation: f64, q: f64) -> f64 {
        let rho = clamp_utilisation(utilisation);
        let tail = (1.0 - q.clamp(0.5, 0.999_999)).max(1e-9);
        let c = self.servers.max(1);
        let s = finite_at_least(self.service_time_ms, 1e-9);
        let wait_probability = erlang_c(c, rho);
        // Allen-Cunneen: waiting times scale with the mean of the two
        // variabilities; the wait stays exponential-tailed.
        let variability = ((finite_at_least(self.arrival_scv, 0.0) + finite_at_least(self.service_scv, 0.0)) / 2.0)
            .clamp(0.05, 100.0);
        let wait_rate = f64::from(c) * (1.0 - rho) / (s * variability);
        let constant = deterministic_quantile(s, wait_probability, wait_rate, tail);
        let exponential = exponential_quantile(s, wait_probability, wait_rate, tail);
        // Service time quantiles between constant (scv 0) and exponential
        // (scv 1): interpolate; beyond 1, the exponential one is a floor.
        let weight = self.service_scv.clamp(0.0, 1.0);
        let answer = constant + weight * (exponential - constant);
        if answer.is_finite() { answer.max(0.0) } else { f64::MAX / 4.0 }
    }

    pub fn p99_ms(&self, utilisation: f64) -> f64 {
        self.response_quantile_ms(utilisation, 0.99)
    }
}

/// Erlang C: the probability that an arrival waits, for `servers` servers
/// each busy a share `rho` of the time.
pub fn erlang_c(servers: u32, rho: f64) -> f64 {
    let rho = clamp_utilisation(rho);
    let offered = f64::from(servers.max(1)) * rho;
    // Erlang B by its stable recursion, then C from B.
    let mut b = 1.0;
    for k in 1..=servers.max(1) {
        b = offered * b / (f64::from(k) + offered * b);
    }
    let c = b / (1.0 - rho * (1.0 - b));
    c.clamp(0.0, 1.0)
}

fn clamp_utilisation(utilisation: f64) -> f64 {
    if utilisation.is_nan() { SATURATION_UTILISATION } else { utilisation.clamp(0.0, SATURATION_UTILISATION) }
}

fn finite_at_least(value: f64, floor: f64) -> f64 {
    if value.is_finite() { value.max(floor) } else { floor }
}

/// Constant service `s`: T = s + W, W = 0 w.p. 1-C, else Exp(rate).
fn deterministic_quantile(s: f64, wait_probability: f64, wait_rate: f64, tail: f64) -> f64 {
    if wait_probability <= tail {
        return s;
    }
    s + (wait_probability / tail).ln() / wait_rate
}

/// Exponential service of mean `s`: solves P(T > t) = tail by bisection.
fn exponential_quantile(s: f64, wait_probability: f64, wait_rate: f64, tail: f64) -> f64 {
    let mu = 1.0 / s;
    let survival = |t: f64| {
        let service_only = (-mu * t).exp();
        let gap = mu - wait_rate;
        // P(E1 + E2 > t) for independent exponentials of rates mu and wait_rate.
        let both = if gap.abs() < 1e-9 * mu {
            (1.0 + mu * t) * (-mu * t).exp()
        } else {
            (mu * (-wait_rate * t).exp() - wait_rate * (-mu * t).exp()) / gap
        };
        (1.0 - wait_probability) * service_only + wait_probability * both
    };
    let mut high = s.max(1.0 / wait_rate) * 8.0;
    for _ in 0..200 {
        if survival(high) <= tail {
            break;
        }
        high *= 2.0;
    }
    let mut low = 0.0;
    for _ in 0..100 {
        // Far below any use of the answer; stops some 60 halvings early.
        if high - low <= 1e-9 * high {
            break;
        }
        let mid = 0.5 * (low + high);
        if survival(mid) > tail {
            low = mid;
        } else {
            high = mid;
        }
    }
    high
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * b.abs().max(1e-12)
    }

    #[test]
    fn one_server_matches_the_exact_m_m_1_tail() {
        let queue = Queue::mmc(1, 2.0);
        for rho in [0.1, 0.5, 0.8, 0.95] {
            let exact = 100f64.ln() * 2.0 / (1.0 - rho);
            assert!(close(queue.p99_ms(rho), exact, 1e-6), "rho {rho}: {} vs {exact}", queue.p99_ms(rho));
        }
    }

    #[test]
    fn erlang_c_matches_known_values() {
        // One server: the wait probability is the utilisation.
        assert!(close(erlang_c(1, 0.7), 0.7, 1e-12));
        // Two servers at rho 0.5 (offered load 1): C = 1/3.
        assert!(close(erlang_c(2, 0.5), 1.0 / 3.0, 1e-12));
        // Ten servers at offered load 8: the standard table gives 0.409.
        assert!(close(erlang_c(10, 0.8), 0.409, 0.005));
    }

    #[test]
    fn more_servers_wait_less_at_the_same_utilisation() {
        let one = Queue::mmc(1, 1.0).p99_ms(0.8);
        let four = Queue::mmc(4, 1.0).p99_ms(0.8);
        assert!(four < one, "{four} !< {one}");
    }

    #[test]
    fn constant_service_waits_less_than_exponential() {
        let exponential = Queue::mmc(1, 1.0);
        let constant = Queue { service_scv: 0.0, ..exponential };
        assert!(constant.p99_ms(0.8) < exponential.p99_ms(0.8));
        // Kingman: with constant service the mean wait halves; the tail's
        // log term is the same, so the wait part of the p99 is about half.
        let wait_constant = constant.p99_ms(0.8) - 1.0;
        let kingman_half = (0.8f64 / 0.01).ln() * 1.0 / (1.0 - 0.8) * 0.5;
        assert!(close(wait_constant, kingman_half, 1e-6), "{wait_constant} vs {kingman_half}");
    }

    #[test]
    fn fractional_cores_slow_the_servers() {
        let half = Queue::for_cores(0.5, 1.0);
        assert_eq!(half.servers, 1);
        assert!(close(half.service_time_ms, 2.0, 1e-12));
        let two_and_half = Queue::for_cores(2.5, 1.0);
        assert_eq!(two_and_half.servers, 2);
        assert!(close(two_and_half.service_time_ms, 0.8, 1e-12));
    }

    #[test]
    fn the_tail_grows_with_utilisation_and_stays_finite_when_saturated() {
        let queue = Queue::mmc(2, 1.0);
        let mut last = 0.0;
        for i in 0..=120 {
            let p99 = queue.p99_ms(f64::from(i) / 100.0);
            assert!(p99.is_finite() && p99 >= last, "at {i}%: {p99} after {last}");
            last = p99;
        }
        assert!(queue.p99_ms(f64::NAN).is_finite());
    }
}
