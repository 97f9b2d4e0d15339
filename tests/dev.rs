//! `eddyd dev` on a fresh machine: one command, no setup, a working cluster.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use eddy_client::view::StatusView;
use eddy_testkit::{Bins, bins, free_port, placement, tied_command};

struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn status_of(bins: &Bins, endpoint: &str) -> anyhow::Result<Option<StatusView>> {
    let out = bins.eddyctl(&[endpoint.to_owned()], &["status", "--json"])?;
    if !out.status.success() {
        return Ok(None);
    }
    Ok(Some(serde_json::from_slice(&out.stdout)?))
}

fn start_dev(bins: &Bins, dir: &std::path::Path, endpoint: &str) -> anyhow::Result<Reaped> {
    let child = tied_command(&bins.eddyd)
        .args(["dev", "--listen", endpoint])
        .current_dir(dir)
        .env_remove("EDDY_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    Ok(Reaped(child))
}

fn wait_ready(bins: &Bins, endpoint: &str) -> anyhow::Result<StatusView> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = status_of(bins, endpoint)? {
            let up = status.nodes.iter().filter(|n| n.state == "up").count();
            if up == 1 && status.partitions.len() == 16 && status.partitions.iter().all(|p| p.leader == Some(1)) {
                return Ok(status);
            }
        }
        anyhow::ensure!(Instant::now() < deadline, "eddyd dev did not become ready");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn eddyd_dev_starts_a_single_node_cluster_with_no_setup() -> anyhow::Result<()> {
    let bins = bins!();
    let dir = tempfile::tempdir()?;
    let endpoint = format!("127.0.0.1:{}", free_port()?);
    let node = start_dev(&bins, dir.path(), &endpoint)?;
    let status = wait_ready(&bins, &endpoint)?;
    assert_eq!(status.leader, Some(1));
    assert_eq!(status.voters, vec![1]);
    assert_eq!(status.nodes.len(), 1);
    assert!(status.partitions.iter().all(|p| p.replicas == vec![1]));
    assert!(dir.path().join("eddy-data").is_dir(), "data lives under ./eddy-data by default");
    // The node stays up past the liveness timeouts: its heartbeats are taken.
    std::thread::sleep(Duration::from_secs(4));
    let later = status_of(&bins, &endpoint)?.expect("status");
    assert_eq!(later.nodes[0].state, "up", "{later:?}");
    assert!(later.confirmed_leader);
    // The same data dir brings back the same cluster.
    drop(node);
    let _node = start_dev(&bins, dir.path(), &endpoint)?;
    let again = wait_ready(&bins, &endpoint)?;
    assert_eq!(again.cluster_id, status.cluster_id);
    assert_eq!(placement(&again), placement(&status));
    Ok(())
}
