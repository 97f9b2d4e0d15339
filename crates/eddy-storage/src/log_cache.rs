//! The newest entries of one group's Raft log, kept decoded in memory.
//!
//! Right after an entry is appended, replication reads it back to send it
//! to the followers, and once committed the state machine reads it back to
//! apply it. Serving those reads from memory spares a range scan of the
//! storage engine and a decode per read.
//!
//! The cached run is always a suffix of the stored log: appends extend it,
//! truncation and purging cut it as they cut the log, and it is bounded in
//! bytes by dropping its oldest entries. A read that starts before the run
//! goes to the storage engine.

use std::collections::VecDeque;
use std::ops::{Bound, RangeBounds};

/// A contiguous run of entries with their encoded sizes.
#[derive(Debug)]
pub struct LogCache<E> {
    /// Index of the first entry in `entries`.
    first: u64,
    entries: VecDeque<(E, usize)>,
    bytes: usize,
    max_bytes: usize,
}

impl<E> LogCache<E> {
    pub fn new(max_bytes: usize) -> Self {
        LogCache { first: 0, entries: VecDeque::new(), bytes: 0, max_bytes }
    }

    /// One past the last cached index, while anything is cached.
    fn end(&self) -> Option<u64> {
        (!self.entries.is_empty()).then(|| self.first + self.entries.len() as u64)
    }

    /// Records entries just appended to the log, in index order. A run that
    /// does not continue the cached one replaces it: the log was truncated
    /// before, so only the new run is a suffix of it.
    pub fn appended(&mut self, entries: impl IntoIterator<Item = (u64, E, usize)>) {
        for (index, entry, size) in entries {
            if self.end() != Some(index) {
                self.clear();
                self.first = index;
            }
            self.entries.push_back((entry, size));
            self.bytes += size;
        }
        while self.bytes > self.max_bytes {
            let Some((_, size)) = self.entries.pop_front() else { break };
            self.bytes -= size;
            self.first += 1;
        }
    }

    /// The log kept indexes up to `last` only (`None`: nothing).
    pub fn truncated_after(&mut self, last: Option<u64>) {
        let keep = match last {
            Some(last) if last >= self.first => last - self.first + 1,
            _ => 0,
        };
        while self.entries.len() as u64 > keep {
            if let Some((_, size)) = self.entries.pop_back() {
                self.bytes -= size;
            }
        }
    }

    /// The log dropped indexes up to and including `upto`.
    pub fn purged(&mut self, upto: u64) {
        while !self.entries.is_empty() && self.first <= upto {
            if let Some((_, size)) = self.entries.pop_front() {
                self.bytes -= size;
            }
            self.first += 1;
        }
    }

    pub fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }
}

impl<E: Clone> LogCache<E> {
    /// The stored entries in `range`, if the cached run covers its start
    /// (being a suffix, it then holds every stored entry of the range).
    pub fn get(&self, range: &impl RangeBounds<u64>) -> Option<Vec<E>> {
        let end = self.end()?;
        let start = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => i.checked_add(1)?,
            Bound::Unbounded => return None,
        };
        if start < self.first {
            return None;
        }
        let stop = match range.end_bound() {
            Bound::Included(i) => i.saturating_add(1),
            Bound::Excluded(i) => *i,
            Bound::Unbounded => end,
        }
        .min(end);
        let skip = usize::try_from(start - self.first).ok()?;
        let take = usize::try_from(stop.saturating_sub(start)).ok()?;
        Some(self.entries.iter().skip(skip).take(take).map(|(e, _)| e.clone()).collect())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn filled(first: u64, last: u64, max_bytes: usize) -> LogCache<u64> {
        let mut cache = LogCache::new(max_bytes);
        cache.appended((first..=last).map(|i| (i, i, 10)));
        cache
    }

    #[test]
    fn serves_ranges_that_start_inside_the_run() {
        let cache = filled(5, 9, 1000);
        assert_eq!(cache.get(&(5..8)), Some(vec![5, 6, 7]));
        assert_eq!(cache.get(&(7..=20)), Some(vec![7, 8, 9]));
        assert_eq!(cache.get(&(9..)), Some(vec![9]));
        assert_eq!(cache.get(&(10..12)), Some(vec![]));
        assert_eq!(cache.get(&(4..8)), None, "index 4 is not cached");
        assert_eq!(cache.get(&(..8)), None);
    }

    #[test]
    fn a_run_that_does_not_continue_replaces_the_cache() {
        let mut cache = filled(5, 9, 1000);
        cache.appended([(20, 20, 10)]);
        assert_eq!(cache.get(&(9..30)), None);
        assert_eq!(cache.get(&(20..30)), Some(vec![20]));
    }

    #[test]
    fn truncation_and_purge_cut_the_run() {
        let mut cache = filled(5, 9, 1000);
        cache.truncated_after(Some(7));
        assert_eq!(cache.get(&(5..)), Some(vec![5, 6, 7]));
        cache.appended([(8, 80, 10)]);
        assert_eq!(cache.get(&(7..)), Some(vec![7, 80]));
        cache.purged(6);
        assert_eq!(cache.get(&(6..)), None);
        assert_eq!(cache.get(&(7..)), Some(vec![7, 80]));
        cache.truncated_after(Some(3));
        assert_eq!(cache.get(&(7..)), None);
        cache.appended([(4, 4, 10)]);
        assert_eq!(cache.get(&(4..)), Some(vec![4]));
    }

    #[test]
    fn the_byte_bound_drops_the_oldest_entries() {
        let cache = filled(1, 10, 35);
        assert_eq!(cache.get(&(8..)), Some(vec![8, 9, 10]));
        assert_eq!(cache.get(&(7..)), None);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Append(u8),
        Truncate(u8),
        Purge(u8),
        Read(u8, u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (1u8..5).prop_map(Op::Append),
            any::<u8>().prop_map(Op::Truncate),
            any::<u8>().prop_map(Op::Purge),
            (any::<u8>(), any::<u8>()).prop_map(|(a, b)| Op::Read(a, b)),
        ]
    }

    proptest! {
        /// Whatever the cache answers equals what a plain log holds.
        #[test]
        fn answers_as_the_log_would(ops in proptest::collection::vec(op(), 1..80)) {
            let mut log: std::collections::BTreeMap<u64, u64> = Default::default();
            let mut purged_upto = 0u64;
            let mut cache = LogCache::new(64);
            let mut stamp = 0u64;
            for op in ops {
                match op {
                    Op::Append(n) => {
                        let next = log.keys().next_back().map_or(purged_upto + 1, |l| l + 1);
                        let run: Vec<_> = (next..next + u64::from(n)).map(|i| { stamp += 1; (i, stamp, 10) }).collect();
                        for (i, v, _) in &run { log.insert(*i, *v); }
                        cache.appended(run);
                    }
                    Op::Truncate(at) => {
                        let at = u64::from(at).max(purged_upto);
                        log.retain(|i, _| *i <= at);
                        cache.truncated_after(Some(at));
                    }
                    Op::Purge(upto) => {
                        let upto = u64::from(upto).min(log.keys().next_back().copied().unwrap_or(purged_upto));
                        if upto > purged_upto {
                            log.retain(|i, _| *i > upto);
                            purged_upto = upto;
                            cache.purged(upto);
                        }
                    }
                    Op::Read(a, b) => {
                        let (a, b) = (u64::from(a.min(b)), u64::from(a.max(b)));
                        if let Some(got) = cache.get(&(a..b)) {
                            let want: Vec<u64> = log.range(a..b).map(|(_, v)| *v).collect();
                            prop_assert_eq!(got, want);
                        }
                    }
                }
            }
        }
    }
}
