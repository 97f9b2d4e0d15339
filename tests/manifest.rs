//! `eddyd run --config` refuses a bad manifest, naming the field, before it
//! touches any data.

use std::path::Path;
use std::process::Output;

use eddy_testkit::{Bins, bins, free_port, tied_command};

fn manifest(port: u16, data: &Path) -> String {
    format!(
        "[node]\nid = 1\nlisten_addr = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\nzone = \"zone-a\"\n\
         capacity_cores = 2.0\nprice_per_hour = 0.1\nroles = [\"controller\", \"worker\"]\n\n\
         [controller]\ninitial_members = [{{ id = 1, addr = \"127.0.0.1:{port}\" }}]\n\n\
         [cluster]\npartition_count = 16\nreplication_factor = 1\n",
        data.display()
    )
}

fn eddyd(bins: &Bins, args: &[&str], file: &Path, env: &[(&str, &str)]) -> anyhow::Result<Output> {
    let mut command = tied_command(&bins.eddyd);
    command.args(args).arg("--config").arg(file);
    for (key, value) in env {
        command.env(key, value);
    }
    Ok(command.output()?)
}

fn refused(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(2), "a bad manifest exits with status 2");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_manifest_with_a_bad_field_is_refused_with_the_field_named() -> anyhow::Result<()> {
    let bins = bins!();
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let good = manifest(free_port()?, &data);
    let cases = [
        (good.replace("zone = \"zone-a\"", "zone = \"\""), "node.zone"),
        (good.replace("capacity_cores = 2.0", "capacity_cores = -2.0"), "node.capacity_cores"),
        (good.replace("zone = ", "zoen = "), "node.zoen"),
        (good.replace("partition_count = 16", "partition_count = \"many\""), "cluster.partition_count"),
        (good.replace("replication_factor = 1", "replication_factor = 0"), "cluster.replication_factor"),
        (good.replace("roles = [\"controller\", \"worker\"]", "roles = [\"boss\"]"), "node.roles"),
    ];
    for (text, field) in cases {
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, &text)?;
        let stderr = refused(&eddyd(&bins, &["run"], &file, &[])?);
        assert!(stderr.contains(&format!("`{field}")), "expected {field} in: {stderr}");
    }
    assert!(!data.exists(), "a refused manifest creates no data");
    Ok(())
}

#[test]
fn environment_variables_override_the_manifest_and_are_checked_too() -> anyhow::Result<()> {
    let bins = bins!();
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("node.toml");
    std::fs::write(&file, manifest(free_port()?, &dir.path().join("data")))?;
    let out = eddyd(&bins, &["check"], &file, &[("EDDY_NODE__ZONE", "zone-q")])?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("zone = \"zone-q\""));
    let out = eddyd(&bins, &["check"], &file, &[("EDDY_NODE__PRICE_PER_HOUR", "-1")])?;
    assert!(refused(&out).contains("`node.price_per_hour`"));
    Ok(())
}

#[test]
fn a_missing_manifest_is_reported() -> anyhow::Result<()> {
    let bins = bins!();
    let out = eddyd(&bins, &["run"], Path::new("/nonexistent/eddy/node.toml"), &[])?;
    assert!(refused(&out).contains("no manifest file"));
    Ok(())
}
