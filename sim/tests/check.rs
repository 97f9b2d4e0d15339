//! `eddy-sim check`: a good scenario is printed with its defaults, a bad
//! one is refused with exit status 2 and a message naming the field.

use std::process::Command;

fn eddy_sim(args: &[&str]) -> std::io::Result<std::process::Output> {
    Command::new(env!("CARGO_BIN_EXE_eddy-sim")).args(args).output()
}

#[test]
fn a_shipped_scenario_is_printed_with_its_defaults() -> anyhow::Result<()> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/skewed.toml");
    let out = eddy_sim(&["check", path, "--json"])?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let scenario: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(scenario["name"], "skewed");
    assert_eq!(scenario["controller"]["plan_interval_s"], 5.0);
    assert_eq!(scenario["placement"]["policy"]["slo_p99_ms"], 50.0);
    Ok(())
}

#[test]
fn a_bad_scenario_is_refused_naming_the_field() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("bad.toml");
    let good = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/skewed.toml"))?;
    std::fs::write(&path, good.replace("zipf = 1.1", "zipf = -1.1"))?;
    let out = eddy_sim(&["check", &path.display().to_string()])?;
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("`workload.zipf` must be at least 0, got -1.1"), "{err}");
    assert!(out.stdout.is_empty());
    Ok(())
}

/// The shipped skewed scenario, cut to two simulated minutes.
fn short_skewed(dir: &std::path::Path) -> anyhow::Result<String> {
    let good = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/skewed.toml"))?;
    let path = dir.join("short.toml");
    std::fs::write(&path, good.replace("duration_s = 3600", "duration_s = 120"))?;
    Ok(path.display().to_string())
}

#[test]
fn run_prints_one_json_summary_the_same_every_time() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = short_skewed(dir.path())?;
    let series = dir.path().join("series.csv");
    let first = eddy_sim(&["run", &path, "--json", "--series", &series.display().to_string()])?;
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let again = eddy_sim(&["run", &path, "--json"])?;
    assert_eq!(first.stdout, again.stdout, "the same seed gives the same output, byte for byte");
    let summary: serde_json::Value = serde_json::from_slice(&first.stdout)?;
    assert!(summary["p99_ms"].as_f64().is_some_and(|p| p > summary["p50_ms"].as_f64().unwrap_or(f64::MAX)));
    assert!((summary["events"].as_f64().unwrap_or(0.0) - 7000.0 * 120.0).abs() < 1.0, "{summary}");
    let csv = std::fs::read_to_string(&series)?;
    assert_eq!(csv.lines().count(), 1 + 2, "a header and a row a simulated minute: {csv}");
    assert!(csv.starts_with("t_s,events_per_s,p99_ms,price_per_hour,moves_in_flight,utilisation_node_1,"));
    let json_path = dir.path().join("series.json");
    let out = eddy_sim(&["run", &path, "--series", &json_path.display().to_string()])?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let points: Vec<serde_json::Value> = serde_json::from_str(&std::fs::read_to_string(&json_path)?)?;
    assert_eq!(points.len(), 2);
    assert_eq!(points[1]["t_s"], 120.0);
    assert_eq!(points[0]["utilisation"].as_array().map(Vec::len), Some(6));
    Ok(())
}

#[test]
fn compare_runs_every_policy_on_the_same_seed() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let out = eddy_sim(&["compare", &short_skewed(dir.path())?, "--json"])?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout)?;
    let policies: Vec<&str> = rows.iter().filter_map(|r| r["policy"].as_str()).collect();
    assert_eq!(policies, ["adaptive", "static", "count", "utilisation"]);
    assert!(rows.iter().all(|r| r["seed"] == 7 && r["events"] == rows[0]["events"]));
    Ok(())
}

#[test]
fn run_writes_an_html_report_with_its_plots_and_data() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = short_skewed(dir.path())?;
    let report = dir.path().join("report");
    let out = eddy_sim(&["run", &path, "--json", "--report", &report.display().to_string()])?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let html = std::fs::read_to_string(report.join("index.html"))?;
    assert_eq!(html.matches("<svg").count(), 4, "latency, heat map, price, money spent");
    assert!(html.contains("p99 latency over time") && html.contains("node 6"));
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let written: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(report.join("summary.json"))?)?;
    assert_eq!(printed, written);
    assert_eq!(std::fs::read_to_string(report.join("series.csv"))?.lines().count(), 3);
    Ok(())
}

#[test]
fn plan_recommends_a_cluster_and_refuses_a_bad_target() -> anyhow::Result<()> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/capacity.toml");
    let out = eddy_sim(&["plan", path, "--slo-p99-ms", "30", "--availability", "0.999", "--json"])?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let planned: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(planned["recommended"]["meets"], true, "{planned}");
    assert!(planned["frontier"].as_array().is_some_and(|f| f.len() >= 2), "{planned}");
    let bad = eddy_sim(&["plan", path, "--slo-p99-ms", "30", "--availability", "99.9"])?;
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--availability is a share in (0, 1]"));
    let hopeless = eddy_sim(&["plan", path, "--slo-p99-ms", "0.001", "--availability", "0.999", "--max-count", "3"])?;
    assert_eq!(hopeless.status.code(), Some(1));
    let told = String::from_utf8_lossy(&hopeless.stdout);
    assert!(told.contains("no cluster in the searched range meets the targets"), "{told}");
    Ok(())
}
