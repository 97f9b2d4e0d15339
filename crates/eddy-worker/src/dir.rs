//! A partition's directory on a worker.
//!
//! ```text
//! partitions/<p>/CURRENT      name of the live generation
//! partitions/<p>/gen-<n>/     event log segments and the state file
//! partitions/<p>/incoming-*   a snapshot being received
//! ```
//! Installing a snapshot writes a new generation and then switches CURRENT
//! to it with an atomic rename, so a crash leaves either the old or the new
//! generation live, never a mix.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

const CURRENT: &str = "CURRENT";
const STATE: &str = "state";

#[derive(Debug, Clone)]
pub struct PartitionDir {
    root: PathBuf,
}

impl PartitionDir {
    pub fn new(root: PathBuf) -> Self {
        PartitionDir { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The live generation, created (empty) when there is none. Leftovers of
    /// an interrupted install or receive are removed.
    pub fn open_current(&self) -> io::Result<PathBuf> {
        fs::create_dir_all(&self.root)?;
        let current = match fs::read_to_string(self.root.join(CURRENT)) {
            Ok(name) => self.root.join(name.trim()),
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                let first = self.root.join("gen-0");
                fs::create_dir_all(&first)?;
                self.switch_to(&first)?;
                first
            }
            Err(err) => return Err(err),
        };
        self.remove_all_but(&current)?;
        Ok(current)
    }

    /// The live generation, without creating or cleaning anything.
    pub fn open_current_name(&self) -> io::Result<PathBuf> {
        Ok(self.root.join(fs::read_to_string(self.root.join(CURRENT))?.trim()))
    }

    /// A directory for the next generation (not created).
    pub fn next_generation(&self, current: &Path) -> PathBuf {
        let n: u64 = current
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("gen-"))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        self.root.join(format!("gen-{}", n + 1))
    }

    /// A fresh directory to receive a snapshot into.
    pub fn staging(&self) -> io::Result<PathBuf> {
        let dir = self.root.join(format!("incoming-{}", uuid::Uuid::new_v4().simple()));
        fs::create_dir_all(&dir)?;
        Ok(dir)
    }

    /// Makes `generation` the live one.
    pub fn switch_to(&self, generation: &Path) -> io::Result<()> {
        let name = generation.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        write_atomic(&self.root.join(CURRENT), name.as_bytes())
    }

    /// Removes every generation and staging directory but `keep`.
    pub fn remove_all_but(&self, keep: &Path) -> io::Result<()> {
        for entry in fs::read_dir(&self.root)? {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if path != keep && (name.starts_with("gen-") || name.starts_with("incoming-")) {
                fs::remove_dir_all(&path)?;
            }
        }
        Ok(())
    }
}

pub fn state_path(generation: &Path) -> PathBuf {
    generation.join(STATE)
}

/// Writes `bytes` to `path` so that a crash leaves the old or the new
/// content, durably.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_data()?;
    fs::rename(&tmp, path)?;
    if let Some(parent) = path.parent() {
        fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generations_switch_atomically_and_leftovers_go() {
        let root = tempfile::tempdir().unwrap();
        let dir = PartitionDir::new(root.path().join("p"));
        let first = dir.open_current().unwrap();
        assert!(first.ends_with("gen-0"));
        let next = dir.next_generation(&first);
        assert!(next.ends_with("gen-1"));
        fs::create_dir_all(&next).unwrap();
        let staging = dir.staging().unwrap();
        dir.switch_to(&next).unwrap();
        assert_eq!(dir.open_current().unwrap(), next);
        assert!(!first.exists() && !staging.exists());
    }
}
