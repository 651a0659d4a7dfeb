//! A damaged, foreign or busy store is refused with a clear error, never served.

// A test: a failed unwrap is a failure with its message, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rapport_domain::{AccountId, EventId, Limits, Timestamp};
use rapport_sled::SledLog;
use rapport_store::{AppendBatch, Direction, EventLog, NewEvent, StoreError};

fn acme() -> AccountId {
    AccountId::parse("acme", &Limits::default()).unwrap()
}

fn event_id(n: u8) -> EventId {
    EventId::from_bytes([n; 16])
}

/// Appends events `1..=n_events` to "acme", one batch each, and syncs.
fn appended(log: &SledLog, n_events: u8) {
    for n in 1..=n_events {
        let events = [NewEvent { event_id: event_id(n), payload: Bytes::from(format!("payload {n}")) }];
        let batch = AppendBatch {
            account_id: &acme(),
            expected_version: u64::from(n) - 1,
            recorded_at: Timestamp::EPOCH,
            recorded_by: "",
            events: &events,
        };
        log.append(batch).unwrap();
    }
    log.sync().unwrap();
}

/// The store in `dir` opened directly with sled, behind the log's back. Waits for the
/// directory lock, which a log dropped just before may hold for a moment.
fn raw(dir: &Path) -> sled::Db {
    let started = Instant::now();
    loop {
        match sled::open(dir) {
            Ok(db) => return db,
            Err(error) if started.elapsed() < Duration::from_secs(2) => {
                eprintln!("waiting for the lock on {}: {error}", dir.display());
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(error) => panic!("opening {} directly: {error}", dir.display()),
        }
    }
}

/// Writes `value` under `key` directly, durably.
fn tamper(dir: &Path, key: &[u8], value: &[u8]) {
    let db = raw(dir);
    db.insert(key, value).unwrap();
    db.flush().unwrap();
}

fn event_key(position: u64) -> Vec<u8> {
    let mut key = vec![b'e'];
    key.extend_from_slice(&position.to_be_bytes());
    key
}

fn stream_key(account: &str, version: u64) -> Vec<u8> {
    let mut key = vec![b's'];
    key.extend_from_slice(account.as_bytes());
    key.push(0);
    key.extend_from_slice(&version.to_be_bytes());
    key
}

fn id_key(n: u8) -> Vec<u8> {
    let mut key = vec![b'i'];
    key.extend_from_slice(event_id(n).as_bytes());
    key
}

/// Asserts that `result` is `Corrupt` with a message containing `needle`.
fn assert_corrupt<T: std::fmt::Debug>(result: Result<T, StoreError>, needle: &str) {
    match result {
        Err(StoreError::Corrupt(message)) => assert!(message.contains(needle), "{needle:?} not in {message:?}"),
        other => panic!("expected Corrupt mentioning {needle:?}, got {other:?}"),
    }
}

#[test]
fn a_store_of_another_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    appended(&SledLog::open(dir.path()).unwrap(), 1);
    tamper(dir.path(), b"mformat", &2u32.to_be_bytes());
    assert_corrupt(SledLog::open(dir.path()), "format 2");
}

#[test]
fn a_directory_with_foreign_data_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    tamper(dir.path(), b"something", b"else");
    assert_corrupt(SledLog::open(dir.path()), "not a Rapport log");
}

#[test]
fn a_garbled_envelope_is_reported_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    appended(&SledLog::open(dir.path()).unwrap(), 2);
    tamper(dir.path(), &event_key(1), b"\xff\xff\xff garbage");
    // Position 2 is the last event, which opening reads; position 1 is only read on demand.
    let log = SledLog::open(dir.path()).unwrap();
    assert_corrupt(log.read_all(0, 10), "position 1");
    assert_corrupt(log.read_stream(&acme(), 0, Direction::Forwards, 10), "position 1");
    assert_corrupt(log.find_event(&event_id(1)), "position 1");
    assert_eq!(log.read_all(2, 10).unwrap().len(), 1, "the intact event still reads");
}

#[test]
fn a_garbled_last_envelope_fails_the_open() {
    let dir = tempfile::tempdir().unwrap();
    appended(&SledLog::open(dir.path()).unwrap(), 2);
    tamper(dir.path(), &event_key(2), &[0x0a, 0x20, 1, 2]); // A 32-byte field holding 2 bytes.
    assert_corrupt(SledLog::open(dir.path()), "position 2");
}

#[test]
fn an_envelope_moved_to_another_position_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    appended(&SledLog::open(dir.path()).unwrap(), 2);
    // A well-formed envelope under the wrong key: the one of position 1, copied to position 2.
    let first = raw(dir.path()).get(event_key(1)).unwrap().expect("position 1 is stored");
    tamper(dir.path(), &event_key(2), &first);
    assert_corrupt(SledLog::open(dir.path()), "says it is at position 1");
}

#[test]
fn a_stream_entry_pointing_at_another_event_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    appended(&SledLog::open(dir.path()).unwrap(), 2);
    tamper(dir.path(), &stream_key("acme", 1), &2u64.to_be_bytes());
    let log = SledLog::open(dir.path()).unwrap();
    assert_corrupt(log.read_stream(&acme(), 0, Direction::Forwards, 10), "indexed as version 1");
    assert_eq!(log.read_all(0, 10).unwrap().len(), 2, "the log itself is intact");
}

#[test]
fn an_id_entry_pointing_elsewhere_or_nowhere_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    appended(&SledLog::open(dir.path()).unwrap(), 2);
    tamper(dir.path(), &id_key(1), &2u64.to_be_bytes());
    tamper(dir.path(), &id_key(2), &9u64.to_be_bytes());
    tamper(dir.path(), &id_key(3), b"short");
    let log = SledLog::open(dir.path()).unwrap();
    assert_corrupt(log.find_event(&event_id(1)), "position 2");
    assert_corrupt(log.find_event(&event_id(2)), "position 9");
    assert_corrupt(log.find_event(&event_id(3)), "5 bytes");
}

#[test]
fn opening_waits_for_a_log_being_closed() {
    let dir = tempfile::tempdir().unwrap();
    let log = SledLog::open(dir.path()).unwrap();
    appended(&log, 1);
    let closer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        drop(log);
    });
    let reopened = SledLog::open(dir.path()).expect("opens once the other log is closed");
    assert_eq!(reopened.last_position().unwrap(), 1);
    closer.join().unwrap();
}

#[test]
fn a_directory_in_use_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let _log = SledLog::open(dir.path()).unwrap();
    match SledLog::open(dir.path()) {
        Err(StoreError::Io(message)) => assert!(message.contains("is in use"), "{message}"),
        other => panic!("expected Io, got {other:?}"),
    }
}
