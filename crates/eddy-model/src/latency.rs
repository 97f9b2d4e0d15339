//! The latency model of one node (or one class of identical nodes): p99
//! response time as a function of utilisation.
//!
//! It starts from a queueing prior ([`Queue`]: M/M/c with the Allen-Cunneen
//! correction) and learns the node's own curve from `(utilisation, p99)`
//! samples over a sliding window: ordinary least squares (linfa) on
//! queueing-shaped features, `ln p99 ~ -ln(1 - u) + u + u^2 + ...`, whose
//! first term is exactly the M/M/1 shape and whose polynomial terms bend it
//! into knees. Fitting the logarithm keeps every prediction positive and
//! weighs errors relatively, as an SLO does.
//!
//! The curve is fitted to what the node typically does at each load
//! ([`typical`]): median p99 per band of utilisation, made
//! non-decreasing, which keeps stalls from bending it.
//!
//! The trust gate: one sample in `holdout_every` is held out of the fit.
//! The learned curve replaces the prior only when, on the held-out samples
//! (scored against their median p99 per utilisation bin), its error is
//! within `trust_max_error` and beats the prior's by at least
//! `switch_min_gain` (absolute) and by `switch_min_ratio` of the prior's
//! error; it goes back to the prior as soon as its error exceeds the
//! prior's or `trust_max_error`. Beyond the utilisations it has seen, the
//! learned curve is extended with the prior's shape.

use std::collections::VecDeque;

use linfa::Dataset;
use linfa::traits::Fit;
use linfa_linear::LinearRegression;
use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};

use crate::Quality;
use crate::queueing::{Queue, SATURATION_UTILISATION};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LatencyConfig {
    /// Samples kept for fitting (one a second: ten minutes).
    pub window_samples: usize,
    /// Training samples needed before a curve is fitted.
    pub min_samples: usize,
    /// One sample in this many is held out to score the curves.
    pub holdout_every: u64,
    /// Refit after this many new samples.
    pub refit_every: u64,
    /// Highest power of utilisation among the features.
    pub max_degree: u32,
    pub trust_max_error: f64,
    pub switch_min_gain: f64,
    pub switch_min_ratio: f64,
}

impl Default for LatencyConfig {
    fn default() -> Self {
        LatencyConfig {
            window_samples: 600,
            min_samples: 30,
            holdout_every: 5,
            refit_every: 10,
            max_degree: 4,
            trust_max_error: 0.3,
            switch_min_gain: 0.02,
            switch_min_ratio: 0.1,
        }
    }
}

impl LatencyConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.holdout_every < 2 {
            return Err(format!("holdout_every must be at least 2, got {}", self.holdout_every));
        }
        if self.min_samples < 5 || self.window_samples < self.min_samples {
            return Err("min_samples must be at least 5 and window_samples at least min_samples".into());
        }
        if !(self.trust_max_error > 0.0 && self.switch_min_ratio >= 0.0 && self.switch_min_gain >= 0.0) {
            return Err("trust_max_error must be above 0; switch_min_gain and switch_min_ratio at least 0".into());
        }
        Ok(())
    }
}

/// Which curve answers predictions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Curve {
    Prior,
    Learned,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Sample {
    seq: u64,
    utilisation: f64,
    p99_ms: f64,
}

/// A fitted curve: `ln p99 = intercept + sum(coefficients[i] * feature_i)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LearnedCurve {
    pub intercept: f64,
    pub coefficients: Vec<f64>,
    pub degree: u32,
    pub utilisation_min: f64,
    pub utilisation_max: f64,
    /// The largest p99 among the samples fitted: inside the fitted range
    /// the curve never answers more than twice that, so that a polynomial
    /// bending between clusters of samples cannot run away.
    #[serde(default)]
    pub p99_max_ms: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencyModel {
    config: LatencyConfig,
    prior: Queue,
    window: VecDeque<Sample>,
    seq: u64,
    rejected: u64,
    fit: Option<LearnedCurve>,
    prior_error: Option<f64>,
    learned_error: Option<f64>,
    learned_r2: Option<f64>,
    holdout_count: usize,
    active: Curve,
    /// Changes whenever `predict_p99_ms` may answer differently.
    curve_version: u64,
}

impl LatencyModel {
    pub fn new(config: LatencyConfig, prior: Queue) -> Self {
        LatencyModel {
            config,
            prior,
            window: VecDeque::new(),
            seq: 0,
            rejected: 0,
            fit: None,
            prior_error: None,
            learned_error: None,
            learned_r2: None,
            holdout_count: 0,
            active: Curve::Prior,
            curve_version: 0,
        }
    }

    /// Replaces the prior (the node's capacity or cost per event changed)
    /// and rescores the curves.
    pub fn set_prior(&mut self, prior: Queue) {
        if prior != self.prior {
            self.prior = prior;
            self.curve_version += 1;
            self.refit();
        }
    }

    pub fn prior(&self) -> &Queue {
        &self.prior
    }

    /// Takes a sample; refits every `refit_every` samples. Samples with a
    /// negative or non-finite utilisation or a p99 that is not positive
    /// and finite are rejected.
    pub fn observe(&mut self, utilisation: f64, p99_ms: f64) {
        let valid = utilisation.is_finite() && utilisation >= 0.0 && p99_ms.is_finite() && p99_ms > 0.0;
        if !valid {
            self.rejected += 1;
            return;
        }
        self.seq += 1;
        self.window.push_back(Sample { seq: self.seq, utilisation, p99_ms });
        while self.window.len() > self.config.window_samples {
            self.window.pop_front();
        }
        if self.seq.is_multiple_of(self.config.refit_every.max(1)) {
            self.refit();
        }
    }

    /// The p99 response time at `utilisation` by the active curve; finite
    /// and positive for any input (saturation and NaN are read as
    /// [`SATURATION_UTILISATION`]).
    pub fn predict_p99_ms(&self, utilisation: f64) -> f64 {
        match (self.active, &self.fit) {
            (Curve::Learned, Some(fit)) => self.learned_p99_ms(fit, utilisation),
            _ => self.prior.p99_ms(utilisation),
        }
    }

    pub fn active(&self) -> Curve {
        self.active
    }

    pub fn fit(&self) -> Option<&LearnedCurve> {
        self.fit.as_ref()
    }

    /// Held-out errors of the prior and of the learned curve.
    pub fn errors(&self) -> (Option<f64>, Option<f64>) {
        (self.prior_error, self.learned_error)
    }

    pub fn quality(&self) -> Quality {
        let error = match self.active {
            Curve::Prior => self.prior_error,
            Curve::Learned => self.learned_error,
        };
        let needed = (self.config.min_samples as u64 / self.config.holdout_every.max(1)).max(1) as f64;
        let warm = (self.holdout_count as f64 / needed).min(1.0);
        let confidence = error.map_or(0.0, |e| warm * (1.0 - (e / (2.0 * self.config.trust_max_error)).min(1.0)));
        Quality {
            error_mape: error,
            r2: if self.active == Curve::Learned { self.learned_r2 } else { None },
            samples: self.seq,
            rejected: self.rejected,
            confidence,
            trusted: warm >= 1.0 && error.is_some_and(|e| e <= self.config.trust_max_error),
        }
    }

    /// Fits the learned curve on the training samples, scores both curves
    /// on the held-out ones and applies the trust gate.
    pub fn refit(&mut self) {
        let every = self.config.holdout_every.max(2);
        let (holdout, train): (Vec<Sample>, Vec<Sample>) = self.window.iter().partition(|s| s.seq % every == 0);
        self.holdout_count = holdout.len();
        self.fit = fit_curve(&train, &self.config);
        self.prior_error = mape(&holdout, |u| self.prior.p99_ms(u));
        match &self.fit {
            Some(fit) => {
                self.learned_error = mape(&holdout, |u| self.learned_p99_ms(fit, u));
                self.learned_r2 = r2(&holdout, |u| self.learned_p99_ms(fit, u));
            }
            None => {
                self.learned_error = None;
                self.learned_r2 = None;
            }
        }
        let before = self.active;
        self.active = self.gate();
        if self.active != before || self.active == Curve::Learned {
            self.curve_version += 1;
        }
    }

    /// A number that changes whenever [`Self::predict_p99_ms`] may answer
    /// differently (a new prior, a new learned fit in use, a switch between
    /// them), so that callers can keep a tabulated curve until it does.
    pub fn curve_version(&self) -> u64 {
        self.curve_version
    }

    fn gate(&self) -> Curve {
        let enough = self.holdout_count as u64 * self.config.holdout_every >= self.config.min_samples as u64;
        let (Some(prior), Some(learned), true) = (self.prior_error, self.learned_error, enough) else {
            return Curve::Prior;
        };
        let usable = learned <= self.config.trust_max_error;
        let keep = usable && learned <= prior;
        let gain = prior - learned;
        let switch = usable && gain >= self.config.switch_min_gain && gain >= self.config.switch_min_ratio * prior;
        match self.active {
            Curve::Learned if keep => Curve::Learned,
            Curve::Prior if switch => Curve::Learned,
            _ => Curve::Prior,
        }
    }

    /// The learned curve inside the utilisations it was fitted on; outside,
    /// its value at the nearest edge scaled by the prior's shape.
    fn learned_p99_ms(&self, fit: &LearnedCurve, utilisation: f64) -> f64 {
        let u =
            if utilisation.is_nan() { SATURATION_UTILISATION } else { utilisation.clamp(0.0, SATURATION_UTILISATION) };
        let edge = u.clamp(fit.utilisation_min, fit.utilisation_max);
        let ceiling = if fit.p99_max_ms > 0.0 { 2.0 * fit.p99_max_ms } else { f64::MAX };
        let at_edge = eval(fit, edge).min(ceiling);
        let value = if edge == u { at_edge } else { at_edge * self.prior.p99_ms(u) / self.prior.p99_ms(edge) };
        if value.is_finite() && value > 0.0 { value } else { self.prior.p99_ms(u) }
    }
}

fn features(utilisation: f64, degree: u32) -> impl Iterator<Item = f64> {
    let u = utilisation.clamp(0.0, SATURATION_UTILISATION);
    std::iter::once(-(1.0 - u).ln()).chain((1..=degree).map(move |d| u.powi(d as i32)))
}

fn eval(fit: &LearnedCurve, utilisation: f64) -> f64 {
    let log = fit.intercept + features(utilisation, fit.degree).zip(&fit.coefficients).map(|(x, c)| x * c).sum::<f64>();
    // exp overflows past ~709; no real p99 is near that.
    log.min(700.0).exp()
}

/// Least squares on what the node typically does (see [`typical`]), each
/// band weighing by its samples.
fn fit_curve(train: &[Sample], config: &LatencyConfig) -> Option<LearnedCurve> {
    if train.len() < config.min_samples {
        return None;
    }
    let points: Vec<Sample> = typical(train, true)
        .into_iter()
        .flat_map(|band| {
            let point = Sample { seq: 0, utilisation: band.utilisation, p99_ms: band.p99_ms };
            std::iter::repeat_n(point, band.samples)
        })
        .collect();
    let mut fit = least_squares(&points, config)?;
    // The range and the ceiling are those of what was seen.
    fit.utilisation_min = train.iter().map(|s| s.utilisation).fold(f64::INFINITY, f64::min).min(SATURATION_UTILISATION);
    fit.utilisation_max =
        train.iter().map(|s| s.utilisation).fold(f64::NEG_INFINITY, f64::max).min(SATURATION_UTILISATION);
    fit.p99_max_ms = train.iter().map(|s| s.p99_ms).fold(0.0, f64::max);
    Some(fit)
}

fn least_squares(train: &[Sample], config: &LatencyConfig) -> Option<LearnedCurve> {
    let min = train.iter().map(|s| s.utilisation).fold(f64::INFINITY, f64::min).min(SATURATION_UTILISATION);
    let max = train.iter().map(|s| s.utilisation).fold(f64::NEG_INFINITY, f64::max).min(SATURATION_UTILISATION);
    // A narrow range of utilisation cannot pin down a bend: fewer terms.
    let by_span = ((max - min) / 0.15).floor() as u32;
    let by_count = (train.len() / 5).saturating_sub(2) as u32;
    let degree = config.max_degree.min(by_span).min(by_count);
    let columns = degree as usize + 1;
    let mut x = Array2::<f64>::zeros((train.len(), columns));
    for (row, sample) in train.iter().enumerate() {
        for (col, value) in features(sample.utilisation, degree).enumerate() {
            x[[row, col]] = value;
        }
    }
    let y = Array1::from_iter(train.iter().map(|s| s.p99_ms.ln()));
    let fitted = LinearRegression::new().fit(&Dataset::new(x, y)).ok()?;
    let coefficients = fitted.params().to_vec();
    let intercept = fitted.intercept();
    let finite = intercept.is_finite() && coefficients.iter().all(|c| c.is_finite());
    let p99_max_ms = train.iter().map(|s| s.p99_ms).fold(0.0, f64::max);
    finite.then_some(LearnedCurve {
        intercept,
        coefficients,
        degree,
        utilisation_min: min,
        utilisation_max: max,
        p99_max_ms,
    })
}

/// Width of the utilisation bins the held-out samples are scored in.
const SCORE_BIN_UTILISATION: f64 = 0.05;

fn bin_of(sample: &Sample) -> i64 {
    (sample.utilisation.min(SATURATION_UTILISATION) / SCORE_BIN_UTILISATION).floor() as i64
}

/// A band of utilisation: its median utilisation, the p99 the node
/// typically shows there, and how many samples it holds.
#[derive(Debug, Clone, Copy)]
struct Band {
    utilisation: f64,
    p99_ms: f64,
    samples: usize,
}

/// What the node typically does at each load: the samples in bands of
/// utilisation, each band's median p99, made non-decreasing by pooling
/// adjacent bands (pool adjacent violators; a pool's value is the median
/// of all its samples).
///
/// Medians, because one second's p99 scatters by tens of percent with a
/// long upper tail. Non-decreasing, because a node is not faster when
/// busier: a band that shows a higher p99 than the busier band after it
/// holds stalls (a pause elsewhere on the host lowers the second's
/// utilisation and raises its p99 at once), and left alone a few of them
/// bend the curve and decide which curve answers.
fn typical(samples: &[Sample], monotone: bool) -> Vec<Band> {
    let mut sorted: Vec<Sample> = samples.to_vec();
    sorted.sort_by_key(bin_of);
    // (median utilisation, the band's p99s) per band, in order.
    let mut pools: Vec<(Vec<f64>, Vec<f64>)> = Vec::new();
    for group in sorted.chunk_by(|a, b| bin_of(a) == bin_of(b)) {
        let utilisation = median(group.iter().map(|s| s.utilisation).collect());
        let mut pool = (vec![utilisation; group.len()], group.iter().map(|s| s.p99_ms).collect::<Vec<f64>>());
        while monotone
            && let Some(last) = pools.last()
            && median(last.1.clone()) > median(pool.1.clone())
        {
            let (mut us, mut ps) = pools.pop().unwrap_or_default();
            us.append(&mut pool.0);
            ps.append(&mut pool.1);
            pool = (us, ps);
        }
        pools.push(pool);
    }
    pools
        .into_iter()
        .flat_map(|(us, ps)| {
            let p99_ms = median(ps);
            // Each band of the pool keeps its utilisation and takes the pool's p99.
            us.chunk_by(|a, b| a == b)
                .map(|band| Band { utilisation: band[0], p99_ms, samples: band.len() })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Mean absolute percentage error of a curve against the held-out samples
/// in bands: the prediction at each band's median utilisation against its
/// median p99, weighted by the band's samples. Scoring each sample alone
/// would charge a second's scatter to the curve; the curve is asked to
/// predict what the node typically does at a load. The bands are not
/// pooled here: a node whose p99 does not follow its load must score
/// badly.
fn mape(samples: &[Sample], predict: impl Fn(f64) -> f64) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    let bands = typical(samples, false);
    let kept: usize = bands.iter().map(|b| b.samples).sum();
    let value =
        bands.iter().map(|b| (predict(b.utilisation) - b.p99_ms).abs() / b.p99_ms * b.samples as f64).sum::<f64>()
            / kept.max(1) as f64;
    value.is_finite().then_some(value)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len().is_multiple_of(2) { (values[mid - 1] + values[mid]) / 2.0 } else { values[mid] }
}

fn r2(samples: &[Sample], predict: impl Fn(f64) -> f64) -> Option<f64> {
    if samples.len() < 2 {
        return None;
    }
    let mean = samples.iter().map(|s| s.p99_ms).sum::<f64>() / samples.len() as f64;
    let total: f64 = samples.iter().map(|s| (s.p99_ms - mean).powi(2)).sum();
    let residual: f64 = samples.iter().map(|s| (s.p99_ms - predict(s.utilisation)).powi(2)).sum();
    let value = 1.0 - residual / total;
    (total > 0.0 && value.is_finite()).then_some(value)
}

#[cfg(test)]
#[path = "latency_tests.rs"]
mod tests;
