//! The checks behind [`crate::Scenario::validate`]: each answers the path
//! of the first bad field (`node_types[1].cores`) and what is wrong with it.

use std::collections::BTreeSet;

use crate::scenario::{CostDistribution, Failure, RateCurve, Scenario, Workload};

type Checked = Result<(), (String, String)>;

fn bad(field: impl Into<String>, message: impl Into<String>) -> Checked {
    Err((field.into(), message.into()))
}

fn positive(field: &str, value: f64) -> Checked {
    if value.is_finite() && value > 0.0 { Ok(()) } else { bad(field, format!("must be above 0, got {value}")) }
}

fn non_negative(field: &str, value: f64) -> Checked {
    if value.is_finite() && value >= 0.0 { Ok(()) } else { bad(field, format!("must be at least 0, got {value}")) }
}

fn share(field: &str, value: f64) -> Checked {
    if (0.0..=1.0).contains(&value) { Ok(()) } else { bad(field, format!("must be between 0 and 1, got {value}")) }
}

pub fn scenario(s: &Scenario) -> Checked {
    if s.name.trim().is_empty() {
        return bad("name", "must not be empty");
    }
    positive("duration_s", s.duration_s)?;
    positive("step_s", s.step_s)?;
    if s.step_s > s.duration_s {
        return bad("step_s", format!("must not exceed duration_s ({}), got {}", s.duration_s, s.step_s));
    }
    if s.partitions == 0 {
        return bad("partitions", "must be at least 1");
    }
    if s.replication_factor == 0 {
        return bad("replication_factor", "must be at least 1");
    }
    nodes(s)?;
    workload(&s.workload)?;
    failures(s)?;
    s.placement.policy.validate().map_err(|message| ("placement.policy".to_owned(), message))?;
    let c = &s.controller;
    positive("controller.plan_interval_s", c.plan_interval_s)?;
    positive("controller.telemetry_interval_s", c.telemetry_interval_s)?;
    non_negative("controller.election_s", c.election_s)?;
    positive("controller.copy_bytes_per_s", c.copy_bytes_per_s)?;
    non_negative("controller.bytes_per_event", c.bytes_per_event)?;
    share("controller.telemetry_noise", c.telemetry_noise)?;
    positive("controller.timeout_ms", c.timeout_ms)
}

fn nodes(s: &Scenario) -> Checked {
    if s.node_types.is_empty() {
        return bad("node_types", "must name at least one node type");
    }
    let mut names = BTreeSet::new();
    for (i, t) in s.node_types.iter().enumerate() {
        let field = |name: &str| format!("node_types[{i}].{name}");
        if !names.insert(t.name.as_str()) {
            return bad(field("name"), format!("`{}` is used twice", t.name));
        }
        positive(&field("cores"), t.cores)?;
        positive(&field("speed"), t.speed)?;
        non_negative(&field("price_per_hour"), t.price_per_hour)?;
        if t.zones.is_empty() || t.zones.iter().any(|z| z.trim().is_empty()) {
            return bad(field("zones"), "must name at least one zone, none empty");
        }
    }
    let nodes = s.node_count();
    if nodes < u64::from(s.replication_factor) {
        return bad(
            "replication_factor",
            format!("{} needs at least as many nodes; the scenario has {nodes}", s.replication_factor),
        );
    }
    Ok(())
}

fn workload(w: &Workload) -> Checked {
    match (&w.trace, &w.rate) {
        (Some(trace), _) if trace.trim().is_empty() => return bad("workload.trace", "must be a path when given"),
        (Some(_), Some(_)) => {
            return bad("workload.rate", "is not used when workload.trace replays a trace: remove one");
        }
        (Some(_), None) if !w.costs.is_empty() => {
            return bad("workload.costs", "are not used when workload.trace replays a trace: remove one");
        }
        (None, None) => return bad("workload.rate", "is required (or workload.trace, to replay a trace)"),
        (None, Some(curve)) => rate(curve)?,
        (Some(_), None) => {}
    }
    if w.keys == 0 {
        return bad("workload.keys", "must be at least 1");
    }
    non_negative("workload.zipf", w.zipf)?;
    share("workload.hot_key_share", w.hot_key_share)?;
    if let Some(hot) = &w.rotating_hot_set {
        if hot.keys == 0 || hot.keys > w.keys {
            return bad("workload.rotating_hot_set.keys", format!("must be between 1 and workload.keys ({})", w.keys));
        }
        share("workload.rotating_hot_set.share", hot.share)?;
        positive("workload.rotating_hot_set.every_s", hot.every_s)?;
        if hot.share + w.hot_key_share > 1.0 {
            return bad("workload.rotating_hot_set.share", "with hot_key_share must not exceed 1");
        }
    }
    if w.costs.is_empty() && w.trace.is_none() {
        return bad("workload.costs", "must name at least one event type");
    }
    for (i, cost) in w.costs.iter().enumerate() {
        let field = |name: &str| format!("workload.costs[{i}].{name}");
        positive(&field("share"), cost.share)?;
        non_negative(&field("cpu_ms"), cost.cpu_ms)?;
        if let CostDistribution::Lognormal { sigma } = cost.distribution {
            positive(&field("distribution.sigma"), sigma)?;
        }
    }
    Ok(())
}

fn rate(curve: &RateCurve) -> Checked {
    let f = |name: &str| format!("workload.rate.{name}");
    match *curve {
        RateCurve::Constant { events_per_s } => non_negative(&f("events_per_s"), events_per_s),
        RateCurve::Daily { mean_per_s, amplitude, peak_hour } => {
            non_negative(&f("mean_per_s"), mean_per_s)?;
            share(&f("amplitude"), amplitude)?;
            if (0.0..24.0).contains(&peak_hour) {
                Ok(())
            } else {
                bad(f("peak_hour"), format!("must be in [0, 24), got {peak_hour}"))
            }
        }
        RateCurve::Step { before_per_s, after_per_s, at_s } => {
            non_negative(&f("before_per_s"), before_per_s)?;
            non_negative(&f("after_per_s"), after_per_s)?;
            non_negative(&f("at_s"), at_s)
        }
        RateCurve::Growth { start_per_s, percent_per_hour } => {
            non_negative(&f("start_per_s"), start_per_s)?;
            if percent_per_hour.is_finite() && percent_per_hour > -100.0 {
                Ok(())
            } else {
                bad(f("percent_per_hour"), format!("must be above -100, got {percent_per_hour}"))
            }
        }
        RateCurve::Bursts { base_per_s, burst_per_s, on_s, off_s } => {
            non_negative(&f("base_per_s"), base_per_s)?;
            non_negative(&f("burst_per_s"), burst_per_s)?;
            positive(&f("on_s"), on_s)?;
            positive(&f("off_s"), off_s)
        }
    }
}

fn failures(s: &Scenario) -> Checked {
    let zones: BTreeSet<&str> = s.node_types.iter().flat_map(|t| t.zones.iter().map(String::as_str)).collect();
    let nodes = s.node_count();
    for (i, failure) in s.failures.iter().enumerate() {
        let field = |name: &str| format!("failures[{i}].{name}");
        let node_exists = |node: u64| {
            if (1..=nodes).contains(&node) {
                Ok(())
            } else {
                bad(field("node"), format!("must be between 1 and {nodes}, got {node}"))
            }
        };
        match failure {
            Failure::Crash { node, at_s, for_s } => {
                node_exists(*node)?;
                non_negative(&field("at_s"), *at_s)?;
                positive(&field("for_s"), *for_s)?;
            }
            Failure::ZoneLoss { zone, at_s, for_s } => {
                if !zones.contains(zone.as_str()) {
                    return bad(field("zone"), format!("`{zone}` is not a zone of any node type ({zones:?})"));
                }
                non_negative(&field("at_s"), *at_s)?;
                positive(&field("for_s"), *for_s)?;
            }
            Failure::Slow { node, factor, at_s, for_s } => {
                node_exists(*node)?;
                positive(&field("factor"), *factor)?;
                non_negative(&field("at_s"), *at_s)?;
                positive(&field("for_s"), *for_s)?;
            }
            Failure::RollingRestart { at_s, every_s, down_s } => {
                non_negative(&field("at_s"), *at_s)?;
                positive(&field("every_s"), *every_s)?;
                positive(&field("down_s"), *down_s)?;
            }
        }
    }
    Ok(())
}
