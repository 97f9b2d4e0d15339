//! Eddy's binaries and the processes started from them.

use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use anyhow::Context;

/// Paths of the binaries under test. Build it with [`bins!`](crate::bins) in
/// an integration test of the root package, where cargo has just built them.
#[derive(Debug, Clone)]
pub struct Bins {
    pub eddyd: PathBuf,
    pub eddyctl: PathBuf,
}

/// The binaries cargo built for the integration test that expands this.
#[macro_export]
macro_rules! bins {
    () => {
        $crate::Bins {
            eddyd: ::std::path::PathBuf::from(env!("CARGO_BIN_EXE_eddyd")),
            eddyctl: ::std::path::PathBuf::from(env!("CARGO_BIN_EXE_eddyctl")),
        }
    };
}

/// A command whose process is killed if the test process dies, so that no
/// node outlives a crashed or timed-out test. Call it from the test's own
/// thread: the kernel ties the child to the thread that forked it.
pub fn tied_command(program: &Path) -> Command {
    let mut command = Command::new(program);
    #[allow(unsafe_code)]
    // SAFETY: the closure only calls prctl(2), which is async-signal-safe,
    // between fork and exec.
    unsafe {
        command.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL).map_err(std::io::Error::from)
        });
    }
    command
}

impl Bins {
    /// Runs `eddyctl` with `args` against `endpoints` and returns its output.
    pub fn eddyctl(&self, endpoints: &[String], args: &[&str]) -> anyhow::Result<Output> {
        let mut command = tied_command(&self.eddyctl);
        command.arg("--endpoints").arg(endpoints.join(",")).args(args).env_remove("EDDY_ENDPOINTS");
        command.output().context("running eddyctl")
    }

    /// Like [`eddyctl`](Self::eddyctl), but fails (and kills it) when it
    /// has not finished within `timeout`: for commands that must end.
    pub fn eddyctl_within(&self, endpoints: &[String], args: &[&str], timeout: Duration) -> anyhow::Result<Output> {
        // Files rather than pipes: a command that prints much must not
        // stall on a full pipe while this waits for it.
        let (mut stdout, mut stderr) = (tempfile::tempfile()?, tempfile::tempfile()?);
        let mut command = tied_command(&self.eddyctl);
        command
            .arg("--endpoints")
            .arg(endpoints.join(","))
            .args(args)
            .env_remove("EDDY_ENDPOINTS")
            .stdout(stdout.try_clone()?)
            .stderr(stderr.try_clone()?);
        let mut child = command.spawn().context("running eddyctl")?;
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if started.elapsed() > timeout {
                let _ = child.kill();
                let _ = child.wait();
                anyhow::bail!("eddyctl {args:?} did not finish within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let read = |file: &mut std::fs::File| -> anyhow::Result<Vec<u8>> {
            let mut bytes = Vec::new();
            file.seek(SeekFrom::Start(0))?;
            file.read_to_end(&mut bytes)?;
            Ok(bytes)
        };
        Ok(Output { status, stdout: read(&mut stdout)?, stderr: read(&mut stderr)? })
    }
}
