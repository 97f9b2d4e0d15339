use eddy_model::trace::{PartitionPoint, PartitionTrace, Trace};

use crate::Scenario;

/// Two partitions a second apart: partition 0 at 300 events/s of 2 ms for
/// a minute, then 100; partition 1 at 100 events/s of 1 ms, idle for the
/// tenth second.
fn trace() -> Trace {
    let mut trace = Trace::new(1000);
    let start = 1_700_000_000_000u64;
    let point = |second: u64, events_per_s: f64, cost: f64| PartitionPoint {
        at_ms: start + second * 1000,
        leader: 1,
        events: events_per_s as u64,
        events_per_s,
        bytes_per_s: events_per_s * 100.0,
        cpu_ms_per_event: (events_per_s > 0.0).then_some(cost),
    };
    let hot = (0..120).map(|s| point(s, if s < 60 { 300.0 } else { 100.0 }, 2.0)).collect();
    let cold = (0..120).map(|s| point(s, if s == 10 { 0.0 } else { 100.0 }, 1.0)).collect();
    trace.partitions =
        vec![PartitionTrace { partition: 0, samples: hot }, PartitionTrace { partition: 1, samples: cold }];
    trace
}

fn scenario_text(trace_line: &str, duration_s: u32) -> String {
    format!(
        r#"
name = "replay"
duration_s = {duration_s}
partitions = 2
replication_factor = 1
[[node_types]]
name = "n"
cores = 2
price_per_hour = 1.0
zones = ["a"]
count = 2
[workload]
{trace_line}
[placement]
mode = "off"
"#
    )
}

#[test]
fn a_replay_follows_the_trace_rates_shares_and_costs() {
    let replay = super::Replay::from_trace(&trace(), 2).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(replay.duration_s(), 120.0);
    assert_eq!(replay.rate_per_s(5.5), 400.0);
    assert_eq!(replay.shares(5.5), vec![0.75, 0.25]);
    assert!((replay.cost(5.5).mean_ms - (300.0 * 2.0 + 100.0) / 400.0).abs() < 1e-12);
    assert_eq!(replay.rate_per_s(10.2), 300.0, "partition 1 idle for a second");
    assert_eq!(replay.rate_per_s(90.0), 200.0);
    assert_eq!(replay.rate_per_s(1e6), 200.0, "past the end the last rates hold");
    assert!(super::Replay::from_trace(&trace(), 1).unwrap_err().contains("has partition 1"));
    assert!(super::Replay::from_trace(&Trace::new(1000), 2).is_err());
}

#[test]
fn a_scenario_replays_a_trace_file_beside_it() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("load.json"), trace().to_json()?)?;
    let path = dir.path().join("replay.toml");
    std::fs::write(&path, scenario_text("trace = \"load.json\"", 120))?;
    let s = Scenario::load(&path)?;
    let run = crate::fast::run(&s, |_| {});
    assert!((run.summary.events - (400.0 * 60.0 + 200.0 * 60.0 - 100.0)).abs() < 1e-6, "{:?}", run.summary);
    // The node leading partition 0 is the busy one while its rate is high.
    let busiest = run.series[0].utilisation.iter().copied().fold(0.0, f64::max);
    assert!((busiest - 0.3).abs() < 0.01, "300 events/s of 2 ms on 2 cores: {:?}", run.series[0]);
    assert!(crate::exact::run(&s, |_| {}).is_err(), "the exact engine refuses a replay");
    Ok(())
}

#[test]
fn a_bad_trace_is_refused_naming_the_field() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("replay.toml");
    std::fs::write(&path, scenario_text("trace = \"missing.json\"", 60))?;
    let err = Scenario::load(&path).map(|_| ()).unwrap_err().to_string();
    assert!(err.contains("`workload.trace`") && err.contains("missing.json"), "{err}");
    std::fs::write(dir.path().join("bad.json"), "{\"format\": \"eddy-trace/9\"}")?;
    std::fs::write(&path, scenario_text("trace = \"bad.json\"", 60))?;
    let err = Scenario::load(&path).map(|_| ()).unwrap_err().to_string();
    assert!(err.contains("`workload.trace`"), "{err}");
    let both = "trace = \"load.json\"\nrate = { shape = \"constant\", events_per_s = 1 }";
    std::fs::write(&path, scenario_text(both, 60))?;
    let err = Scenario::load(&path).map(|_| ()).unwrap_err().to_string();
    assert!(err.contains("`workload.rate` is not used when workload.trace replays a trace"), "{err}");
    std::fs::write(&path, scenario_text("keys = 10", 60))?;
    let err = Scenario::load(&path).map(|_| ()).unwrap_err().to_string();
    assert!(err.contains("`workload.rate` is required"), "{err}");
    Ok(())
}
