//! Eddy's binaries and the processes started from them.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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
}
