//! Cluster-wide settings fixed at bootstrap.

use serde::{Deserialize, Serialize};

/// Settings chosen when the cluster is bootstrapped and kept in the
/// controller's replicated state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterSettings {
    pub partition_count: u32,
    pub replication_factor: u32,
}

/// Largest partition count a cluster may be created with.
pub const MAX_PARTITIONS: u32 = 100_000;
/// Largest replication factor.
pub const MAX_REPLICATION_FACTOR: u32 = 7;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("partition_count must be between 1 and {MAX_PARTITIONS}, got {0}")]
    PartitionCount(u32),
    #[error("replication_factor must be between 1 and {MAX_REPLICATION_FACTOR}, got {0}")]
    ReplicationFactor(u32),
}

impl SettingsError {
    /// Name of the offending field, as written in manifests.
    pub fn field(&self) -> &'static str {
        match self {
            SettingsError::PartitionCount(_) => "partition_count",
            SettingsError::ReplicationFactor(_) => "replication_factor",
        }
    }
}

impl ClusterSettings {
    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.partition_count == 0 || self.partition_count > MAX_PARTITIONS {
            return Err(SettingsError::PartitionCount(self.partition_count));
        }
        if self.replication_factor == 0 || self.replication_factor > MAX_REPLICATION_FACTOR {
            return Err(SettingsError::ReplicationFactor(self.replication_factor));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_names_the_field() {
        let bad = ClusterSettings { partition_count: 0, replication_factor: 3 };
        assert_eq!(bad.validate().unwrap_err().field(), "partition_count");
        let bad = ClusterSettings { partition_count: 16, replication_factor: 9 };
        assert_eq!(bad.validate().unwrap_err().field(), "replication_factor");
        let good = ClusterSettings { partition_count: 16, replication_factor: 3 };
        assert_eq!(good.validate(), Ok(()));
    }
}
