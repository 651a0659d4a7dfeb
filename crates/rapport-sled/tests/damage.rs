//! A damaged or foreign store is refused with `Corrupt`, never served.

use bytes::Bytes;
use rapport_domain::{AccountId, EventId, Limits, Timestamp};
use rapport_sled::SledLog;
use rapport_store::{AppendBatch, EventLog, NewEvent, StoreError};

fn one_event(log: &SledLog) {
    let account_id = AccountId::parse("acme", &Limits::default()).unwrap();
    let events = [NewEvent { event_id: EventId::from_bytes([7; 16]), payload: Bytes::from_static(b"payload") }];
    log.append(AppendBatch {
        account_id: &account_id,
        expected_version: 0,
        recorded_at: Timestamp::EPOCH,
        events: &events,
    })
    .unwrap();
    log.sync().unwrap();
}

/// Writes `value` under `key` directly through sled, behind the log's back.
fn tamper(dir: &std::path::Path, key: &[u8], value: &[u8]) {
    let db = sled::open(dir).unwrap();
    db.insert(key, value).unwrap();
    db.flush().unwrap();
}

#[test]
fn a_store_of_another_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    one_event(&SledLog::open(dir.path()).unwrap());
    tamper(dir.path(), b"mformat", &2u32.to_be_bytes());
    match SledLog::open(dir.path()) {
        Err(StoreError::Corrupt(message)) => assert!(message.contains("format 2"), "{message}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn a_directory_with_foreign_data_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    tamper(dir.path(), b"something", b"else");
    assert!(matches!(SledLog::open(dir.path()), Err(StoreError::Corrupt(m)) if m.contains("not a Rapport log")));
}

#[test]
fn a_garbled_envelope_is_reported_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    one_event(&SledLog::open(dir.path()).unwrap());
    let mut key = vec![b'e'];
    key.extend_from_slice(&1u64.to_be_bytes());
    tamper(dir.path(), &key, b"\xff\xff\xff garbage");
    match SledLog::open(dir.path()).map(|log| log.read_all(0, 10)) {
        Err(StoreError::Corrupt(message)) | Ok(Err(StoreError::Corrupt(message))) => {
            assert!(message.contains("position 1"), "{message}")
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}
