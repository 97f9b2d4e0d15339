//! Response times of a run as a weighted histogram: the engines add each
//! node's latency distribution for each step, weighted by the events it
//! served, and read percentiles, SLO attainment and the share answered in
//! time from the whole. Log-spaced buckets, 2.3% wide, from 1 µs to about
//! 28 hours.

/// Buckets per factor of ten.
const PER_DECADE: f64 = 100.0;
const LOWEST_MS: f64 = 1e-3;
const DECADES: usize = 8;

#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    mass: Vec<f64>,
    total: f64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram { mass: vec![0.0; DECADES * PER_DECADE as usize + 1], total: 0.0 }
    }
}

fn bucket_of(ms: f64) -> usize {
    if ms.is_nan() || ms <= LOWEST_MS {
        return 0;
    }
    ((ms / LOWEST_MS).log10() * PER_DECADE).floor().min((DECADES as f64) * PER_DECADE) as usize
}

/// The middle of a bucket, in ms (geometric).
fn value_of(bucket: usize) -> f64 {
    LOWEST_MS * 10f64.powf((bucket as f64 + 0.5) / PER_DECADE)
}

/// Quantile points and their masses: 1% slices up to 0.98, then slices
/// ten times thinner every eight points, down to a millionth, so that
/// p99 and p999 come from many points rather than one.
pub fn quantile_grid() -> Vec<(f64, f64)> {
    let mut bounds: Vec<f64> = (0..=98).map(|i| f64::from(i) / 100.0).collect();
    bounds.extend((1..=32).map(|k| 1.0 - 0.02 * 10f64.powf(-f64::from(k) / 8.0)));
    bounds.push(1.0);
    bounds.windows(2).map(|w| ((w[0] + w[1]) / 2.0, w[1] - w[0])).collect()
}

impl Histogram {
    /// Adds `weight` events with response time `ms`.
    pub fn add(&mut self, ms: f64, weight: f64) {
        if weight > 0.0 && weight.is_finite() {
            self.mass[bucket_of(ms)] += weight;
            self.total += weight;
        }
    }

    #[cfg(test)]
    /// Adds `events` whose response time has the quantile function
    /// `quantile_ms`, sampled on [`quantile_grid`].
    pub fn add_distribution(&mut self, events: f64, grid: &[(f64, f64)], quantile_ms: impl Fn(f64) -> f64) {
        for (q, mass) in grid {
            self.add(quantile_ms(*q), events * mass);
        }
    }

    pub fn total(&self) -> f64 {
        self.total
    }

    /// The response time a share `q` of the events is within; 0 when empty.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.total <= 0.0 {
            return 0.0;
        }
        let target = q.clamp(0.0, 1.0) * self.total;
        let mut seen = 0.0;
        for (bucket, mass) in self.mass.iter().enumerate() {
            seen += mass;
            if seen >= target && *mass > 0.0 {
                return value_of(bucket);
            }
        }
        self.mass.iter().rposition(|m| *m > 0.0).map_or(0.0, value_of)
    }

    /// Share of the events answered within `ms`.
    pub fn share_within(&self, ms: f64) -> f64 {
        if self.total <= 0.0 {
            return 1.0;
        }
        let last = bucket_of(ms);
        let within: f64 = self.mass.iter().take(last + 1).sum();
        (within / self.total).clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_of_an_exponential_come_back_within_the_bucket_width() {
        let mut h = Histogram::default();
        let mean_ms = 10.0;
        h.add_distribution(1_000.0, &quantile_grid(), |q| -mean_ms * (1.0 - q).ln());
        for q in [0.5f64, 0.9, 0.99, 0.999] {
            let exact = -mean_ms * (1.0 - q).ln();
            let got = h.quantile_ms(q);
            assert!((got / exact - 1.0).abs() < 0.04, "q {q}: {got} against {exact}");
        }
        assert!((h.total() - 1_000.0).abs() < 1e-6);
        assert!((h.share_within(-mean_ms * 0.01f64.ln()) - 0.99).abs() < 0.01);
    }

    #[test]
    fn the_grid_covers_every_quantile_once() {
        let grid = quantile_grid();
        let mass: f64 = grid.iter().map(|(_, m)| m).sum();
        assert!((mass - 1.0).abs() < 1e-12);
        assert!(grid.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(grid.iter().filter(|(q, _)| *q > 0.999).count() >= 8);
    }
}
