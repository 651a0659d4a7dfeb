//! Closed segments' index files: written in the background once a segment is closed, read at
//! open instead of the segment, and only a cache: the log read through them is the log read
//! from the segments, and a damaged or missing one is made again.

// A test: a failed unwrap is a failure with its message, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use bytes::Bytes;
use rapport_domain::{AccountId, EventId, Limits, Timestamp};
use rapport_segments::{Options, SegmentLog};
use rapport_store::{AppendBatch, Direction, EventLog, NewEvent, StoredEvent, StreamHead};

const SMALL: Options = Options { segment_bytes: 4096 };

fn account(n: u64) -> AccountId {
    AccountId::parse(format!("account-{n}"), &Limits::default()).unwrap()
}

fn event(n: u64) -> NewEvent {
    let mut id = [0u8; 16];
    id[8..].copy_from_slice(&n.to_be_bytes());
    id[6] = 0x40;
    NewEvent {
        event_id: EventId::from_bytes(id),
        payload: Bytes::from(format!("event {n} ").repeat(1 + (n % 17) as usize)),
    }
}

/// 600 events over 7 streams, in batches of 1 to 5, synced now and then.
fn fill(dir: &Path) {
    let log = SegmentLog::open_with(dir, SMALL).unwrap();
    let mut versions = [0u64; 7];
    let mut n = 1;
    while n <= 600 {
        let which = (n * 7 / 5) % 7;
        let count = 1 + n % 5;
        let events: Vec<NewEvent> = (n..n + count).map(event).collect();
        log.append(AppendBatch {
            account_id: &account(which),
            expected_version: versions[which as usize],
            recorded_at: Timestamp::from_unix_nanos(n as i64),
            recorded_by: "",
            events: &events,
        })
        .unwrap();
        versions[which as usize] += count;
        n += count;
        if n % 7 == 0 {
            log.sync().unwrap();
        }
    }
    log.sync().unwrap();
}

/// Everything a reader can ask of the log: every event, each stream's head and events
/// (backwards), and the position of each id tried (0: not found).
#[derive(Debug, PartialEq)]
struct Everything {
    events: Vec<StoredEvent>,
    heads: Vec<Option<StreamHead>>,
    streams: Vec<Vec<StoredEvent>>,
    found: Vec<u64>,
}

fn everything(log: &SegmentLog) -> Everything {
    Everything {
        events: log.read_all(0, usize::MAX).unwrap(),
        heads: (0..7).map(|n| log.stream_head(&account(n)).unwrap()).collect(),
        streams: (0..7).map(|n| log.read_stream(&account(n), 0, Direction::Backwards, usize::MAX).unwrap()).collect(),
        found: (1..=620).map(|n| log.find_event(&event(n).event_id).unwrap().map_or(0, |e| e.position)).collect(),
    }
}

fn index_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().ends_with(".index"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_closed_segment_gets_an_index_and_reading_through_them_is_reading_the_segments() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path());
    let segments = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("segment-"))
        .filter(|e| !e.as_ref().unwrap().file_name().to_string_lossy().contains('.'))
        .count();
    assert!(segments > 10, "the log spans many segments: {segments}");
    assert_eq!(index_files(dir.path()).len(), segments - 1, "every segment but the last has its index");

    let through_indexes = everything(&SegmentLog::open_with(dir.path(), SMALL).unwrap());
    assert_eq!(through_indexes.events.len(), 600);
    assert_eq!(through_indexes.found.iter().filter(|&&p| p > 0).count(), 600, "every id is found, and no other");

    // The same log read from the segments alone (opening makes the index files again).
    for file in index_files(dir.path()) {
        std::fs::remove_file(file).unwrap();
    }
    let from_segments = everything(&SegmentLog::open_with(dir.path(), SMALL).unwrap());
    assert!(through_indexes == from_segments, "the log read through index files differs from the segments'");
    assert_eq!(index_files(dir.path()).len(), segments - 1, "opening made the missing index files");
}

#[test]
fn a_damaged_index_is_made_again_from_its_segment() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path());
    let before = everything(&SegmentLog::open_with(dir.path(), SMALL).unwrap());
    let damaged = index_files(dir.path())[3].clone();
    let mut bytes = std::fs::read(&damaged).unwrap();
    bytes[100] ^= 0x01;
    std::fs::write(&damaged, &bytes).unwrap();
    let after = everything(&SegmentLog::open_with(dir.path(), SMALL).unwrap());
    assert!(before == after, "a damaged index changed what the log reads");
    assert_ne!(std::fs::read(&damaged).unwrap(), bytes, "the damaged index was written again");

    // An index cut short, and a partial one left by a crash while writing it.
    std::fs::write(&damaged, &bytes[..50]).unwrap();
    std::fs::write(dir.path().join("segment-000000000005.index.partial"), b"half").unwrap();
    let after = everything(&SegmentLog::open_with(dir.path(), SMALL).unwrap());
    assert!(before == after);
    assert!(!dir.path().join("segment-000000000005.index.partial").exists(), "the partial index is removed");
}
