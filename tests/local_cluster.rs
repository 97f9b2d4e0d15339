//! deploy/local/cluster.sh brings up, breaks, repairs and stops a local
//! cluster, as the README tells operators to use it.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use eddy_testkit::bins;

struct LocalCluster {
    script: PathBuf,
    dir: tempfile::TempDir,
    bin_dir: PathBuf,
    base_port: u16,
}

impl LocalCluster {
    fn run(&self, args: &[&str]) -> anyhow::Result<Output> {
        let out = Command::new("bash")
            .arg(&self.script)
            .args(args)
            .arg("--dir")
            .arg(self.dir.path())
            .env("EDDY_BIN_DIR", &self.bin_dir)
            .env("EDDY_LOCAL_BASE_PORT", self.base_port.to_string())
            .output()?;
        Ok(out)
    }

    fn ok(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = self.run(args)?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        anyhow::ensure!(
            out.status.success(),
            "cluster.sh {args:?} failed\nstdout: {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(stdout)
    }

    fn pids(&self) -> Vec<i32> {
        (1..=4)
            .filter_map(|id| std::fs::read_to_string(self.dir.path().join(format!("node{id}/pid"))).ok())
            .filter_map(|pid| pid.trim().parse().ok())
            .collect()
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        let _ = self.run(&["down"]);
        for pid in self.pids() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
    }
}

/// A multiple of ten whose next four ports are free.
fn free_base_port() -> anyhow::Result<u16> {
    for attempt in 0..200u16 {
        let base = 40_000 + (std::process::id() as u16 % 1000) * 10 + attempt * 10;
        if (1..=4).all(|i| TcpListener::bind(("127.0.0.1", base + i)).is_ok()) {
            return Ok(base);
        }
    }
    anyhow::bail!("no four consecutive free ports")
}

#[test]
fn cluster_sh_runs_a_local_cluster_end_to_end() -> anyhow::Result<()> {
    let bins = bins!();
    let cluster = LocalCluster {
        script: Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/local/cluster.sh"),
        dir: tempfile::tempdir()?,
        bin_dir: bins.eddyd.parent().expect("bin dir").to_path_buf(),
        base_port: free_base_port()?,
    };
    let b = cluster.base_port;
    let up = cluster.ok(&["up", "--nodes", "4"])?;
    let endpoints = format!("127.0.0.1:{},127.0.0.1:{},127.0.0.1:{}", b + 1, b + 2, b + 3);
    assert!(up.contains(&format!("export EDDY_ENDPOINTS={endpoints}")), "{up}");
    let status = cluster.ok(&["status"])?;
    assert!(status.contains("4 up, 0 suspect, 0 down"), "{status}");

    cluster.ok(&["kill", "2", "--signal", "STOP"])?;
    assert!(cluster.ok(&["status"])?.contains("node 2: pid"), "paused node is listed");
    assert!(cluster.ok(&["status"])?.contains("stopped (paused)"));
    cluster.ok(&["kill", "2", "--signal", "CONT"])?;

    cluster.ok(&["kill", "3"])?;
    assert!(cluster.ok(&["status"])?.contains("node 3: not running"));
    cluster.ok(&["start", "3"])?;
    let wait = Command::new(&bins.eddyctl)
        .args(["--endpoints", &endpoints, "wait", "--up", "4", "--timeout-secs", "60"])
        .output()?;
    assert!(wait.status.success(), "{}", String::from_utf8_lossy(&wait.stderr));

    let pids = cluster.pids();
    assert_eq!(pids.len(), 4);
    cluster.ok(&["down"])?;
    for pid in pids {
        assert!(!Path::new(&format!("/proc/{pid}")).exists(), "pid {pid} still runs after down");
    }
    assert!(cluster.dir.path().join("node1/data").is_dir(), "down keeps the data");
    Ok(())
}
