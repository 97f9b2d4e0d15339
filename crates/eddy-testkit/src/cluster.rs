//! A cluster of `eddyd` processes for one test.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use eddy_client::ClusterClient;
use eddy_client::view::StatusView;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tempfile::TempDir;

use crate::ports::free_port;
use crate::process::{Bins, tied_command};

/// The shape and timings of a test cluster.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    /// Nodes with the controller and worker roles, ids 1..=voters.
    pub voters: u64,
    pub partitions: u32,
    pub replication_factor: u32,
    pub heartbeat_interval_ms: u64,
    pub suspect_after_ms: u64,
    pub down_after_ms: u64,
    pub auto_bootstrap: bool,
    /// Controller entries between snapshots.
    pub snapshot_every_entries: u64,
    /// TOML appended to every manifest (extra sections).
    pub extra_manifest: String,
    /// Every node's `node.capacity_cores`.
    pub capacity_cores: f64,
}

impl Default for ClusterSpec {
    fn default() -> Self {
        ClusterSpec {
            voters: 3,
            partitions: 16,
            replication_factor: 3,
            heartbeat_interval_ms: 200,
            suspect_after_ms: 1500,
            down_after_ms: 3000,
            auto_bootstrap: true,
            snapshot_every_entries: 1000,
            extra_manifest: String::new(),
            capacity_cores: 2.0,
        }
    }
}

struct TestNode {
    addr: String,
    manifest: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

/// Nodes of one test; dropping it kills them all.
pub struct TestCluster {
    bins: Bins,
    dir: TempDir,
    spec: ClusterSpec,
    members: Vec<(u64, String)>,
    nodes: BTreeMap<u64, TestNode>,
}

impl TestCluster {
    /// Writes the manifests of `spec.voters` nodes in zones zone-1.. and starts them.
    pub fn start(bins: Bins, spec: ClusterSpec) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("eddy-test-").tempdir()?;
        let members = (1..=spec.voters)
            .map(|id| Ok((id, format!("127.0.0.1:{}", free_port()?))))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mut cluster = TestCluster { bins, dir, spec, members: members.clone(), nodes: BTreeMap::new() };
        for (id, addr) in members {
            cluster.write_node(id, &addr, &format!("zone-{id}"), 0.1 * id as f64, &["controller", "worker"])?;
            cluster.start_node(id)?;
        }
        Ok(cluster)
    }

    /// Adds and starts a worker-only node.
    pub fn add_worker(&mut self, id: u64, zone: &str, price_per_hour: f64) -> anyhow::Result<()> {
        let addr = format!("127.0.0.1:{}", free_port()?);
        self.write_node(id, &addr, zone, price_per_hour, &["worker"])?;
        self.start_node(id)
    }

    fn write_node(&mut self, id: u64, addr: &str, zone: &str, price: f64, roles: &[&str]) -> anyhow::Result<()> {
        let node_dir = self.dir.path().join(format!("node{id}"));
        std::fs::create_dir_all(&node_dir)?;
        let s = &self.spec;
        let mut members = String::new();
        for (member, member_addr) in &self.members {
            write!(members, "{{ id = {member}, addr = \"{member_addr}\" }}, ")?;
        }
        let roles = roles.iter().map(|r| format!("\"{r}\"")).collect::<Vec<_>>().join(", ");
        let manifest = format!(
            "[node]\nid = {id}\nlisten_addr = \"{addr}\"\ndata_dir = \"{data}\"\nzone = \"{zone}\"\n\
             capacity_cores = {cores:?}\nprice_per_hour = {price}\nroles = [{roles}]\n\n\
             [controller]\ninitial_members = [{members}]\nauto_bootstrap = {auto}\nsnapshot_every_entries = {snap}\n\n\
             [cluster]\npartition_count = {parts}\nreplication_factor = {rf}\n\n\
             [liveness]\nheartbeat_interval_ms = {hb}\nsuspect_after_ms = {suspect}\ndown_after_ms = {down}\n",
            data = node_dir.join("data").display(),
            cores = s.capacity_cores,
            auto = s.auto_bootstrap,
            snap = s.snapshot_every_entries,
            parts = s.partitions,
            rf = s.replication_factor,
            hb = s.heartbeat_interval_ms,
            suspect = s.suspect_after_ms,
            down = s.down_after_ms,
        ) + "\n"
            + &s.extra_manifest;
        let path = node_dir.join("node.toml");
        std::fs::write(&path, manifest)?;
        let log = node_dir.join("eddyd.log");
        self.nodes.insert(id, TestNode { addr: addr.to_owned(), manifest: path, log, child: None });
        Ok(())
    }

    /// Starts (or restarts) node `id` with its manifest and data.
    pub fn start_node(&mut self, id: u64) -> anyhow::Result<()> {
        let node = self.nodes.get_mut(&id).with_context(|| format!("no node {id}"))?;
        anyhow::ensure!(node.child.is_none(), "node {id} is already running");
        let log = File::options().create(true).append(true).open(&node.log)?;
        let mut command = tied_command(&self.bins.eddyd);
        command
            .arg("run")
            .arg("--config")
            .arg(&node.manifest)
            .env("EDDY_LOG", "info,eddy_controller=debug,openraft=warn")
            .env("EDDY_FAULT_INJECTION", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        node.child = Some(command.spawn().with_context(|| format!("starting node {id}"))?);
        Ok(())
    }

    fn pid(&self, id: u64) -> anyhow::Result<Pid> {
        let child =
            self.nodes.get(&id).and_then(|n| n.child.as_ref()).with_context(|| format!("node {id} is not running"))?;
        Ok(Pid::from_raw(i32::try_from(child.id())?))
    }

    /// Sends `signal` to node `id` (SIGSTOP pauses it, SIGCONT resumes it).
    pub fn signal(&self, id: u64, signal: Signal) -> anyhow::Result<()> {
        kill(self.pid(id)?, signal).with_context(|| format!("sending {signal} to node {id}"))
    }

    /// Kills node `id` with SIGKILL and reaps it.
    pub fn kill(&mut self, id: u64) -> anyhow::Result<()> {
        self.signal(id, Signal::SIGKILL)?;
        self.reap(id, Duration::from_secs(10))
    }

    /// Stops node `id` with SIGTERM, waiting for a clean exit.
    pub fn stop(&mut self, id: u64) -> anyhow::Result<()> {
        self.signal(id, Signal::SIGTERM)?;
        self.reap(id, Duration::from_secs(20))
    }

    fn reap(&mut self, id: u64, within: Duration) -> anyhow::Result<()> {
        let node = self.nodes.get_mut(&id).with_context(|| format!("no node {id}"))?;
        let Some(mut child) = node.child.take() else { return Ok(()) };
        let deadline = Instant::now() + within;
        loop {
            if child.try_wait()?.is_some() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("node {id} did not exit within {within:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn endpoint(&self, id: u64) -> anyhow::Result<String> {
        Ok(self.nodes.get(&id).with_context(|| format!("no node {id}"))?.addr.clone())
    }

    /// Runs `eddyctl` with `args` against node `id`.
    pub fn eddyctl(&self, id: u64, args: &[&str]) -> anyhow::Result<std::process::Output> {
        self.bins.eddyctl(&[self.endpoint(id)?], args)
    }

    /// Runs `eddyctl` with `args` against every node; fails when it has not
    /// finished within `timeout`.
    pub fn eddyctl_within(&self, args: &[&str], timeout: Duration) -> anyhow::Result<std::process::Output> {
        self.bins.eddyctl_within(&self.endpoints(), args, timeout)
    }

    /// The binaries the cluster runs.
    pub fn bins(&self) -> &Bins {
        &self.bins
    }

    /// The load history, as `eddyctl trace export` (asked of node `id`) writes it.
    pub fn export_trace(&self, id: u64) -> anyhow::Result<eddy_model::trace::Trace> {
        let file = tempfile::NamedTempFile::new()?;
        let path = file.path().to_string_lossy().into_owned();
        let out = self.eddyctl(id, &["trace", "export", "--out", &path])?;
        anyhow::ensure!(out.status.success(), "trace export: {}", String::from_utf8_lossy(&out.stderr));
        Ok(eddy_model::trace::Trace::from_json(&std::fs::read_to_string(&path)?)?)
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.nodes.values().map(|n| n.addr.clone()).collect()
    }

    pub fn ids(&self) -> Vec<u64> {
        self.nodes.keys().copied().collect()
    }

    /// A client that talks to node `id` only.
    pub fn client_of(&self, id: u64) -> anyhow::Result<ClusterClient> {
        Ok(ClusterClient::new(&[self.endpoint(id)?], Duration::from_secs(3))?)
    }

    /// The cluster status as node `id` answers it.
    pub async fn status_of(&self, id: u64) -> anyhow::Result<StatusView> {
        Ok(self.client_of(id)?.status().await?)
    }

    /// Polls node `via` until `ready` holds for its status; on timeout the
    /// error shows the last status and the tail of every node's log.
    pub async fn wait_until(
        &self,
        via: u64,
        what: &str,
        timeout: Duration,
        ready: impl Fn(&StatusView) -> bool,
    ) -> anyhow::Result<StatusView> {
        let client = self.client_of(via)?;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let last = match client.status().await {
                Ok(status) if ready(&status) => return Ok(status),
                Ok(status) => format!("{status:#?}"),
                Err(err) => err.to_string(),
            };
            if tokio::time::Instant::now() >= deadline {
                bail!(
                    "timed out after {timeout:?} waiting for {what} (via node {via})\nlast status: {last}\n{}",
                    self.log_tails()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Cuts node `id` off from every other node (both directions); clients
    /// still reach it.
    pub async fn cut_off(&self, id: u64) -> anyhow::Result<()> {
        let victim = self.endpoint(id)?;
        for (other, node) in &self.nodes {
            let blocked = if *other == id {
                self.nodes.iter().filter(|(o, _)| **o != id).map(|(_, n)| n.addr.clone()).collect()
            } else {
                vec![victim.clone()]
            };
            self.set_faults(&node.addr, blocked).await?;
        }
        Ok(())
    }

    /// Restores every link.
    pub async fn heal(&self) -> anyhow::Result<()> {
        for node in self.nodes.values() {
            self.set_faults(&node.addr, Vec::new()).await?;
        }
        Ok(())
    }

    async fn set_faults(&self, addr: &str, blocked_addrs: Vec<String>) -> anyhow::Result<()> {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?.connect().await?;
        let mut client = eddy_proto::v1::fault_service_client::FaultServiceClient::new(channel);
        client.set_faults(eddy_proto::v1::SetFaultsRequest { blocked_addrs }).await?;
        Ok(())
    }

    /// Where node `id` keeps its data.
    pub fn data_dir(&self, id: u64) -> PathBuf {
        self.dir.path().join(format!("node{id}")).join("data")
    }

    /// Everything node `id` has logged so far.
    pub fn log(&self, id: u64) -> anyhow::Result<String> {
        let node = self.nodes.get(&id).with_context(|| format!("no node {id}"))?;
        Ok(std::fs::read_to_string(&node.log)?)
    }

    /// The last lines of every node's log, for failure messages.
    pub fn log_tails(&self) -> String {
        let mut out = String::new();
        for (id, node) in &self.nodes {
            let text = std::fs::read_to_string(&node.log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(25)..].join("\n");
            let _ = write!(out, "--- node {id} log (last 25 lines) ---\n{tail}\n");
        }
        out
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for node in self.nodes.values_mut() {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}
