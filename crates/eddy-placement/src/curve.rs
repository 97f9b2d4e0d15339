//! A node's p99 response time against utilisation, tabulated.
//!
//! The planner evaluates curves millions of times per plan; the latency
//! model (an exponential of a regression, or the Erlang C sum of the
//! prior) is too slow for that, so the planner works on a table sampled
//! from it and interpolates. Past the table's last point the curve keeps
//! rising with the slope of its last segment, so overload always costs more.

use serde::{Deserialize, Serialize};

/// Points from utilisation 0 to [`LAST_UTILISATION`].
const POINTS: usize = 100;
/// The last tabulated utilisation; the queueing curves are finite there.
pub const LAST_UTILISATION: f64 = 0.99;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencyCurve {
    /// p99 in ms at utilisation `i * LAST_UTILISATION / (len - 1)`.
    p99_ms: Vec<f64>,
}

impl LatencyCurve {
    /// Tabulates `p99_ms_at`; non-finite or negative answers are replaced
    /// by the previous point, and the table is made non-decreasing (a
    /// busier node is never predicted faster).
    pub fn from_fn(p99_ms_at: impl Fn(f64) -> f64) -> Self {
        let mut table = Vec::with_capacity(POINTS);
        let mut last = 0.0f64;
        for i in 0..POINTS {
            let u = i as f64 * LAST_UTILISATION / (POINTS - 1) as f64;
            let value = p99_ms_at(u);
            let value = if value.is_finite() && value >= 0.0 { value.min(1e9) } else { last };
            last = last.max(value);
            table.push(last);
        }
        LatencyCurve { p99_ms: table }
    }

    /// The same curve with every p99 times `factor` (positive and finite;
    /// otherwise the curve as it is).
    pub fn scaled(&self, factor: f64) -> LatencyCurve {
        if !(factor.is_finite() && factor > 0.0) {
            return self.clone();
        }
        LatencyCurve { p99_ms: self.p99_ms.iter().map(|v| (v * factor).min(1e9)).collect() }
    }

    /// The p99 at `utilisation` (any finite or infinite value; NaN counts as
    /// saturation).
    pub fn p99_ms(&self, utilisation: f64) -> f64 {
        let n = self.p99_ms.len();
        if n == 0 {
            return 0.0;
        }
        let u = if utilisation.is_nan() { LAST_UTILISATION } else { utilisation.max(0.0) };
        let step = LAST_UTILISATION / (n - 1) as f64;
        let position = u / step;
        if position >= (n - 1) as f64 {
            let slope = if n > 1 { (self.p99_ms[n - 1] - self.p99_ms[n - 2]).max(0.0) } else { 0.0 };
            let beyond = (position - (n - 1) as f64).min(1e6);
            return self.p99_ms[n - 1] + slope * beyond;
        }
        let i = position.floor() as usize;
        let t = position - i as f64;
        self.p99_ms[i] + t * (self.p99_ms[i + 1] - self.p99_ms[i])
    }

    /// The highest utilisation at which the p99 is at most `p99_ms` (0 when
    /// even an idle node misses it).
    pub fn utilisation_at(&self, p99_ms: f64) -> f64 {
        let n = self.p99_ms.len();
        let step = LAST_UTILISATION / (n.max(2) - 1) as f64;
        match self.p99_ms.iter().rposition(|v| *v <= p99_ms) {
            None => 0.0,
            Some(i) if i + 1 >= n => LAST_UTILISATION,
            Some(i) => {
                let (a, b) = (self.p99_ms[i], self.p99_ms[i + 1]);
                let t = if b > a { (p99_ms - a) / (b - a) } else { 0.0 };
                (i as f64 + t.clamp(0.0, 1.0)) * step
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_function_and_rises_past_its_end() {
        let curve = LatencyCurve::from_fn(|u| 10.0 / (1.0 - u));
        for u in [0.0, 0.3, 0.5, 0.8] {
            let truth = 10.0 / (1.0 - u);
            assert!((curve.p99_ms(u) - truth).abs() / truth < 0.02, "at {u}");
        }
        assert!(curve.p99_ms(1.5) > curve.p99_ms(0.99));
        assert!(curve.p99_ms(f64::NAN).is_finite());
        assert!(curve.p99_ms(f64::INFINITY).is_finite());
    }

    #[test]
    fn bad_points_are_smoothed_and_the_inverse_matches() {
        let curve = LatencyCurve::from_fn(|u| if u > 0.5 && u < 0.6 { f64::NAN } else { 5.0 + 10.0 * u });
        assert!(curve.p99_ms(0.55).is_finite());
        let u = curve.utilisation_at(12.0);
        assert!((u - 0.7).abs() < 0.02, "{u}");
        assert_eq!(curve.utilisation_at(1.0), 0.0);
    }
}
