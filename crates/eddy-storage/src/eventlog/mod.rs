//! A partition's durable event log: records in segment files with
//! checksums, an in-memory index per segment (offsets and hlc range of every
//! record, also written beside sealed segments), retention by size and age.
//!
//! Offsets are dense: every record starts where the previous one ended.
//! A record covers `count` offsets (its events) or none (a marker). The log
//! does not interpret payloads; the partition state machine does.
//!
//! Writes are buffered by the OS until [`EventLog::sync`]; a crash may lose
//! the unsynced tail, and opening the log finds a torn or corrupt tail, cuts
//! it off and reports it, so a damaged record is never served. Everything
//! after the first bad record is cut, so what remains is always a prefix.
//!
//! One writer appends; any number of readers read concurrently: readers see
//! a record once its append has returned.

mod record;
mod scan;
mod segment;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

pub use record::RecordHeader;
pub use scan::Pick;

/// Whether `name` is the name of a segment file of a log, and its first offset.
pub fn parse_file_name(name: &str) -> Option<u64> {
    if name.contains('/') {
        return None;
    }
    parse_segment_name(name)
}
use segment::{IndexEntry, Segment, SegmentReader, parse_segment_name};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventLogConfig {
    /// A segment is sealed and a new one started past this size.
    pub segment_bytes: u64,
    /// Oldest sealed segments are deleted while the log is larger.
    pub retention_bytes: u64,
    /// Sealed segments whose newest event is older are deleted (0: keep).
    pub retention_ms: u64,
}

impl Default for EventLogConfig {
    fn default() -> Self {
        EventLogConfig { segment_bytes: 64 * 1024 * 1024, retention_bytes: u64::MAX, retention_ms: 0 }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EventLogError {
    #[error("event log {dir}: {source}")]
    Io { dir: String, source: io::Error },
    #[error("offset {offset} is not the log's next offset {next}")]
    NotNext { offset: u64, next: u64 },
    #[error("offset {offset} is below the log's start {start}: older events were removed by retention")]
    BelowStart { offset: u64, start: u64 },
    #[error("event log {dir}: segment {segment} does not continue the previous one (expected offset {expected})")]
    Gap { dir: String, segment: String, expected: u64 },
}

impl From<EventLogError> for io::Error {
    fn from(err: EventLogError) -> Self {
        let kind = match &err {
            EventLogError::Io { source, .. } => source.kind(),
            _ => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, err.to_string())
    }
}

/// What opening the log found and repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    pub segments: usize,
    /// Bytes of torn or corrupt tail that were cut off.
    pub cut_bytes: u64,
    /// Segments after a corrupt record, deleted because nothing after the
    /// first bad record can be trusted in order.
    pub dropped_segments: usize,
    pub reason: Option<String>,
}

/// A file of the log and how much of it belongs to the log now.
#[derive(Debug, Clone)]
pub struct FileSpan {
    pub name: String,
    pub file: Arc<fs::File>,
    pub len: u64,
}

#[derive(Debug)]
struct Segments {
    list: Vec<Segment>,
}

/// The log; share it with `Arc`.
#[derive(Debug)]
pub struct EventLog {
    dir: PathBuf,
    config: EventLogConfig,
    segments: RwLock<Segments>,
    writer: Mutex<()>,
}

fn io_err(dir: &Path) -> impl Fn(io::Error) -> EventLogError + '_ {
    move |source| EventLogError::Io { dir: dir.display().to_string(), source }
}

impl EventLog {
    /// Opens the log in `dir` (created if missing), starting at
    /// `start_offset` when it has no segment yet.
    pub fn open(dir: &Path, config: EventLogConfig, start_offset: u64) -> Result<(Self, Recovery), EventLogError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let mut bases: Vec<u64> = fs::read_dir(dir)
            .map_err(io_err(dir))?
            .filter_map(|entry| entry.ok()?.file_name().to_str().and_then(parse_segment_name))
            .collect();
        bases.sort_unstable();
        let mut recovery = Recovery::default();
        let mut list: Vec<Segment> = Vec::new();
        for (i, base) in bases.iter().enumerate() {
            let path = dir.join(segment::segment_name(*base));
            if recovery.reason.is_some() {
                // Past a cut, nothing can follow in order.
                fs::remove_file(&path).map_err(io_err(dir))?;
                let _ = fs::remove_file(path.with_extension("idx"));
                recovery.dropped_segments += 1;
                continue;
            }
            if let Some(prev) = list.last()
                && prev.end_offset() != *base
            {
                return Err(EventLogError::Gap {
                    dir: dir.display().to_string(),
                    segment: path.display().to_string(),
                    expected: prev.end_offset(),
                });
            }
            let sealed = i + 1 < bases.len();
            let (segment, outcome) = Segment::open(&path, *base, sealed).map_err(io_err(dir))?;
            recovery.cut_bytes += outcome.cut_bytes;
            if outcome.reason.is_some() {
                recovery.reason = outcome.reason.map(|why| format!("{}: {why}", path.display()));
            }
            list.push(segment);
        }
        if let Some(last) = list.last_mut() {
            // A segment cut in the middle, or the last one, takes new writes.
            last.sealed = false;
        } else {
            list.push(Segment::create(dir, start_offset).map_err(io_err(dir))?);
            sync_dir(dir).map_err(io_err(dir))?;
        }
        recovery.segments = list.len();
        let log = EventLog {
            dir: dir.to_path_buf(),
            config,
            segments: RwLock::new(Segments { list }),
            writer: Mutex::new(()),
        };
        Ok((log, recovery))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn read_segments(&self) -> std::sync::RwLockReadGuard<'_, Segments> {
        self.segments.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write_segments(&self) -> std::sync::RwLockWriteGuard<'_, Segments> {
        self.segments.write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The offset the next record must start at.
    pub fn next_offset(&self) -> u64 {
        self.read_segments().list.last().map_or(0, Segment::end_offset)
    }

    /// The oldest offset still in the log.
    pub fn start_offset(&self) -> u64 {
        self.read_segments().list.first().map_or(0, |s| s.base_offset)
    }

    /// The header of the last record, if any.
    pub fn last_record(&self) -> Option<RecordHeader> {
        let segments = self.read_segments();
        segments.list.iter().rev().find_map(|s| s.entries.last().map(|e| e.header))
    }

    /// Bytes of all segments.
    pub fn size_bytes(&self) -> u64 {
        self.read_segments().list.iter().map(|s| s.len).sum()
    }

    /// Appends a record; it must start at [`next_offset`](Self::next_offset).
    pub fn append(&self, header: &RecordHeader, payload: &[u8]) -> Result<(), EventLogError> {
        let _writer = self.writer.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (active, pos, next, base) = {
            let segments = self.read_segments();
            let last = segments.list.last();
            (
                last.map(|s| (s.reader(), s.len)),
                last.map_or(0, |s| s.len),
                last.map_or(0, Segment::end_offset),
                last.map_or(u64::MAX, |s| s.base_offset),
            )
        };
        if header.first_offset != next {
            return Err(EventLogError::NotNext { offset: header.first_offset, next });
        }
        // A segment is named after its first offset, so one that covers
        // no offset yet (markers only) takes more records rather than roll
        // into a second segment of the same name.
        let (active, pos) = match active {
            Some((reader, len)) if len < self.config.segment_bytes || next == base => (reader, pos),
            _ => (self.roll(next)?, 0),
        };
        let bytes = record::encode(header, payload);
        active.write(&bytes).map_err(io_err(&self.dir))?;
        let entry = IndexEntry { header: *header, pos, size: bytes.len() as u32 };
        let mut segments = self.write_segments();
        if let Some(last) = segments.list.last_mut() {
            last.entries.push(entry);
            last.len += u64::from(entry.size);
        }
        Ok(())
    }

    /// Seals the active segment and starts a new one at `next`.
    fn roll(&self, next: u64) -> Result<SegmentReader, EventLogError> {
        let fresh = Segment::create(&self.dir, next).map_err(io_err(&self.dir))?;
        let reader = fresh.reader();
        let mut segments = self.write_segments();
        if let Some(last) = segments.list.last_mut() {
            last.seal().map_err(io_err(&self.dir))?;
        }
        segments.list.push(fresh);
        drop(segments);
        sync_dir(&self.dir).map_err(io_err(&self.dir))?;
        Ok(reader)
    }

    /// Makes every appended record durable.
    pub fn sync(&self) -> Result<(), EventLogError> {
        let active = self.read_segments().list.last().map(|s| s.file.clone());
        if let Some(file) = active {
            file.sync_data().map_err(io_err(&self.dir))?;
        }
        Ok(())
    }

    /// Records covering `from` onwards, up to about `max_bytes` (at least
    /// one record when there is one). Empty when `from` is the next offset.
    pub fn read(&self, from: u64, max_bytes: usize) -> Result<Vec<(RecordHeader, Vec<u8>)>, EventLogError> {
        let plan = self.plan_read(from, max_bytes, true)?;
        self.read_planned(plan)
    }

    /// Like [`read`](Self::read), but only the records that cover offsets
    /// (events): markers are passed over unread, whatever their size. Every
    /// record returned ends after `from`, so a reader that goes on from the
    /// last record's end always moves forward.
    pub fn read_events(&self, from: u64, max_bytes: usize) -> Result<Vec<(RecordHeader, Vec<u8>)>, EventLogError> {
        let plan = self.plan_read(from, max_bytes, false)?;
        self.read_planned(plan)
    }

    fn read_planned(
        &self,
        plan: Vec<(SegmentReader, IndexEntry)>,
    ) -> Result<Vec<(RecordHeader, Vec<u8>)>, EventLogError> {
        let mut out = Vec::with_capacity(plan.len());
        for (segment, entry) in plan {
            out.push(segment.read_record(&entry).map_err(io_err(&self.dir))?);
        }
        Ok(out)
    }

    /// Which records to read, chosen under the lock; read after it.
    fn plan_read(
        &self,
        from: u64,
        max_bytes: usize,
        markers: bool,
    ) -> Result<Vec<(SegmentReader, IndexEntry)>, EventLogError> {
        let segments = self.read_segments();
        let start = segments.list.first().map_or(0, |s| s.base_offset);
        if from < start {
            return Err(EventLogError::BelowStart { offset: from, start });
        }
        // A record lies wholly before `from` when it ends before it, or ends
        // at it and covers offsets; a marker at `from` is still read.
        let before =
            |e: &IndexEntry| e.header.end_offset() < from || (e.header.end_offset() == from && e.header.count > 0);
        let first_segment = segments.list.partition_point(|s| s.end_offset() < from);
        let mut plan = Vec::new();
        let mut bytes = 0usize;
        for segment in &segments.list[first_segment.min(segments.list.len())..] {
            let first = segment.entries.partition_point(before);
            let handle = segment.reader();
            for entry in segment.entries[first..].iter().filter(|e| markers || e.header.count > 0) {
                if !plan.is_empty() && bytes + entry.size as usize > max_bytes {
                    return Ok(plan);
                }
                bytes += entry.size as usize;
                plan.push((handle.clone(), *entry));
            }
        }
        Ok(plan)
    }

    /// The first offset whose record's newest hlc is at or after `hlc`; the
    /// next offset when there is none.
    pub fn offset_at_time(&self, hlc: u64) -> u64 {
        let segments = self.read_segments();
        for segment in &segments.list {
            if segment.last_hlc().is_some_and(|last| last >= hlc)
                && let Some(entry) = segment.entries.iter().find(|e| e.header.count > 0 && e.header.last_hlc >= hlc)
            {
                return entry.header.first_offset;
            }
        }
        segments.list.last().map_or(0, Segment::end_offset)
    }

    /// Deletes the oldest sealed segments beyond the size limit or older
    /// than the age limit, but none holding a record at or after
    /// `keep_from` (the records a reader still needs, such as the latest
    /// processor checkpoint); returns how many went.
    pub fn apply_retention(&self, now_ms: u64, keep_from: Option<u64>) -> Result<usize, EventLogError> {
        let _writer = self.writer.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut segments = self.write_segments();
        let mut total: u64 = segments.list.iter().map(|s| s.len).sum();
        let cutoff_ms = now_ms.saturating_sub(self.config.retention_ms);
        let mut removed = 0;
        while segments.list.len() > 1 && segments.list[0].sealed {
            let oldest = &segments.list[0];
            // A marker at a segment's end offset may sit in that segment.
            if keep_from.is_some_and(|keep| oldest.end_offset() >= keep) {
                break;
            }
            let too_big = total > self.config.retention_bytes;
            let too_old =
                self.config.retention_ms > 0 && oldest.last_hlc().is_none_or(|hlc| eddy_hlc_ms(hlc) < cutoff_ms);
            if !(too_big || too_old) {
                break;
            }
            oldest.remove().map_err(io_err(&self.dir))?;
            total -= oldest.len;
            segments.list.remove(0);
            removed += 1;
        }
        Ok(removed)
    }

    /// The log's files and their current lengths, for copying the log to a
    /// new replica. The open handles keep a file readable even if retention
    /// deletes it meanwhile.
    pub fn files(&self) -> Vec<FileSpan> {
        self.read_segments()
            .list
            .iter()
            .map(|s| FileSpan {
                name: s.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
                file: s.file.clone(),
                len: s.len,
            })
            .collect()
    }
}

/// Milliseconds of an hlc (its high 48 bits).
fn eddy_hlc_ms(hlc: u64) -> u64 {
    hlc >> 16
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests;
