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
