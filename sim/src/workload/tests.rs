use super::*;
use crate::scenario::RotatingHotSet;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

fn workload(zipf: f64, hot_key_share: f64, rotating: Option<RotatingHotSet>) -> Workload {
    Workload {
        rate: Some(RateCurve::Constant { events_per_s: 100.0 }),
        keys: 2_000,
        zipf,
        hot_key_share,
        rotating_hot_set: rotating,
        costs: vec![cost(1.0, 1.0, CostDistribution::Exponential)],
        trace: None,
        replay: None,
    }
}

fn cost(share: f64, cpu_ms: f64, distribution: CostDistribution) -> EventCost {
    EventCost { event_type: "t".into(), share, cpu_ms, distribution }
}

#[test]
fn rate_curves_follow_their_shapes() {
    let daily = RateCurve::Daily { mean_per_s: 100.0, amplitude: 0.5, peak_hour: 15.0 };
    assert!(close(rate_per_s(&daily, 15.0 * 3600.0), 150.0));
    assert!(close(rate_per_s(&daily, 3.0 * 3600.0), 50.0));
    assert!(close(rate_per_s(&daily, (24.0 + 15.0) * 3600.0), 150.0), "a day later, the same");
    let step = RateCurve::Step { before_per_s: 10.0, after_per_s: 30.0, at_s: 60.0 };
    assert_eq!((rate_per_s(&step, 59.9), rate_per_s(&step, 60.0)), (10.0, 30.0));
    let growth = RateCurve::Growth { start_per_s: 100.0, percent_per_hour: 10.0 };
    assert!(close(rate_per_s(&growth, 7200.0), 121.0));
    let bursts = RateCurve::Bursts { base_per_s: 1.0, burst_per_s: 9.0, on_s: 10.0, off_s: 50.0 };
    assert_eq!([0.0, 9.9, 10.0, 59.9, 60.0].map(|t| rate_per_s(&bursts, t)), [9.0, 9.0, 1.0, 1.0, 9.0]);
}

#[test]
fn the_cost_mix_has_the_mean_and_variability_of_its_types() {
    let one = |d| cost_mix(&[cost(1.0, 2.0, d)]);
    assert_eq!(one(CostDistribution::Deterministic), CostMix { mean_ms: 2.0, scv: 0.0 });
    assert!(close(one(CostDistribution::Exponential).scv, 1.0));
    let lognormal = one(CostDistribution::Lognormal { sigma: 0.5 });
    assert!(close(lognormal.mean_ms, 2.0) && close(lognormal.scv, 0.25f64.exp() - 1.0));
    // 90% at 1 ms and 10% at 10 ms, both constant: mean 1.9, E[X^2] 10.9.
    let mix =
        cost_mix(&[cost(9.0, 1.0, CostDistribution::Deterministic), cost(1.0, 10.0, CostDistribution::Deterministic)]);
    assert!(close(mix.mean_ms, 1.9) && close(mix.scv, 10.9 / (1.9 * 1.9) - 1.0), "{mix:?}");
}

#[test]
fn partition_shares_sum_to_one_and_follow_the_hash() {
    let w = workload(1.1, 0.0, None);
    let keys = KeySpace::new(&w, 16, 7);
    let shares = keys.shares(&w, 0.0);
    assert!(close(shares.iter().sum(), 1.0));
    // The most popular key is key 0: its partition holds at least its share.
    let first = partition_for_key(b"key-0", 16) as usize;
    let harmonic: f64 = (1..=2_000).map(|k| 1.0 / f64::from(k).powf(1.1)).sum();
    assert!(shares[first] >= 1.0 / harmonic);
    // Uniform keys spread evenly within the hash's noise.
    let uniform = workload(0.0, 0.0, None);
    let even = KeySpace::new(&uniform, 16, 7).shares(&uniform, 0.0);
    assert!(even.iter().all(|s| (s - 1.0 / 16.0).abs() < 0.02), "{even:?}");
}

#[test]
fn a_hot_key_and_a_rotating_set_take_their_shares() {
    let rotating = RotatingHotSet { keys: 3, share: 0.3, every_s: 100.0 };
    let w = workload(0.0, 0.5, Some(rotating));
    let keys = KeySpace::new(&w, 64, 7);
    let early = keys.shares(&w, 0.0);
    assert!(close(early.iter().sum(), 1.0));
    assert!(early.iter().any(|s| *s >= 0.5), "the hot key's partition");
    let same_epoch = keys.shares(&w, 99.0);
    assert_eq!(early, same_epoch);
    let later: Vec<Vec<f64>> = (1..6).map(|e| keys.shares(&w, f64::from(e) * 100.0)).collect();
    assert!(later.iter().any(|s| *s != early), "the hot set rotates");
    // The same seed gives the same shares; another seed other ones.
    assert_eq!(KeySpace::new(&w, 64, 7).shares(&w, 250.0), keys.shares(&w, 250.0));
    assert_ne!(KeySpace::new(&w, 64, 8).shares(&w, 250.0), keys.shares(&w, 250.0));
}
