//! Rapport's log on [sled], the store of data directories made before the segment log, and the
//! projection store ([`SledProjections`]) the service keeps beside the segment log.
//!
//! # Layout
//!
//! One sled tree holds four kinds of keys, each starting with a one-byte tag so that each kind
//! is a contiguous, ordered range:
//!
//! | key | value | for |
//! |---|---|---|
//! | `e` ‖ position (u64 BE) | the envelope (`rapport.storage.v1.StoredEvent`, protobuf) | the log itself, in position order |
//! | `s` ‖ account id ‖ `0x00` ‖ version (u64 BE) | position (u64 BE) | reading a stream in version order |
//! | `i` ‖ event id (16 bytes) | position (u64 BE) | idempotency: finding an event by its id |
//! | `m` ‖ `format` | format version (u32 BE) | refusing a store this build cannot read |
//!
//! Big-endian integers sort numerically as bytes. Account ids are printable ASCII, so the
//! `0x00` after the id cannot be part of it: one account's stream keys never interleave with
//! another's.
//!
//! # Durability and atomicity
//!
//! All keys of one append go in one `sled::Batch`, which sled applies atomically, also across
//! a crash. sled's periodic background flush is switched off: an event is durable when
//! [`EventLog::sync`] (sled's `flush`, which fsyncs) returns, and only then does the server
//! acknowledge it. Positions and versions are assigned here, from the last key, never from
//! sled's `generate_id` (which is not contiguous and jumps on restart).

mod projections;

pub use projections::SledProjections;

use std::collections::HashMap;
use std::io;
use std::ops::Range;
use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rapport_domain::{AccountId, EventId, Timestamp};
use rapport_envelope::{FORMAT, decode_envelope, encode_envelope};
pub(crate) use rapport_store::io_error;
use rapport_store::{
    AppendBatch, Appended, Direction, EventLog, PublishedLog, Staging, StoreError, StoredEvent, StreamHead,
};

const EVENT: u8 = b'e';
const STREAM: u8 = b's';
const ID: u8 = b'i';
const META_FORMAT: &[u8] = b"mformat";

/// The log, stored in a sled database in one directory.
pub struct SledLog {
    db: sled::Db,
    /// What appends need to know about the end of the log; also serialises appends.
    tail: Mutex<Tail>,
}

struct Tail {
    /// The log's last position (0: empty).
    last_position: u64,
    /// The recording time of the last event (`None`: empty log), so recording times never go
    /// back. Not a sentinel time: a clock before 1970 is odd but is still recorded as given.
    last_recorded_at: Option<Timestamp>,
    /// Stream heads seen so far (filled on first use, kept current by appends).
    heads: HashMap<AccountId, StreamHead>,
}

impl std::fmt::Debug for SledLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledLog").finish_non_exhaustive()
    }
}

impl SledLog {
    /// Opens the log in `dir`, creating the directory and an empty log if there is none.
    ///
    /// Fails with [`StoreError::Corrupt`] if the directory holds a store of another format or
    /// whose last event does not decode.
    pub fn open(dir: &Path) -> Result<SledLog, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| io_error(&e, &format!("creating {}", dir.display())))?;
        let db = open_db(dir)?;
        match db.get(META_FORMAT).map_err(|e| sled_error(e, "reading the format marker"))? {
            Some(value) => {
                let format = <[u8; 4]>::try_from(value.as_ref()).map(u32::from_be_bytes).map_err(|_| {
                    StoreError::Corrupt(format!("the format marker in {} is not a number", dir.display()))
                })?;
                if format != FORMAT {
                    return Err(StoreError::Corrupt(format!(
                        "{} holds a log in format {format}; this build reads format {FORMAT}",
                        dir.display()
                    )));
                }
            }
            None if db.is_empty() => {
                db.insert(META_FORMAT, &FORMAT.to_be_bytes())
                    .map_err(|e| sled_error(e, "writing the format marker"))?;
                db.flush().map_err(|e| sled_error(e, "writing the format marker"))?;
            }
            None => {
                return Err(StoreError::Corrupt(format!(
                    "{} holds data but no format marker; it is not a Rapport log",
                    dir.display()
                )));
            }
        }
        let log =
            SledLog { db, tail: Mutex::new(Tail { last_position: 0, last_recorded_at: None, heads: HashMap::new() }) };
        if let Some(last) = log.last_event()? {
            let mut tail = log.lock();
            tail.last_position = last.position;
            tail.last_recorded_at = Some(last.recorded_at);
        }
        Ok(log)
    }

    fn lock(&self) -> MutexGuard<'_, Tail> {
        // Appends check everything before the one atomic write, so a panic cannot leave the
        // tail describing a half-written batch.
        self.tail.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn last_event(&self) -> Result<Option<StoredEvent>, StoreError> {
        match self.db.scan_prefix([EVENT]).next_back() {
            None => Ok(None),
            Some(entry) => {
                let (key, value) = entry.map_err(|e| sled_error(e, "reading the last event"))?;
                decode(&key, &value).map(Some)
            }
        }
    }

    fn event_at(&self, position: u64) -> Result<StoredEvent, StoreError> {
        let key = event_key(position);
        let value = self
            .db
            .get(key)
            .map_err(|e| sled_error(e, &format!("reading position {position}")))?
            .ok_or_else(|| StoreError::Corrupt(format!("position {position} is indexed but not stored")))?;
        decode(&key, &value)
    }

    /// The event a stream entry (`key` → `value`) points at, checked to be that version of
    /// that stream: an index that disagrees with the log is corruption, not a result.
    fn stream_event(&self, account_id: &AccountId, key: &[u8], value: &[u8]) -> Result<StoredEvent, StoreError> {
        // The key is the stream's prefix (tag, id, 0x00) and then exactly eight version bytes.
        let version = key
            .get(account_id.as_str().len() + 2..)
            .and_then(|rest| <[u8; 8]>::try_from(rest).ok())
            .map(u64::from_be_bytes)
            .ok_or_else(|| StoreError::Corrupt(format!("a stream key of \"{account_id}\" is malformed: {key:?}")))?;
        let event = self.event_at(position_value(value, &format!("version {version} of \"{account_id}\""))?)?;
        if &event.account_id != account_id || event.version != version {
            return Err(StoreError::Corrupt(format!(
                "the event at position {} is version {} of \"{}\", but is indexed as version {version} of \"{account_id}\"",
                event.position, event.version, event.account_id
            )));
        }
        Ok(event)
    }

    /// The position an id entry holds.
    fn id_position(&self, event_id: &EventId) -> Result<Option<u64>, StoreError> {
        match self.db.get(id_key(event_id)).map_err(|e| sled_error(e, &format!("looking up event {event_id}")))? {
            None => Ok(None),
            Some(value) => position_value(&value, &format!("event {event_id}")).map(Some),
        }
    }

    /// The head of a stream, from the cache or, the first time, from the stream's last key.
    fn head(&self, tail: &mut Tail, account_id: &AccountId) -> Result<Option<StreamHead>, StoreError> {
        if let Some(head) = tail.heads.get(account_id) {
            return Ok(Some(*head));
        }
        let Some(entry) = self.db.scan_prefix(stream_prefix(account_id)).next_back() else { return Ok(None) };
        let (key, value) = entry.map_err(|e| sled_error(e, &format!("reading the head of \"{account_id}\"")))?;
        let event = self.stream_event(account_id, &key, &value)?;
        let head = StreamHead { version: event.version, position: event.position, hash: event.hash };
        tail.heads.insert(account_id.clone(), head);
        Ok(Some(head))
    }

    /// The events of one stream its stream entries point at, in the order given.
    fn stream_events(
        &self,
        account_id: &AccountId,
        entries: impl Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        entries
            .map(|entry| {
                let (key, value) = entry.map_err(|e| sled_error(e, &format!("reading \"{account_id}\"")))?;
                self.stream_event(account_id, &key, &value)
            })
            .collect()
    }
}

/// The log as published, for the staging of an append: heads through the tail's cache, ids
/// from the id keys.
struct Published<'a> {
    log: &'a SledLog,
    tail: &'a mut Tail,
}

impl PublishedLog for Published<'_> {
    fn stream_head(&mut self, account_id: &AccountId) -> Result<Option<StreamHead>, StoreError> {
        self.log.head(self.tail, account_id)
    }

    fn event_position(&mut self, event_id: &EventId) -> Result<Option<u64>, StoreError> {
        self.log.id_position(event_id)
    }
}

impl EventLog for SledLog {
    /// Writes every batch that passes its checks in one sled batch: one atomic write and one
    /// log reservation for the whole group, which costs a fraction of one per batch (and makes
    /// the next sync cheaper).
    fn append_all(&self, batches: &[AppendBatch<'_>]) -> Vec<Result<Appended, StoreError>> {
        let mut tail = self.lock();
        let mut staging = Staging::new(tail.last_position, tail.last_recorded_at);
        let mut write = sled::Batch::default();
        let mut published = Published { log: self, tail: &mut tail };
        let results: Vec<_> = batches
            .iter()
            .map(|batch| {
                staging.stage(batch, &mut published, |events| {
                    for event in events {
                        let position = event.position.to_be_bytes();
                        write.insert(&event_key(event.position), encode_envelope(event));
                        write.insert(stream_key(&event.account_id, event.version), &position);
                        write.insert(&id_key(&event.event_id), &position);
                    }
                    Ok(())
                })
            })
            .collect();
        if results.iter().any(Result::is_ok) {
            if let Err(error) = self.db.apply_batch(write) {
                let error = sled_error(error, "appending");
                return results.into_iter().map(|result| result.and(Err(error.clone()))).collect();
            }
            let staged = staging.finish();
            tail.last_position = staged.last_position;
            tail.last_recorded_at = staged.last_recorded_at;
            tail.heads.extend(staged.heads);
        }
        results
    }

    fn sync(&self) -> Result<(), StoreError> {
        self.db.flush().map(drop).map_err(|e| sled_error(e, "syncing"))
    }

    fn last_position(&self) -> Result<u64, StoreError> {
        Ok(self.lock().last_position)
    }

    fn stream_head(&self, account_id: &AccountId) -> Result<Option<StreamHead>, StoreError> {
        let mut tail = self.lock();
        self.head(&mut tail, account_id)
    }

    fn find_event(&self, event_id: &EventId) -> Result<Option<StoredEvent>, StoreError> {
        let Some(position) = self.id_position(event_id)? else { return Ok(None) };
        let event = self.event_at(position)?;
        if &event.event_id != event_id {
            return Err(StoreError::Corrupt(format!(
                "the event at position {position} is {}, but is indexed as {event_id}",
                event.event_id
            )));
        }
        Ok(Some(event))
    }

    fn read_positions(&self, positions: Range<u64>) -> Result<Vec<StoredEvent>, StoreError> {
        let (first, end) = (positions.start, positions.end);
        let events = self
            .db
            .range(event_key(first)..event_key(end))
            .map(|entry| {
                let (key, value) = entry.map_err(|e| sled_error(e, "reading the log"))?;
                decode(&key, &value)
            })
            .collect::<Result<Vec<_>, _>>()?;
        // Keys are positions, so a gap in them is the only way to read fewer events.
        all_of(events, &positions, || format!("positions {first} to {}", end - 1))
    }

    fn read_versions(
        &self,
        account_id: &AccountId,
        versions: Range<u64>,
        direction: Direction,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let (first, end) = (versions.start, versions.end);
        let range = self.db.range(stream_key(account_id, first)..stream_key(account_id, end));
        let events = match direction {
            Direction::Forwards => self.stream_events(account_id, range),
            Direction::Backwards => self.stream_events(account_id, range.rev()),
        }?;
        all_of(events, &versions, || format!("versions {first} to {} of \"{account_id}\"", end - 1))
    }
}

/// `events`, if there is one for each number of `range` (the scan's keys were exactly those
/// numbers, each checked as it was decoded); else `Corrupt`, naming `what` was read.
fn all_of(
    events: Vec<StoredEvent>,
    range: &Range<u64>,
    what: impl FnOnce() -> String,
) -> Result<Vec<StoredEvent>, StoreError> {
    if events.len() as u64 == range.end - range.start {
        return Ok(events);
    }
    Err(StoreError::Corrupt(format!("{} should all be in the log, but {} of them are", what(), events.len())))
}

/// How long to wait for sled's lock on the directory: a log just closed in this process may
/// hold it for a moment while sled's background writers finish.
const LOCK_WAIT: Duration = Duration::from_secs(2);

pub(crate) fn open_db(dir: &Path) -> Result<sled::Db, StoreError> {
    let started = Instant::now();
    loop {
        match sled::Config::new().path(dir).flush_every_ms(None).open() {
            Ok(db) => return Ok(db),
            Err(sled::Error::Io(error)) if is_lock_held(&error) => {
                if started.elapsed() > LOCK_WAIT {
                    return Err(StoreError::Io(format!(
                        "{} is in use: another Rapport server or another open log holds its lock ({error}); stop \
                         it or use another data directory",
                        dir.display()
                    )));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(error) => return Err(sled_error(error, &format!("opening {}", dir.display()))),
        }
    }
}

/// Whether opening failed because another open database holds the directory's lock. sled 0.34
/// reports that as an `Other` error whose message says so (wrapping the `WouldBlock` of the
/// lock call), so the message is the only way to tell.
fn is_lock_held(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::WouldBlock || error.to_string().starts_with("could not acquire lock")
}

fn event_key(position: u64) -> [u8; 9] {
    let mut key = [EVENT; 9];
    key[1..].copy_from_slice(&position.to_be_bytes());
    key
}

fn stream_prefix(account_id: &AccountId) -> Vec<u8> {
    let mut key = Vec::with_capacity(account_id.as_str().len() + 10);
    key.push(STREAM);
    key.extend_from_slice(account_id.as_str().as_bytes());
    key.push(0);
    key
}

fn stream_key(account_id: &AccountId, version: u64) -> Vec<u8> {
    let mut key = stream_prefix(account_id);
    key.extend_from_slice(&version.to_be_bytes());
    key
}

fn id_key(event_id: &EventId) -> [u8; 17] {
    let mut key = [ID; 17];
    key[1..].copy_from_slice(event_id.as_bytes());
    key
}

/// The position an index entry holds; `entry` names the entry for the error.
fn position_value(value: &[u8], entry: &str) -> Result<u64, StoreError> {
    <[u8; 8]>::try_from(value).map(u64::from_be_bytes).map_err(|_| {
        StoreError::Corrupt(format!("the index entry of {entry} holds {} bytes, not a position", value.len()))
    })
}

/// Decodes the envelope stored under `key`, checking that it is whole and in place.
fn decode(key: &[u8], value: &[u8]) -> Result<StoredEvent, StoreError> {
    let at = <[u8; 8]>::try_from(&key[1..]).map(u64::from_be_bytes).unwrap_or(0);
    decode_envelope(at, Bytes::copy_from_slice(value))
}

/// sled's errors as the store's: out of space, other I/O, corruption.
pub(crate) fn sled_error(error: sled::Error, doing: &str) -> StoreError {
    match error {
        sled::Error::Io(error) => io_error(&error, doing),
        sled::Error::Corruption { at, .. } => {
            StoreError::Corrupt(format!("{doing}: sled found corruption at {at:?}; restore the data directory"))
        }
        other => StoreError::Io(format!("{doing}: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rapport_domain::Limits;

    /// ENOSPC on Linux and macOS.
    const NO_SPACE: i32 = 28;

    #[test]
    fn out_of_space_is_full_and_other_io_is_io() {
        let cases = [
            (io::Error::from_raw_os_error(NO_SPACE), "full"),
            (io::Error::from(io::ErrorKind::StorageFull), "full"),
            (io::Error::from(io::ErrorKind::PermissionDenied), "io"),
            (io::Error::other("disk on fire"), "io"),
        ];
        for (error, want) in cases {
            let got = match io_error(&error, "appending") {
                StoreError::Full(message) | StoreError::Io(message) if !message.starts_with("appending: ") => {
                    panic!("{error:?}: the message does not say what failed: {message}")
                }
                StoreError::Full(_) => "full",
                StoreError::Io(_) => "io",
                other => panic!("{error:?} became {other:?}"),
            };
            assert_eq!(got, want, "{error:?}");
        }
    }

    #[test]
    fn sled_errors_map_by_cause() {
        let corruption = sled::Error::Corruption { at: None, bt: () };
        assert!(matches!(sled_error(corruption, "reading"), StoreError::Corrupt(_)));
        let no_space = sled::Error::Io(io::Error::from_raw_os_error(NO_SPACE));
        assert!(matches!(sled_error(no_space, "syncing"), StoreError::Full(_)));
        let bug = sled::Error::ReportableBug("oops".into());
        assert!(matches!(sled_error(bug, "syncing"), StoreError::Io(_)));
    }

    #[test]
    fn a_missing_event_or_stream_entry_fails_the_read_that_should_see_it() {
        let dir = tempfile::tempdir().unwrap();
        let log = SledLog::open(dir.path()).unwrap();
        let acme = AccountId::parse("acme", &Limits::default()).unwrap();
        let events: Vec<rapport_store::NewEvent> = (1..=3u8)
            .map(|n| rapport_store::NewEvent { event_id: EventId::from_bytes([n; 16]), payload: Bytes::from(vec![n]) })
            .collect();
        let batch = AppendBatch {
            account_id: &acme,
            expected_version: 0,
            recorded_at: Timestamp::EPOCH,
            recorded_by: "",
            events: &events,
        };
        log.append(batch).unwrap();
        // Behind the log's back: position 2 and the entry of version 2 are gone.
        log.db.remove(event_key(2)).unwrap();
        log.db.remove(stream_key(&acme, 2)).unwrap();
        let corrupt = |result: Result<Vec<StoredEvent>, StoreError>| match result {
            Err(StoreError::Corrupt(message)) => message,
            other => panic!("expected Corrupt, got {other:?}"),
        };
        let message = corrupt(log.read_all(0, 10));
        assert!(message.starts_with("positions 1 to 3 should all be in the log, but 2 of them are"), "{message}");
        let message = corrupt(log.read_stream(&acme, 0, Direction::Backwards, 10));
        assert!(message.starts_with("versions 1 to 3 of \"acme\" should all be"), "{message}");
        // Reads that do not reach the gap are whole.
        assert_eq!(log.read_all(3, 10).unwrap().len(), 1);
        assert_eq!(log.read_stream(&acme, 3, Direction::Forwards, 10).unwrap().len(), 1);
    }

    #[test]
    fn stream_keys_of_prefix_sharing_accounts_do_not_interleave() {
        let account = |name| AccountId::parse(name, &Limits::default()).unwrap();
        let (a, ab) = (account("a"), account("ab"));
        // Every key of "a" sorts before every key of "ab", whatever the versions.
        assert!(stream_key(&a, u64::MAX) < stream_key(&ab, 0));
        assert!(stream_key(&a, 1) < stream_key(&a, 256), "versions sort numerically");
    }
}
