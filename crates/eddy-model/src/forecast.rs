//! An online forecaster for one series (a partition's events/s, or its CPU
//! time per event): Holt's level and damped trend, with an optional
//! additive season (a daily cycle, say) kept in time buckets.
//!
//! Samples carry their own time (milliseconds on any fixed origin); nothing
//! here reads a clock. Each sample first scores the forecast made before
//! it (the one-step-ahead error the model reports), then updates the state.

use serde::{Deserialize, Serialize};

use crate::Quality;

/// Smoothing settings; the defaults suit one sample a second.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ForecastConfig {
    /// Weight of a new sample in the level (0..1).
    pub level_weight: f64,
    /// Weight of a new level step in the trend (0..1).
    pub trend_weight: f64,
    /// The trend's damping per second of horizon (0..1): a forecast far
    /// ahead leans less on the current trend.
    pub trend_damping_per_s: f64,
    /// Samples before the model may be trusted.
    pub warmup_samples: u64,
    /// Error (weighted MAPE) above which the model is not trusted.
    pub trust_max_error: f64,
    /// Weight of new samples in the reported error.
    pub error_weight: f64,
    pub season: Option<SeasonConfig>,
}

/// A repeating pattern of `period_ms`, learned per bucket of the period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeasonConfig {
    pub period_ms: u64,
    pub buckets: u32,
    /// Weight of a new sample in its bucket's seasonal offset (0..1).
    pub weight: f64,
}

impl SeasonConfig {
    /// A daily cycle in 5-minute buckets.
    pub fn daily() -> Self {
        SeasonConfig { period_ms: 86_400_000, buckets: 288, weight: 0.1 }
    }
}

impl Default for ForecastConfig {
    fn default() -> Self {
        ForecastConfig {
            level_weight: 0.3,
            trend_weight: 0.005,
            trend_damping_per_s: 0.999,
            warmup_samples: 10,
            trust_max_error: 0.25,
            error_weight: 0.05,
            season: None,
        }
    }
}

impl ForecastConfig {
    /// Names the first setting out of range.
    pub fn validate(&self) -> Result<(), String> {
        let unit = |name: &str, v: f64| {
            if (0.0..=1.0).contains(&v) { Ok(()) } else { Err(format!("{name} must be within 0..=1, got {v}")) }
        };
        unit("level_weight", self.level_weight)?;
        unit("trend_weight", self.trend_weight)?;
        unit("trend_damping_per_s", self.trend_damping_per_s)?;
        unit("error_weight", self.error_weight)?;
        if !(self.trust_max_error.is_finite() && self.trust_max_error > 0.0) {
            return Err(format!("trust_max_error must be above 0, got {}", self.trust_max_error));
        }
        if let Some(season) = &self.season {
            unit("season.weight", season.weight)?;
            if season.buckets == 0 || season.period_ms < u64::from(season.buckets) {
                return Err("season.buckets must be at least 1 and at most period_ms".into());
            }
        }
        Ok(())
    }
}

/// The forecaster's state; cheap to clone and serialisable, so a new
/// controller leader can take it over.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Forecaster {
    config: ForecastConfig,
    level: f64,
    /// Change of the level per second.
    trend_per_s: f64,
    season: Vec<f64>,
    /// A slow average over about one season period: seasonal offsets are
    /// learned against it, because the fast level follows the cycle itself.
    baseline: f64,
    last_ms: Option<u64>,
    samples: u64,
    rejected: u64,
    /// Weighted absolute error and weighted magnitude: their ratio is the
    /// volume-weighted MAPE, which stays defined when the series is zero.
    abs_error: f64,
    abs_value: f64,
}

impl Forecaster {
    pub fn new(config: ForecastConfig) -> Self {
        let buckets = config.season.as_ref().map_or(0, |s| s.buckets as usize);
        Forecaster {
            config,
            level: 0.0,
            trend_per_s: 0.0,
            season: vec![0.0; buckets],
            baseline: 0.0,
            last_ms: None,
            samples: 0,
            rejected: 0,
            abs_error: 0.0,
            abs_value: 0.0,
        }
    }

    /// Takes a sample. Negative or non-finite values, and samples not
    /// later than the previous one, are counted as rejected and ignored.
    pub fn observe(&mut self, at_ms: u64, value: f64) {
        let in_order = self.last_ms.is_none_or(|last| at_ms > last);
        if !(value.is_finite() && value >= 0.0 && in_order) {
            self.rejected += 1;
            return;
        }
        let bucket = self.bucket(at_ms);
        let seasonal = bucket.map_or(0.0, |b| self.season[b]);
        let Some(last_ms) = self.last_ms else {
            self.level = value;
            self.baseline = value;
            self.last_ms = Some(at_ms);
            self.samples = 1;
            return;
        };
        let dt_s = (at_ms - last_ms) as f64 / 1000.0;
        let predicted = (self.level + self.trend_per_s * dt_s + seasonal).max(0.0);
        self.score(predicted, value);

        let previous_level = self.level;
        let alpha = self.config.level_weight;
        self.level = alpha * (value - seasonal) + (1.0 - alpha) * (previous_level + self.trend_per_s * dt_s);
        let beta = self.config.trend_weight;
        self.trend_per_s = beta * (self.level - previous_level) / dt_s + (1.0 - beta) * self.trend_per_s;
        if let (Some(b), Some(season)) = (bucket, &self.config.season) {
            let follow = ((at_ms - last_ms) as f64 / season.period_ms.max(1) as f64).min(1.0);
            self.baseline += follow * (value - self.baseline);
            self.season[b] = season.weight * (value - self.baseline) + (1.0 - season.weight) * self.season[b];
        }
        self.last_ms = Some(at_ms);
        self.samples += 1;
        self.sanitise();
    }

    /// The forecast for time `at_ms` (at or after the last sample); never
    /// negative, never NaN. Zero before the first sample.
    pub fn forecast(&self, at_ms: u64) -> f64 {
        let Some(last_ms) = self.last_ms else { return 0.0 };
        let horizon_s = at_ms.saturating_sub(last_ms) as f64 / 1000.0;
        let phi = self.config.trend_damping_per_s;
        // Sum of phi^i over the horizon, continuous in the horizon.
        let damped_s = if phi >= 1.0 { horizon_s } else { phi * (1.0 - phi.powf(horizon_s)) / (1.0 - phi) };
        let seasonal = self.bucket(at_ms).map_or(0.0, |b| self.season[b]);
        let value = self.level + self.trend_per_s * damped_s + seasonal;
        if value.is_finite() { value.max(0.0) } else { 0.0 }
    }

    /// The smoothed level now (seasonal offset included).
    pub fn current(&self) -> f64 {
        self.last_ms.map_or(0.0, |last| self.forecast(last))
    }

    pub fn trend_per_s(&self) -> f64 {
        self.trend_per_s
    }

    pub fn samples(&self) -> u64 {
        self.samples
    }

    pub fn quality(&self) -> Quality {
        let scored = self.samples.saturating_sub(1);
        // Capped so that a series near zero after huge values stays finite.
        let error =
            (scored > 0).then(|| if self.abs_value > 0.0 { (self.abs_error / self.abs_value).min(1e9) } else { 0.0 });
        let warm = (scored as f64 / self.config.warmup_samples.max(1) as f64).min(1.0);
        let confidence = error.map_or(0.0, |e| warm * (1.0 - (e / (2.0 * self.config.trust_max_error)).min(1.0)));
        let trusted = scored >= self.config.warmup_samples && error.is_some_and(|e| e <= self.config.trust_max_error);
        Quality { error_mape: error, r2: None, samples: self.samples, rejected: self.rejected, confidence, trusted }
    }

    fn score(&mut self, predicted: f64, actual: f64) {
        let w = if self.samples <= 1 { 1.0 } else { self.config.error_weight };
        self.abs_error = w * (predicted - actual).abs() + (1.0 - w) * self.abs_error;
        self.abs_value = w * actual.abs() + (1.0 - w) * self.abs_value;
    }

    fn bucket(&self, at_ms: u64) -> Option<usize> {
        let season = self.config.season.as_ref()?;
        let width = (season.period_ms / u64::from(season.buckets.max(1))).max(1);
        let index = ((at_ms % season.period_ms.max(1)) / width) as usize;
        Some(index.min(self.season.len().saturating_sub(1)))
    }

    /// Keeps the state finite whatever the inputs were (huge values can
    /// overflow the trend).
    fn sanitise(&mut self) {
        if !self.level.is_finite() {
            self.level = 0.0;
        }
        if !self.trend_per_s.is_finite() {
            self.trend_per_s = 0.0;
        }
        if !self.baseline.is_finite() {
            self.baseline = self.level;
        }
        for s in &mut self.season {
            if !s.is_finite() {
                *s = 0.0;
            }
        }
        if !(self.abs_error.is_finite() && self.abs_value.is_finite()) {
            self.abs_error = 0.0;
            self.abs_value = 0.0;
        }
    }
}

#[cfg(test)]
#[path = "forecast_tests.rs"]
mod tests;
