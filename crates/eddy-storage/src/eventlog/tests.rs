use std::fs::OpenOptions;
use std::io::Write;

use proptest::prelude::*;

use super::*;

fn header(first_offset: u64, count: u32, hlc: u64) -> RecordHeader {
    RecordHeader { tag: 1, first_offset, count, first_hlc: hlc, last_hlc: hlc + u64::from(count.max(1)) - 1 }
}

fn small() -> EventLogConfig {
    EventLogConfig { segment_bytes: 300, ..EventLogConfig::default() }
}

/// Appends `batches` records of `per` offsets each with a 50-byte payload.
fn fill(log: &EventLog, batches: u64, per: u32) {
    for _ in 0..batches {
        let next = log.next_offset();
        let payload = vec![next as u8; 50];
        log.append(&header(next, per, (next + 1) << 16), &payload).unwrap();
    }
}

#[test]
fn appends_are_read_back_from_any_offset() {
    let dir = tempfile::tempdir().unwrap();
    let (log, recovery) = EventLog::open(dir.path(), small(), 0).unwrap();
    assert_eq!(recovery.cut_bytes, 0);
    fill(&log, 20, 3);
    assert_eq!(log.next_offset(), 60);
    assert!(log.files().len() > 1, "small segments roll");
    let records = log.read(31, usize::MAX).unwrap();
    assert_eq!(records[0].0.first_offset, 30, "the record holding offset 31");
    assert_eq!(records.last().unwrap().0.end_offset(), 60);
    assert!(records.windows(2).all(|w| w[0].0.end_offset() == w[1].0.first_offset));
    assert_eq!(records[0].1, vec![30u8; 50]);
    assert!(log.read(60, 100).unwrap().is_empty());
    assert_eq!(log.read(0, 1).unwrap().len(), 1, "at least one record");
}

#[test]
fn an_append_must_continue_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = EventLog::open(dir.path(), small(), 10).unwrap();
    assert_eq!(log.next_offset(), 10);
    assert!(matches!(log.append(&header(11, 1, 1), b"x"), Err(EventLogError::NotNext { offset: 11, next: 10 })));
    log.append(&header(10, 0, 1), b"marker").unwrap();
    log.append(&header(10, 2, 1), b"events").unwrap();
    assert_eq!(log.next_offset(), 12);
    // A marker at an offset is read with the records that follow it.
    let records = log.read(10, usize::MAX).unwrap();
    assert_eq!(records.len(), 2);
}

#[test]
fn reopening_restores_everything_including_sealed_indexes() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (log, _) = EventLog::open(dir.path(), small(), 0).unwrap();
        fill(&log, 25, 2);
        log.sync().unwrap();
    }
    let (log, recovery) = EventLog::open(dir.path(), small(), 0).unwrap();
    assert_eq!(recovery.cut_bytes, 0);
    assert_eq!(recovery.reason, None);
    assert_eq!(log.next_offset(), 50);
    assert_eq!(log.read(0, usize::MAX).unwrap().len(), 25);
    fill(&log, 1, 2);
    assert_eq!(log.next_offset(), 52);
}

fn active_segment(dir: &Path) -> PathBuf {
    let mut segments: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segments.sort();
    segments.pop().unwrap()
}

#[test]
fn a_torn_tail_is_cut_and_reported_never_served() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (log, _) = EventLog::open(dir.path(), EventLogConfig::default(), 0).unwrap();
        fill(&log, 5, 1);
    }
    let path = active_segment(dir.path());
    let len = fs::metadata(&path).unwrap().len();
    // Half of a record, as a crash in the middle of a write leaves it.
    let partial = record::encode(&header(5, 1, 9 << 16), &[7u8; 50]);
    OpenOptions::new().append(true).open(&path).unwrap().write_all(&partial[..30]).unwrap();
    let (log, recovery) = EventLog::open(dir.path(), EventLogConfig::default(), 0).unwrap();
    assert_eq!(recovery.cut_bytes, 30);
    assert!(recovery.reason.is_some());
    assert_eq!(fs::metadata(&path).unwrap().len(), len, "the tail is cut off the file");
    assert_eq!(log.next_offset(), 5);
    fill(&log, 1, 1);
    assert_eq!(log.read(5, usize::MAX).unwrap()[0].1, vec![5u8; 50]);
}

#[test]
fn a_corrupt_record_and_everything_after_it_are_cut() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (log, _) = EventLog::open(dir.path(), EventLogConfig::default(), 0).unwrap();
        fill(&log, 6, 1);
    }
    let path = active_segment(dir.path());
    let mut bytes = fs::read(&path).unwrap();
    let record_len = bytes.len() / 6;
    bytes[3 * record_len + record::HEADER_LEN + 2] ^= 0xFF;
    fs::write(&path, &bytes).unwrap();
    let (log, recovery) = EventLog::open(dir.path(), EventLogConfig::default(), 0).unwrap();
    assert!(recovery.reason.as_deref().unwrap_or("").contains("checksum"), "{recovery:?}");
    assert_eq!(recovery.cut_bytes, 3 * record_len as u64);
    assert_eq!(log.next_offset(), 3);
    assert_eq!(log.read(0, usize::MAX).unwrap().len(), 3);
}

#[test]
fn corruption_in_a_sealed_segment_drops_the_segments_after_it() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (log, _) = EventLog::open(dir.path(), small(), 0).unwrap();
        fill(&log, 30, 1);
    }
    let mut segments: Vec<PathBuf> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segments.sort();
    assert!(segments.len() >= 3);
    // Damage the first segment and its index, as a bad sector would.
    let mut bytes = fs::read(&segments[0]).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xFF;
    fs::write(&segments[0], &bytes).unwrap();
    fs::remove_file(segments[0].with_extension("idx")).unwrap();
    let (log, recovery) = EventLog::open(dir.path(), small(), 0).unwrap();
    assert_eq!(recovery.dropped_segments, segments.len() - 1);
    assert_eq!(log.files().len(), 1);
    assert!(log.next_offset() < 30);
    // The log goes on from the cut.
    fill(&log, 2, 1);
}

#[test]
fn offsets_are_found_by_time() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = EventLog::open(dir.path(), small(), 0).unwrap();
    for i in 0..10u64 {
        log.append(&header(i * 2, 2, (1000 + i * 10) << 16), b"x").unwrap();
    }
    assert_eq!(log.offset_at_time(0), 0);
    assert_eq!(log.offset_at_time(1050 << 16), 10);
    assert_eq!(log.offset_at_time(1050 << 16), 10);
    assert_eq!(log.offset_at_time((1050 << 16) + 1), 10, "the record whose newest hlc reaches the time");
    assert_eq!(log.offset_at_time(1051 << 16), 12);
    assert_eq!(log.offset_at_time(5000 << 16), 20);
}

#[test]
fn retention_drops_whole_old_segments_by_size_and_age() {
    let dir = tempfile::tempdir().unwrap();
    let config = EventLogConfig { segment_bytes: 300, retention_bytes: 700, retention_ms: 0 };
    let (log, _) = EventLog::open(dir.path(), config, 0).unwrap();
    fill(&log, 30, 1);
    let before = log.files().len();
    let removed = log.apply_retention(0, None).unwrap();
    assert!(removed > 0 && log.size_bytes() <= 700 + 300, "{removed} of {before}");
    let start = log.start_offset();
    assert!(start > 0);
    assert!(matches!(log.read(0, 10), Err(EventLogError::BelowStart { offset: 0, .. })));
    assert_eq!(log.read(start, usize::MAX).unwrap()[0].0.first_offset, start);

    let aged = tempfile::tempdir().unwrap();
    let config = EventLogConfig { segment_bytes: 300, retention_bytes: u64::MAX, retention_ms: 1000 };
    let (log, _) = EventLog::open(aged.path(), config, 0).unwrap();
    fill(&log, 30, 1); // the event at offset o has hlc ms o + 1
    assert!(log.apply_retention(1015, None).unwrap() > 0);
    // Only segments wholly older than 15 ms went: offsets 14.. stay.
    let start = log.start_offset();
    assert!(start > 0 && start <= 14, "start {start}");
    assert_eq!(log.apply_retention(1015, None).unwrap(), 0, "retention is idempotent");
    assert!(log.apply_retention(1_000_000, None).unwrap() > 0);
    assert!(!log.files().is_empty(), "the active segment always stays");
    assert_eq!(log.next_offset(), 30);
}

#[test]
fn a_corrupt_length_field_allocates_nothing_and_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (log, _) = EventLog::open(dir.path(), EventLogConfig::default(), 0).unwrap();
        fill(&log, 3, 1);
    }
    let path = active_segment(dir.path());
    let mut bytes = fs::read(&path).unwrap();
    let record_len = bytes.len() / 3;
    // The third record claims a payload of 4 GiB.
    bytes[2 * record_len + 4..2 * record_len + 8].copy_from_slice(&u32::MAX.to_le_bytes());
    fs::write(&path, &bytes).unwrap();
    let (log, recovery) = EventLog::open(dir.path(), EventLogConfig::default(), 0).unwrap();
    assert!(recovery.reason.as_deref().unwrap_or("").contains("runs past the end"), "{recovery:?}");
    assert_eq!(log.next_offset(), 2);
}

fn marker(log: &EventLog, size: usize, tag: u8) {
    let next = log.next_offset();
    let header = RecordHeader { tag, first_offset: next, count: 0, first_hlc: 0, last_hlc: 0 };
    log.append(&header, &vec![tag; size]).unwrap();
}

#[test]
fn event_readers_pass_over_markers_of_any_size() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = EventLog::open(dir.path(), small(), 0).unwrap();
    fill(&log, 2, 2);
    // A marker far above the read limit, right where a reader stands.
    marker(&log, 5_000, 9);
    fill(&log, 2, 2);
    let records = log.read(4, 100).unwrap();
    assert_eq!((records.len(), records[0].0.count), (1, 0), "read serves the marker alone");
    let events = log.read_events(4, 100).unwrap();
    assert_eq!(events[0].0.first_offset, 4);
    assert!(events.iter().all(|(h, _)| h.count > 0 && h.end_offset() > 4));
    // Reading on from the last record's end reaches the end of the log.
    let mut next = 0;
    while let Some((last, _)) = log.read_events(next, 100).unwrap().last() {
        next = last.end_offset();
    }
    assert_eq!(next, log.next_offset());
}

#[test]
fn markers_alone_never_roll_into_a_segment_of_the_same_name() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = EventLog::open(dir.path(), small(), 0).unwrap();
    fill(&log, 1, 1);
    for _ in 0..5 {
        marker(&log, 200, 9);
    }
    fill(&log, 1, 1);
    marker(&log, 200, 9);
    let (reopened, recovery) = EventLog::open(dir.path(), small(), 0).unwrap();
    assert_eq!(recovery.reason, None);
    assert_eq!(reopened.next_offset(), 2);
    let mut seen = 0;
    reopened
        .scan::<EventLogError>(
            0,
            1,
            |_| Pick::Take,
            |_, _| {
                seen += 1;
                Ok(std::ops::ControlFlow::Continue(()))
            },
        )
        .unwrap();
    assert_eq!(seen, 8);
}

#[test]
fn a_scan_visits_every_record_once_in_order_and_stops_when_told() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = EventLog::open(dir.path(), small(), 0).unwrap();
    fill(&log, 3, 1);
    for _ in 0..4 {
        marker(&log, 120, 9);
    }
    marker(&log, 10, 8);
    fill(&log, 6, 1);
    marker(&log, 10, 8);
    fill(&log, 2, 1);
    let mut all = Vec::new();
    log.scan::<EventLogError>(
        3,
        150,
        |_| Pick::Take,
        |h, _| {
            all.push((h.first_offset, h.count, h.tag));
            Ok(std::ops::ControlFlow::Continue(()))
        },
    )
    .unwrap();
    let mut expected = vec![(3, 0, 9); 4];
    expected.push((3, 0, 8));
    expected.extend((3..9).map(|o| (o, 1, 1)));
    expected.push((9, 0, 8));
    expected.extend((9..11).map(|o| (o, 1, 1)));
    assert_eq!(all, expected, "small batches still visit each record once");
    // Only tag 8, and stop past offset 5: payloads of the rest are never read.
    let mut picked = Vec::new();
    log.scan::<EventLogError>(
        0,
        usize::MAX,
        |h| match (h.first_offset, h.tag) {
            (o, _) if o > 5 => Pick::Stop,
            (_, 8) => Pick::Take,
            _ => Pick::Skip,
        },
        |h, payload| {
            picked.push((h.first_offset, payload.len()));
            Ok(std::ops::ControlFlow::Continue(()))
        },
    )
    .unwrap();
    assert_eq!(picked, vec![(3, 10)]);
    let mut first = None;
    log.scan::<EventLogError>(
        0,
        usize::MAX,
        |_| Pick::Take,
        |h, _| {
            first = Some(h.first_offset);
            Ok(std::ops::ControlFlow::Break(()))
        },
    )
    .unwrap();
    assert_eq!(first, Some(0));
}

#[test]
fn retention_keeps_what_a_reader_still_needs() {
    let dir = tempfile::tempdir().unwrap();
    let config = EventLogConfig { segment_bytes: 300, retention_bytes: 0, retention_ms: 0 };
    let (log, _) = EventLog::open(dir.path(), config, 0).unwrap();
    fill(&log, 30, 1);
    assert!(log.apply_retention(0, Some(12)).unwrap() > 0);
    assert!(log.start_offset() <= 12, "offset 12 is kept: start {}", log.start_offset());
    assert_eq!(log.apply_retention(0, Some(12)).unwrap(), 0);
    assert!(log.read(12, 10).is_ok());
    assert!(log.apply_retention(0, None).unwrap() > 0);
    assert!(log.start_offset() > 12);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn any_truncation_leaves_a_readable_prefix(batches in 1u64..30, cut in 0usize..4000) {
        let dir = tempfile::tempdir().unwrap();
        {
            let (log, _) = EventLog::open(dir.path(), EventLogConfig::default(), 0).unwrap();
            fill(&log, batches, 2);
        }
        let path = active_segment(dir.path());
        let len = fs::metadata(&path).unwrap().len() as usize;
        let keep = len.saturating_sub(cut % (len + 1));
        OpenOptions::new().write(true).open(&path).unwrap().set_len(keep as u64).unwrap();
        let (log, _) = EventLog::open(dir.path(), EventLogConfig::default(), 0).unwrap();
        let records = log.read(0, usize::MAX).unwrap();
        prop_assert_eq!(records.len() as u64 * 2, log.next_offset());
        for (i, (h, payload)) in records.iter().enumerate() {
            prop_assert_eq!(h.first_offset, i as u64 * 2);
            prop_assert_eq!(payload, &vec![(i * 2) as u8; 50]);
        }
    }
}
