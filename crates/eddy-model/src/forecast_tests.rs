use proptest::prelude::*;

use super::*;

const SECOND_MS: u64 = 1000;

/// Feeds `values` one a second from t = 1 s; returns the time of the last.
fn feed(model: &mut Forecaster, start_ms: u64, values: impl IntoIterator<Item = f64>) -> u64 {
    let mut at = start_ms;
    for v in values {
        at += SECOND_MS;
        model.observe(at, v);
    }
    at
}

#[test]
fn a_constant_series_is_forecast_exactly_and_trusted() {
    let mut model = Forecaster::new(ForecastConfig::default());
    let last = feed(&mut model, 0, std::iter::repeat_n(250.0, 60));
    assert!((model.forecast(last + 120_000) - 250.0).abs() < 1e-9);
    let quality = model.quality();
    assert_eq!(quality.error_mape, Some(0.0));
    assert!(quality.trusted);
    assert!(quality.confidence > 0.99);
}

/// Stated in the README: after a step the one-step forecast is within 10%
/// of the new level after at most 8 samples (one a second, default
/// config). The trend the step leaves behind makes the forecast a minute
/// ahead overshoot by at most 30% of the step, and by under 10% of the new
/// level four minutes after the step.
#[test]
fn a_step_change_is_followed_within_eight_samples() {
    let mut model = Forecaster::new(ForecastConfig::default());
    let mut at = feed(&mut model, 0, std::iter::repeat_n(100.0, 120));
    let mut followed_after = None;
    let mut highest_minute_ahead = 0.0f64;
    for i in 1..=240 {
        at += SECOND_MS;
        model.observe(at, 200.0);
        if followed_after.is_none() && (model.forecast(at + SECOND_MS) - 200.0).abs() <= 20.0 {
            followed_after = Some(i);
        }
        highest_minute_ahead = highest_minute_ahead.max(model.forecast(at + 60 * SECOND_MS));
    }
    let after = followed_after.unwrap_or(u64::MAX);
    assert!(after <= 8, "followed the step only after {after} samples");
    assert!(highest_minute_ahead <= 230.0, "overshoot to {highest_minute_ahead}");
    let ahead = model.forecast(at + 60 * SECOND_MS);
    assert!((ahead - 200.0).abs() <= 20.0, "a minute ahead, four minutes after the step: {ahead}");
}

#[test]
fn a_linear_ramp_is_extrapolated_by_the_trend() {
    let mut model = Forecaster::new(ForecastConfig { trend_damping_per_s: 1.0, ..ForecastConfig::default() });
    let last = feed(&mut model, 0, (0..600).map(|i| 100.0 + f64::from(i)));
    // 699 at the last sample, one more per second.
    let predicted = model.forecast(last + 60 * SECOND_MS);
    assert!((predicted - 759.0).abs() / 759.0 < 0.02, "predicted {predicted}");
}

/// MAPE of the forecast `horizon_minutes` ahead over the last of `days`
/// days of a daily cycle sampled once a minute.
fn daily_sine_mape(config: ForecastConfig, days: u64, horizon_minutes: u64) -> f64 {
    let minute_ms = 60_000u64;
    let day_minutes = 1440u64;
    let rate = |minute: u64| {
        let phase = (minute % day_minutes) as f64 / day_minutes as f64 * std::f64::consts::TAU;
        1000.0 + 600.0 * phase.sin()
    };
    let mut model = Forecaster::new(config);
    let mut forecasts = std::collections::BTreeMap::<u64, f64>::new();
    let (mut error, mut count) = (0.0, 0u32);
    for minute in 0..days * day_minutes {
        let at = minute * minute_ms;
        if let Some(predicted) = forecasts.remove(&minute)
            && minute >= (days - 1) * day_minutes
        {
            let actual = rate(minute);
            error += (predicted - actual).abs() / actual;
            count += 1;
        }
        model.observe(at, rate(minute));
        forecasts.insert(minute + horizon_minutes, model.forecast(at + horizon_minutes * minute_ms));
    }
    error / f64::from(count)
}

/// After two days of a daily cycle (one sample a minute) the model
/// forecasts an hour ahead within 10% MAPE over the third day; without the
/// season it cannot.
#[test]
fn a_daily_sine_is_forecast_within_ten_percent_mape() {
    let seasonal = ForecastConfig { season: Some(SeasonConfig::daily()), ..ForecastConfig::default() };
    let with_season = daily_sine_mape(seasonal, 3, 60);
    assert!(with_season < 0.10, "MAPE with the season: {with_season}");
    let without = daily_sine_mape(ForecastConfig::default(), 3, 60);
    assert!(without > with_season, "MAPE without the season: {without}, with: {with_season}");
    // Five minutes ahead both follow the cycle.
    let seasonal = ForecastConfig { season: Some(SeasonConfig::daily()), ..ForecastConfig::default() };
    assert!(daily_sine_mape(seasonal, 3, 5) < 0.10);
}

#[test]
fn the_error_and_trust_follow_a_noisy_series() {
    let mut model = Forecaster::new(ForecastConfig::default());
    // Alternating 50 and 150: the forecast cannot follow; error ~50%.
    feed(&mut model, 0, (0..200).map(|i| if i % 2 == 0 { 50.0 } else { 150.0 }));
    let quality = model.quality();
    assert!(quality.error_mape.is_some_and(|e| e > 0.25), "{quality:?}");
    assert!(!quality.trusted);
}

#[test]
fn malformed_samples_are_rejected_and_change_nothing() {
    let mut model = Forecaster::new(ForecastConfig::default());
    let last = feed(&mut model, 0, [10.0, 10.0, 10.0]);
    let before = model.clone();
    model.observe(last + SECOND_MS, f64::NAN);
    model.observe(last + SECOND_MS, -1.0);
    model.observe(last + SECOND_MS, f64::INFINITY);
    model.observe(last, 20.0);
    assert_eq!(model.quality().rejected, 4);
    assert_eq!(model.forecast(last + 5000), before.forecast(last + 5000));
}

#[test]
fn nothing_learned_forecasts_zero_and_is_not_trusted() {
    let model = Forecaster::new(ForecastConfig::default());
    assert_eq!(model.forecast(1_000_000), 0.0);
    assert!(!model.quality().trusted);
    assert_eq!(model.quality().confidence, 0.0);
}

#[test]
fn validate_names_the_bad_setting() {
    let bad = ForecastConfig { trend_weight: 1.5, ..ForecastConfig::default() };
    assert!(bad.validate().is_err_and(|e| e.contains("trend_weight")));
    assert!(ForecastConfig::default().validate().is_ok());
}

fn any_value() -> impl Strategy<Value = f64> {
    prop_oneof![
        0.0..1e6f64,
        Just(0.0),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(-5.0),
        Just(1e300),
        Just(f64::MAX),
        any::<f64>(),
    ]
}

proptest! {
    #[test]
    fn forecasts_are_finite_and_never_negative(
        steps in prop::collection::vec((0u64..120_000, any_value()), 1..200),
        horizon_ms in 0u64..10_000_000,
        seasonal in any::<bool>(),
    ) {
        let config = ForecastConfig {
            season: seasonal.then_some(SeasonConfig { period_ms: 600_000, buckets: 10, weight: 0.2 }),
            ..ForecastConfig::default()
        };
        let mut model = Forecaster::new(config);
        let mut at = 0u64;
        for (dt, value) in steps {
            at += dt;
            model.observe(at, value);
            let predicted = model.forecast(at + horizon_ms);
            prop_assert!(predicted.is_finite() && predicted >= 0.0, "forecast {predicted}");
            let quality = model.quality();
            prop_assert!(quality.confidence.is_finite() && (0.0..=1.0).contains(&quality.confidence));
            prop_assert!(quality.error_mape.is_none_or(|e| e.is_finite() && e >= 0.0));
        }
    }
}
