use super::scenario::*;

const MINIMAL: &str = r#"
name = "t"
duration_s = 60
partitions = 8
replication_factor = 3

[[node_types]]
name = "n"
cores = 2
price_per_hour = 0.1
zones = ["a", "b", "c"]
count = 3

[workload]
rate = { shape = "constant", events_per_s = 100 }

[[workload.costs]]
event_type = "default"
share = 1
cpu_ms = 1
"#;

/// The error for `MINIMAL` with `from` replaced by `to`.
fn refused(from: &str, to: &str) -> String {
    let text = MINIMAL.replace(from, to);
    assert_ne!(text, MINIMAL, "`{from}` is not in the scenario");
    match Scenario::parse(&text, "t.toml") {
        Ok(s) => panic!("accepted: {s:?}"),
        Err(err) => err.to_string(),
    }
}

#[test]
fn the_shipped_scenarios_are_valid() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("sim/scenarios") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "toml") {
            let scenario = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
            assert!(scenario.node_count() >= u64::from(scenario.replication_factor));
            seen += 1;
        }
    }
    assert!(seen >= 2, "only {seen} scenarios in {}", dir.display());
}

#[test]
fn defaults_fill_what_a_scenario_leaves_out() {
    let s = Scenario::parse(MINIMAL, "t.toml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.step_s, 1.0);
    assert_eq!(s.node_types[0].speed, 1.0);
    assert_eq!(s.workload.keys, 10_000);
    assert_eq!(s.workload.costs[0].distribution, CostDistribution::Exponential);
    assert_eq!(s.placement.mode, eddy_core::PlacementMode::Auto);
    assert_eq!(s.controller, Controller::default());
}

#[test]
fn an_unknown_field_is_named_with_its_place() {
    let err = refused("[workload]\n", "[workload]\nzipff = 1\n");
    assert!(err.contains("`workload.zipff`") && err.contains("expected one of"), "{err}");
}

#[test]
fn a_value_of_the_wrong_type_is_named_by_its_path_and_line() {
    let err = refused("cpu_ms = 1", "cpu_ms = \"lots\"");
    assert!(err.contains("`workload.costs[0].cpu_ms`") && err.contains("line 20"), "{err}");
    // Inside a table picked by its `shape`, the table is named, with the
    // line and the bad value.
    let err = refused("events_per_s = 100", "events_per_s = \"lots\"");
    assert!(err.contains("`workload.rate`") && err.contains("line 15") && err.contains("lots"), "{err}");
}

#[test]
fn an_unknown_rate_shape_is_refused() {
    let err = refused("shape = \"constant\"", "shape = \"sawtooth\"");
    assert!(err.contains("workload.rate") && err.contains("sawtooth"), "{err}");
}

#[test]
fn out_of_range_values_name_the_field() {
    let cases = [
        ("cores = 2", "cores = -2", "node_types[0].cores"),
        ("count = 3", "count = 2", "replication_factor"),
        ("events_per_s = 100", "events_per_s = -1", "workload.rate.events_per_s"),
        ("cpu_ms = 1", "cpu_ms = -1", "workload.costs[0].cpu_ms"),
        ("duration_s = 60", "duration_s = 0", "duration_s"),
        ("partitions = 8", "partitions = 0", "partitions"),
    ];
    for (from, to, field) in cases {
        let err = refused(from, to);
        assert!(err.contains(&format!("`{field}`")), "{to}: {err}");
    }
}

#[test]
fn failures_must_name_nodes_and_zones_that_exist() {
    let crash = format!("{MINIMAL}\n[[failures]]\nkind = \"crash\"\nnode = 4\nat_s = 1\nfor_s = 1\n");
    let err = Scenario::parse(&crash, "t.toml").map(|_| ()).unwrap_err().to_string();
    assert!(err.contains("`failures[0].node`") && err.contains("between 1 and 3"), "{err}");
    let zone = format!("{MINIMAL}\n[[failures]]\nkind = \"zone_loss\"\nzone = \"d\"\nat_s = 1\nfor_s = 1\n");
    let err = Scenario::parse(&zone, "t.toml").map(|_| ()).unwrap_err().to_string();
    assert!(err.contains("`failures[0].zone`"), "{err}");
}

#[test]
fn a_bad_policy_is_refused_under_placement() {
    let text = format!("{MINIMAL}\n[placement]\npolicy = {{ utilisation_ceiling = 2.0 }}\n");
    let err = Scenario::parse(&text, "t.toml").map(|_| ()).unwrap_err().to_string();
    assert!(err.contains("`placement.policy`") && err.contains("utilisation_ceiling"), "{err}");
}
