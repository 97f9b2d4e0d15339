//! One segment file of an event log, and its index of records.
//!
//! A segment is named after the first offset it holds. Its index lists, for
//! every record, the offsets and hlc range it covers and where it starts: it
//! serves both lookups by offset and by time. A sealed segment's index is
//! also written beside it (`.idx`) so that opening a large log need not read
//! every sealed segment again.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::record::{self, HEADER_LEN, Invalid, RecordHeader};

/// Where a record is and what it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    pub header: RecordHeader,
    /// Byte position of the record in the segment file.
    pub pos: u64,
    /// Bytes of the whole record, header included.
    pub size: u32,
}

const INDEX_ENTRY_LEN: usize = 8 + 4 + 8 + 8 + 8 + 4 + 1;

#[derive(Debug, Clone)]
pub struct Segment {
    pub base_offset: u64,
    pub path: PathBuf,
    pub file: Arc<File>,
    /// Bytes of complete records.
    pub len: u64,
    pub entries: Vec<IndexEntry>,
    pub sealed: bool,
}

/// What opening a segment found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanOutcome {
    /// Bytes after the last complete, valid record, cut off.
    pub cut_bytes: u64,
    /// Why the tail was cut, when it was.
    pub reason: Option<String>,
}

pub fn segment_name(base_offset: u64) -> String {
    format!("{base_offset:020}.seg")
}

pub fn parse_segment_name(name: &str) -> Option<u64> {
    name.strip_suffix(".seg")?.parse().ok()
}

fn index_path(path: &Path) -> PathBuf {
    path.with_extension("idx")
}

impl Segment {
    /// Creates an empty segment that starts at `base_offset`.
    pub fn create(dir: &Path, base_offset: u64) -> io::Result<Self> {
        let path = dir.join(segment_name(base_offset));
        let file = OpenOptions::new().read(true).append(true).create_new(true).open(&path)?;
        Ok(Segment { base_offset, path, file: Arc::new(file), len: 0, entries: Vec::new(), sealed: false })
    }

    /// Opens a segment, reading its records (or its index, when sealed and
    /// the index matches) and cutting off any torn or corrupt tail.
    pub fn open(path: &Path, base_offset: u64, sealed: bool) -> io::Result<(Self, ScanOutcome)> {
        let file = OpenOptions::new().read(true).append(true).open(path)?;
        let file_len = file.metadata()?.len();
        if sealed && let Some(entries) = read_index(path, base_offset, file_len) {
            let segment =
                Segment { base_offset, path: path.to_path_buf(), file: Arc::new(file), len: file_len, entries, sealed };
            return Ok((segment, ScanOutcome::default()));
        }
        let (entries, len, reason) = scan(&file, base_offset)?;
        let mut outcome = ScanOutcome::default();
        if len < file_len {
            file.set_len(len)?;
            file.sync_data()?;
            outcome = ScanOutcome { cut_bytes: file_len - len, reason };
        }
        let segment = Segment { base_offset, path: path.to_path_buf(), file: Arc::new(file), len, entries, sealed };
        Ok((segment, outcome))
    }

    /// The offset after the last record.
    pub fn end_offset(&self) -> u64 {
        self.entries.last().map_or(self.base_offset, |e| e.header.end_offset())
    }

    pub fn last_hlc(&self) -> Option<u64> {
        self.entries.iter().rev().find(|e| e.header.count > 0).map(|e| e.header.last_hlc)
    }

    /// A handle to read this segment's records without holding the index.
    pub fn reader(&self) -> SegmentReader {
        SegmentReader { path: self.path.clone(), file: self.file.clone() }
    }

    /// Marks the segment full: makes it durable and writes its index.
    pub fn seal(&mut self) -> io::Result<()> {
        self.file.sync_data()?;
        write_index(&self.path, &self.entries)?;
        self.sealed = true;
        Ok(())
    }

    /// Deletes the segment's files.
    pub fn remove(&self) -> io::Result<()> {
        fs::remove_file(&self.path)?;
        match fs::remove_file(index_path(&self.path)) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => Err(err),
            _ => Ok(()),
        }
    }
}

/// Reads and writes a segment's file without its index.
#[derive(Debug, Clone)]
pub struct SegmentReader {
    path: PathBuf,
    file: Arc<File>,
}

impl SegmentReader {
    /// Appends an encoded record. Only the log's writer calls it.
    pub fn write(&self, bytes: &[u8]) -> io::Result<()> {
        (&*self.file).write_all(bytes)
    }

    /// Reads the record an index entry points at, checking it.
    pub fn read_record(&self, entry: &IndexEntry) -> io::Result<(RecordHeader, Vec<u8>)> {
        let mut buf = vec![0u8; entry.size as usize];
        self.file.read_exact_at(&mut buf, entry.pos)?;
        let (header, payload) = record::decode(&buf).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: record at {}: {e:?}", self.path.display(), entry.pos),
            )
        })?;
        Ok((header, payload.to_vec()))
    }
}

/// Reads records from the start; returns the index, the length of the valid
/// prefix, and why reading stopped early.
fn scan(file: &File, base_offset: u64) -> io::Result<(Vec<IndexEntry>, u64, Option<String>)> {
    let file_len = file.metadata()?.len();
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut entries = Vec::new();
    let mut pos = 0u64;
    let mut expected = base_offset;
    let mut head = [0u8; HEADER_LEN];
    let mut buf = Vec::new();
    loop {
        match read_full(&mut reader, &mut head)? {
            0 => return Ok((entries, pos, None)),
            n if n < HEADER_LEN => return Ok((entries, pos, Some("torn record header".into()))),
            _ => {}
        }
        let len = match record::payload_len(&head) {
            Ok(len) => len,
            Err(err) => return Ok((entries, pos, Some(format!("{err:?} at byte {pos}")))),
        };
        // The length is not checked yet (the checksum comes after it): a
        // record cannot be longer than what is left of the file, so nothing
        // larger is allocated.
        if pos + (HEADER_LEN + len) as u64 > file_len {
            return Ok((entries, pos, Some(format!("record at byte {pos} runs past the end of the segment"))));
        }
        buf.clear();
        buf.extend_from_slice(&head);
        buf.resize(HEADER_LEN + len, 0);
        if read_full(&mut reader, &mut buf[HEADER_LEN..])? < len {
            return Ok((entries, pos, Some("torn record payload".into())));
        }
        let header = match record::decode(&buf) {
            Ok((header, _)) => header,
            Err(Invalid::Short) => return Ok((entries, pos, Some("torn record".into()))),
            Err(Invalid::Corrupt(why)) => return Ok((entries, pos, Some(format!("{why} at byte {pos}")))),
        };
        if header.first_offset != expected {
            let why = format!("record at byte {pos} starts at offset {}, expected {expected}", header.first_offset);
            return Ok((entries, pos, Some(why)));
        }
        let size = (HEADER_LEN + len) as u32;
        entries.push(IndexEntry { header, pos, size });
        pos += u64::from(size);
        expected = header.end_offset();
    }
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(filled)
}

fn write_index(path: &Path, entries: &[IndexEntry]) -> io::Result<()> {
    let mut buf = Vec::with_capacity(entries.len() * INDEX_ENTRY_LEN + 4);
    for e in entries {
        buf.extend_from_slice(&e.header.first_offset.to_le_bytes());
        buf.extend_from_slice(&e.header.count.to_le_bytes());
        buf.extend_from_slice(&e.header.first_hlc.to_le_bytes());
        buf.extend_from_slice(&e.header.last_hlc.to_le_bytes());
        buf.extend_from_slice(&e.pos.to_le_bytes());
        buf.extend_from_slice(&e.size.to_le_bytes());
        buf.push(e.header.tag);
    }
    let crc = crc32fast::hash(&buf);
    buf.extend_from_slice(&crc.to_le_bytes());
    let tmp = index_path(path).with_extension("idx.tmp");
    let mut file = File::create(&tmp)?;
    file.write_all(&buf)?;
    file.sync_data()?;
    fs::rename(&tmp, index_path(path))
}

/// The index of a sealed segment, if its file is intact and matches the
/// segment; `None` means the segment must be scanned.
fn read_index(path: &Path, base_offset: u64, segment_len: u64) -> Option<Vec<IndexEntry>> {
    let buf = fs::read(index_path(path)).ok()?;
    let (body, crc) = buf.split_at(buf.len().checked_sub(4)?);
    if crc32fast::hash(body) != u32::from_le_bytes(crc.try_into().ok()?) || body.len() % INDEX_ENTRY_LEN != 0 {
        return None;
    }
    let mut entries = Vec::with_capacity(body.len() / INDEX_ENTRY_LEN);
    let mut expected = base_offset;
    let mut pos = 0u64;
    for chunk in body.chunks_exact(INDEX_ENTRY_LEN) {
        let u64_at = |i: usize| u64::from_le_bytes(chunk[i..i + 8].try_into().unwrap_or_default());
        let u32_at = |i: usize| u32::from_le_bytes(chunk[i..i + 4].try_into().unwrap_or_default());
        let header = RecordHeader {
            first_offset: u64_at(0),
            count: u32_at(8),
            first_hlc: u64_at(12),
            last_hlc: u64_at(20),
            tag: chunk[40],
        };
        let entry = IndexEntry { header, pos: u64_at(28), size: u32_at(36) };
        if header.first_offset != expected || entry.pos != pos {
            return None;
        }
        expected = header.end_offset();
        pos += u64::from(entry.size);
        entries.push(entry);
    }
    (pos == segment_len).then_some(entries)
}
