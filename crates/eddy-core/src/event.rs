//! Events: what clients submit, and what the cluster stores for them.

use std::collections::BTreeMap;
use std::fmt;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::PartitionId;

/// An event as a client submits it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Events with the same key go to the same partition, in order. An
    /// event without a key (empty) may go to any partition.
    pub key: Bytes,
    pub event_type: String,
    pub payload: Bytes,
    pub attributes: BTreeMap<String, String>,
}

impl Event {
    /// Bytes the event occupies, as limits count them.
    pub fn size_bytes(&self) -> usize {
        self.key.len()
            + self.event_type.len()
            + self.payload.len()
            + self.attributes.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>()
    }
}

/// An event as the cluster stores it: where it is, when it was committed
/// and its unique id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredEvent {
    pub partition: PartitionId,
    /// Dense per partition: 0, 1, 2, ...
    pub offset: u64,
    pub uid: EventUid,
    pub hlc: Hlc,
    pub event: Event,
}

/// The partition of a key: a stable hash (xxh3) modulo the partition count.
pub fn partition_for_key(key: &[u8], partition_count: u32) -> PartitionId {
    let count = u64::from(partition_count.max(1));
    (xxhash_rust::xxh3::xxh3_64(key) % count) as PartitionId
}

/// A hybrid logical clock timestamp: milliseconds since the Unix epoch in
/// the high 48 bits, a logical counter in the low 16. Within a partition an
/// event committed later always has a larger one; across the cluster they
/// follow the wall clock closely.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Hlc(pub u64);

impl Hlc {
    const LOGICAL_BITS: u32 = 16;

    pub fn from_millis(ms: u64) -> Self {
        Hlc(ms << Self::LOGICAL_BITS)
    }

    pub fn physical_ms(self) -> u64 {
        self.0 >> Self::LOGICAL_BITS
    }

    pub fn logical(self) -> u16 {
        (self.0 & 0xffff) as u16
    }

    /// The smallest timestamp after both `self` and the wall clock `now_ms`.
    pub fn tick(self, now_ms: u64) -> Hlc {
        Hlc::from_millis(now_ms).max(Hlc(self.0.saturating_add(1)))
    }
}

impl fmt::Display for Hlc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.physical_ms(), self.logical())
    }
}

/// A stored event's unique id: the cluster's salt, the partition and the
/// offset. Unique across the cluster and derivable from where the event is,
/// so an acknowledgement can be recomputed for a retried batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EventUid(pub u128);

impl EventUid {
    pub fn new(cluster_salt: u32, partition: PartitionId, offset: u64) -> Self {
        EventUid((u128::from(cluster_salt) << 96) | (u128::from(partition) << 64) | u128::from(offset))
    }

    /// A 32-bit salt from a cluster id, so that two clusters' ids differ.
    pub fn salt(cluster_id: &str) -> u32 {
        (xxhash_rust::xxh3::xxh3_64(cluster_id.as_bytes()) >> 32) as u32
    }
}

impl fmt::Display for EventUid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        write!(
            f,
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            (v >> 96) as u32,
            (v >> 80) as u16,
            (v >> 64) as u16,
            (v >> 48) as u16,
            (v & 0xffff_ffff_ffff) as u64
        )
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn hlc_ticks_past_both_the_clock_and_the_last_value() {
        let last = Hlc::from_millis(1000);
        assert_eq!(last.tick(2000), Hlc::from_millis(2000));
        assert_eq!(last.tick(500), Hlc(last.0 + 1));
        assert_eq!(last.tick(1000).logical(), 1);
        assert_eq!(Hlc::from_millis(7).physical_ms(), 7);
    }

    #[test]
    fn uids_are_distinct_per_place_and_print_like_uuids() {
        let a = EventUid::new(1, 2, 3);
        assert_ne!(a, EventUid::new(1, 2, 4));
        assert_ne!(a, EventUid::new(1, 3, 3));
        assert_ne!(a, EventUid::new(2, 2, 3));
        assert_eq!(a.to_string(), "00000001-0000-0002-0000-000000000003");
    }

    #[test]
    fn partitions_are_stable_for_a_key() {
        // Clients and nodes must agree forever: this value is part of the format.
        let pinned: Vec<PartitionId> =
            [&b"user-42"[..], b"a", b"order:1001"].iter().map(|k| partition_for_key(k, 16)).collect();
        assert_eq!(pinned, vec![13, 15, 15]);
        assert_eq!(partition_for_key(b"", 1), 0);
    }

    proptest! {
        #[test]
        fn every_key_maps_inside_the_partition_range(key in prop::collection::vec(any::<u8>(), 0..64), count in 1u32..1000) {
            prop_assert!(partition_for_key(&key, count) < count);
        }

        #[test]
        fn hlc_ticks_are_strictly_increasing(start in 0u64..u64::MAX / 2, clocks in prop::collection::vec(0u64..1u64 << 40, 1..50)) {
            let mut last = Hlc(start);
            for now in clocks {
                let next = last.tick(now);
                prop_assert!(next > last);
                last = next;
            }
        }
    }
}
