//! Scanning the log record by record, markers included: for readers that
//! must see every record in order (rebuilding a partition's state) or pick
//! a few from their headers (the pieces of a processor checkpoint).
//!
//! An offset alone cannot say where a reader stands among the markers that
//! share it, so a scan keeps its place as a record's position in its
//! segment and goes on from there, batch after batch, without reading the
//! same record twice.

use std::ops::ControlFlow;

use super::segment::{IndexEntry, SegmentReader};
use super::{EventLog, EventLogError, RecordHeader, io_err};

/// What a scan does with a record, judged from its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// Read it and hand it to the visitor.
    Take,
    /// Pass over it unread.
    Skip,
    /// End the scan here.
    Stop,
}

/// Where a scan goes on: record `index` of the segment that starts at `base`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Place {
    base: u64,
    index: usize,
}

/// The records to read next, and where the scan goes on after them.
struct Batch {
    records: Vec<(SegmentReader, IndexEntry)>,
    next: Option<Place>,
}

impl EventLog {
    /// Visits, in order, every record from `from` on (markers at `from`
    /// included) that `pick` takes, until `pick` says stop, `visit` breaks,
    /// or the log ends. Records are read about `batch_bytes` at a time, and
    /// at least one at a time whatever its size. `pick` must judge a header
    /// the same way each time it is asked.
    pub fn scan<E: From<EventLogError>>(
        &self,
        from: u64,
        batch_bytes: usize,
        pick: impl Fn(&RecordHeader) -> Pick,
        mut visit: impl FnMut(RecordHeader, Vec<u8>) -> Result<ControlFlow<()>, E>,
    ) -> Result<(), E> {
        let mut place = None;
        loop {
            let batch = self.plan_scan(from, place, batch_bytes, &pick)?;
            for (reader, entry) in batch.records {
                let (header, payload) = reader.read_record(&entry).map_err(io_err(&self.dir))?;
                if visit(header, payload)?.is_break() {
                    return Ok(());
                }
            }
            match batch.next {
                Some(next) => place = Some(next),
                None => return Ok(()),
            }
        }
    }

    fn plan_scan(
        &self,
        from: u64,
        place: Option<Place>,
        batch_bytes: usize,
        pick: &impl Fn(&RecordHeader) -> Pick,
    ) -> Result<Batch, EventLogError> {
        let segments = self.read_segments();
        let list = &segments.list;
        let start = list.first().map_or(0, |s| s.base_offset);
        let (mut segment, mut index) = match place {
            None => {
                if from < start {
                    return Err(EventLogError::BelowStart { offset: from, start });
                }
                let segment = list.partition_point(|s| s.end_offset() < from);
                let index = list.get(segment).map_or(0, |s| {
                    s.entries.partition_point(|e| {
                        e.header.end_offset() < from || (e.header.end_offset() == from && e.header.count > 0)
                    })
                });
                (segment, index)
            }
            Some(place) => match list.binary_search_by_key(&place.base, |s| s.base_offset) {
                Ok(segment) => (segment, place.index),
                // Retention removed the segment the scan was in.
                Err(_) => return Err(EventLogError::BelowStart { offset: place.base, start }),
            },
        };
        let mut records = Vec::new();
        let mut bytes = 0usize;
        while let Some(current) = list.get(segment) {
            let reader = current.reader();
            while let Some(entry) = current.entries.get(index) {
                match pick(&entry.header) {
                    Pick::Stop => return Ok(Batch { records, next: None }),
                    Pick::Skip => {}
                    Pick::Take => {
                        if !records.is_empty() && bytes + entry.size as usize > batch_bytes {
                            return Ok(Batch { records, next: Some(Place { base: current.base_offset, index }) });
                        }
                        bytes += entry.size as usize;
                        records.push((reader.clone(), *entry));
                    }
                }
                index += 1;
            }
            segment += 1;
            index = 0;
        }
        Ok(Batch { records, next: None })
    }
}
