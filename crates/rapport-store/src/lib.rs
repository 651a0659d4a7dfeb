//! The storage contract of Rapport's log.
//!
//! The log is a sequence of [`StoredEvent`]s in one gap-free total order (positions 1, 2, 3,
//! ...), partitioned into per-account streams (versions 1, 2, 3, ... per account), each event
//! chained to the previous event of its stream by a SHA-256 hash. [`EventLog`] is the trait a
//! backend implements; this crate never depends on a storage engine. What makes the order and
//! the chain is here too, so a backend only stores: [`Staging`] stamps every appended event,
//! and the trait's own `read_stream` and `read_all` work out what a read returns. Backends
//! prove themselves by passing the [`contract`] suite (feature `contract`).
//!
//! Event bodies are opaque here: the store keeps the encoded event (`payload`) byte for byte,
//! hashes it, and never interprets it.

mod hash;
mod memory;
mod projection;
mod read;
mod stamp;
mod verify;

#[cfg(feature = "contract")]
pub mod contract;

use std::ops::Range;

use bytes::Bytes;
use rapport_domain::{AccountId, EventId, Timestamp};

pub use hash::{GENESIS_HASH, Hash, HashScheme, chain_hash};
pub use memory::{MemoryEvents, MemoryLog};
pub use projection::{MemoryProjections, ProjectionStore};
pub use stamp::{PublishedLog, StagedEnd, Staging};
pub use verify::{ChainBreak, ChainCheck, hex};

/// One recorded event: the envelope the log gave it and the event's encoded bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// The stream the event belongs to.
    pub account_id: AccountId,
    /// Place in the stream, from 1.
    pub version: u64,
    /// Place in the whole log, from 1, gap-free.
    pub position: u64,
    /// Server time of recording; never decreases along positions. (On a replicated log that
    /// several nodes write, each node stamps its own clock, kept from going back behind what it
    /// has read: times never decrease along a stream, nor along one node's appends.)
    pub recorded_at: Timestamp,
    /// The client's event id (unique in the whole log).
    pub event_id: EventId,
    /// The authenticated identity that appended it (a token's identity); empty when the
    /// server ran without authentication. Hashed (when not empty), so it cannot be altered.
    pub recorded_by: String,
    /// The encoded event, exactly as hashed.
    pub payload: Bytes,
    /// The hash of the previous event of the stream; [`GENESIS_HASH`] for version 1.
    pub prev_hash: Hash,
    /// [`chain_hash`] of this record.
    pub hash: Hash,
    /// How `hash` is made: with the position (the embedded engines) or without it (the
    /// replicated log).
    pub scheme: HashScheme,
}

impl StoredEvent {
    /// The hash this record should carry, recomputed from its content.
    pub fn computed_hash(&self) -> Hash {
        chain_hash(self)
    }
}

/// An event to add to a stream: its id and its encoded bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// The client's event id; must not be recorded yet.
    pub event_id: EventId,
    /// The encoded event.
    pub payload: Bytes,
}

/// Events to add, in order, to the end of one account's stream.
#[derive(Debug, Clone, Copy)]
pub struct AppendBatch<'a> {
    /// The stream.
    pub account_id: &'a AccountId,
    /// The version of the stream's last event that the caller decided against (0: the stream
    /// is empty). The append fails with [`StoreError::WrongVersion`] if it is not so.
    pub expected_version: u64,
    /// Server time of recording. The store records `max(recorded_at, last recorded_at)` so
    /// that recording times never decrease along positions, whatever the clock does.
    pub recorded_at: Timestamp,
    /// The authenticated identity appending the batch, recorded with every event of it
    /// ([`StoredEvent::recorded_by`]); empty without authentication.
    pub recorded_by: &'a str,
    /// At least one event.
    pub events: &'a [NewEvent],
}

impl AppendBatch<'_> {
    /// The checks every log makes before it writes the batch, so that all refuse the same
    /// batches with the same error: at least one event, `current` (the stream's version as
    /// the log stands, with the batches staged before this one) the expected version, and no
    /// id repeated within the batch or already held (`recorded` says where an id is, if the
    /// log holds it).
    pub fn check(
        &self,
        current: u64,
        mut recorded: impl FnMut(&EventId) -> Result<Option<u64>, StoreError>,
    ) -> Result<(), StoreError> {
        if self.events.is_empty() {
            return Err(StoreError::InvalidBatch("a batch needs at least one event".into()));
        }
        if current != self.expected_version {
            return Err(StoreError::WrongVersion {
                account_id: self.account_id.clone(),
                expected: self.expected_version,
                current,
            });
        }
        for (index, new) in self.events.iter().enumerate() {
            if self.events[..index].iter().any(|e| e.event_id == new.event_id) {
                return Err(StoreError::DuplicateEventId { event_id: new.event_id, position: 0 });
            }
            if let Some(position) = recorded(&new.event_id)? {
                return Err(StoreError::DuplicateEventId { event_id: new.event_id, position });
            }
        }
        Ok(())
    }
}

/// Where an appended batch landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Version of the batch's first event.
    pub first_version: u64,
    /// Position of the batch's first event; the others follow without gaps.
    pub first_position: u64,
    /// The recording time the store gave every event of the batch.
    pub recorded_at: Timestamp,
}

/// The last event of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamHead {
    /// Its version (the number of events in the stream).
    pub version: u64,
    /// Its position in the log.
    pub position: u64,
    /// Its hash, which the next event of the stream chains to.
    pub hash: Hash,
}

/// Which way a stream is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Oldest first.
    Forwards,
    /// Newest first.
    Backwards,
}

/// Why the store could not do what was asked.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The stream's last version is not the one the caller decided against. Nothing was written.
    #[error("account \"{account_id}\" is at version {current}, not {expected}")]
    WrongVersion {
        /// The stream.
        account_id: AccountId,
        /// What the caller expected.
        expected: u64,
        /// What the stream holds.
        current: u64,
    },
    /// An event id of the batch is already recorded, or repeats within the batch. Nothing
    /// was written.
    #[error("event {event_id} is already recorded at position {position}")]
    DuplicateEventId {
        /// The id.
        event_id: EventId,
        /// Where the recorded event with this id is; 0 when the id repeats within the batch.
        position: u64,
    },
    /// The batch breaks the contract (no events, say). Nothing was written. A caller bug.
    #[error("invalid append: {0}")]
    InvalidBatch(String),
    /// The storage medium is out of space. Appends may succeed again once space is freed.
    #[error("the store is out of space: {0}")]
    Full(String),
    /// The storage medium failed. Appended events whose sync failed may or may not be durable.
    #[error("the store failed: {0}")]
    Io(String),
    /// Stored data does not decode or does not hold together. The store should not be served
    /// from until it is repaired or restored.
    #[error("the store is corrupt: {0}")]
    Corrupt(String),
}

/// ENOSPC on Linux and macOS.
const NO_SPACE: i32 = 28;

/// An I/O error as the store's: out of space (appends may succeed once space is freed), or
/// another failure; `doing` says what failed, for the message.
pub fn io_error(error: &std::io::Error, doing: &str) -> StoreError {
    if error.kind() == std::io::ErrorKind::StorageFull || error.raw_os_error() == Some(NO_SPACE) {
        StoreError::Full(format!("{doing}: {error}"))
    } else {
        StoreError::Io(format!("{doing}: {error}"))
    }
}

/// The log's storage: one writer appends, any number of readers read.
///
/// Appends are two-phase, so that one flush can cover many requests (group commit):
/// [`EventLog::append_all`] adds batches atomically and makes them visible to every read of
/// this log; [`EventLog::sync`] makes everything appended so far durable. A crash loses at most
/// the batches appended since the last successful sync, and only whole batches, latest first
/// (the log after recovery is a prefix of the log before the crash).
///
/// A store closed (or a process killed) without a sync keeps a whole-batch prefix of what
/// was appended since the last sync: possibly all of it, possibly none.
///
/// A backend implements storage only: `append_all` runs every batch through a [`Staging`],
/// which checks it and stamps its events (versions, positions, recording times, hashes), and
/// writes what it is given; the read rules of [`EventLog::read_stream`] and
/// [`EventLog::read_all`] are worked out here, and the backend reads the versions or positions
/// they select ([`EventLog::read_versions`], [`EventLog::read_positions`]).
///
/// `append_all` and `sync` are called by one writer at a time; reads may run concurrently with
/// them and with each other. Reads return appended events whether or not they are synced yet:
/// a server that must only show durable events caps reads at its own durable position.
pub trait EventLog: Send + Sync + 'static {
    /// Appends several batches in order, each atomically (every event of it or none), and
    /// returns each one's result. A backend may write them together; a crash still keeps a
    /// whole-batch prefix. The writer of a group commit appends a group this way.
    ///
    /// Each batch is checked against the log including the batches before it in the call, and
    /// a failing one writes nothing and leaves the others be. Each event gets the version after
    /// its stream's head and the position after the log's last, the recording time
    /// `max(batch.recorded_at, last recorded_at)`, a hash chained to the previous event of its
    /// stream and `batch.recorded_by` (all of which [`Staging::stage`] does). A batch fails
    /// with `InvalidBatch` if it holds no events, else with `WrongVersion` if the stream's head
    /// is not `batch.expected_version`, else with `DuplicateEventId` if an id is already
    /// recorded (or staged by an earlier batch of the call) or repeats within the batch
    /// (checked in that order). After those checks a backend may refuse a batch it cannot
    /// store (`InvalidBatch`: the segment log's batch larger than a segment), which writes
    /// nothing of it; and if its write fails (`Full`, `Io`), every batch of the call that
    /// passed fails with that error, and none of them is visible. (A replicated log writes each
    /// batch on its own, and a batch whose write failed with `Io` may yet become visible: the
    /// cluster may have stored it without the acknowledgement arriving. Another writer may also
    /// get there first, and then a batch that passed the log's own checks is refused with
    /// `WrongVersion` or `DuplicateEventId` once the log has read the other writer's events.) A caller that retries a request must therefore look its ids up first
    /// ([`EventLog::find_event`]): the retry's expected version no longer holds.
    fn append_all(&self, batches: &[AppendBatch<'_>]) -> Vec<Result<Appended, StoreError>>;

    /// Appends one batch, exactly as [`EventLog::append_all`] appends a call of one batch.
    fn append(&self, batch: AppendBatch<'_>) -> Result<Appended, StoreError> {
        let mut results = self.append_all(std::slice::from_ref(&batch));
        results
            .pop()
            .unwrap_or_else(|| Err(StoreError::InvalidBatch("the log returned no result for the batch".into())))
    }

    /// Makes every event appended so far durable. Returns only once they are on stable storage.
    fn sync(&self) -> Result<(), StoreError>;

    /// The position of the log's last event; 0 when the log is empty. It moves only once a
    /// whole batch is readable; a read beyond it while an append runs may see part of that
    /// batch, so readers that need whole batches cap their reads at it (or at their own
    /// durable position).
    fn last_position(&self) -> Result<u64, StoreError>;

    /// The last event of a stream; `None` when the stream is empty. Like `last_position`, it
    /// moves once the whole batch is readable.
    fn stream_head(&self, account_id: &AccountId) -> Result<Option<StreamHead>, StoreError>;

    /// The recorded event with this id, if any.
    fn find_event(&self, event_id: &EventId) -> Result<Option<StoredEvent>, StoreError>;

    /// Up to `limit` events in position order, starting at `from_position`: 0 reads from 1, a
    /// position beyond the last reads nothing, a limit of 0 reads nothing. Reads up to the
    /// [`EventLog::last_position`] it sees first, through [`EventLog::read_positions`].
    fn read_all(&self, from_position: u64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        let positions = read::log_positions(self.last_position()?, from_position, limit);
        if positions.is_empty() {
            return Ok(Vec::new());
        }
        self.read_positions(positions)
    }

    /// Up to `limit` events of one stream in version order, starting at `from_version`.
    /// Forwards, 0 reads from version 1 and a version beyond the head reads nothing;
    /// backwards, 0 reads from the last version, and a version beyond the head reads from the
    /// head. A limit of 0, or a stream without events, reads nothing. The head is the
    /// [`EventLog::stream_head`] it sees first; the events are read through
    /// [`EventLog::read_versions`].
    fn read_stream(
        &self,
        account_id: &AccountId,
        from_version: u64,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let head = self.stream_head(account_id)?.map_or(0, |h| h.version);
        let versions = read::stream_versions(head, from_version, direction, limit);
        if versions.is_empty() {
            return Ok(Vec::new());
        }
        self.read_versions(account_id, versions, direction)
    }

    /// The events at `positions` (not empty, every one at or below a
    /// [`EventLog::last_position`] this log has shown), in position order: what
    /// [`EventLog::read_all`] selected. A position the log does not hold fails with `Corrupt`.
    fn read_positions(&self, positions: Range<u64>) -> Result<Vec<StoredEvent>, StoreError>;

    /// Asks the log to call `notify` whenever it grows by events another writer may have
    /// appended (the other nodes of a replicated log), once they are readable and durable.
    /// It may call it for this writer's own appends too; a caller compares positions. A log
    /// only this process writes never calls it: that is the default, which drops `notify`.
    fn on_foreign_appends(&self, notify: Box<dyn Fn() + Send + Sync>) {
        drop(notify);
    }

    /// The events of one stream at `versions` (not empty, every one at or below a
    /// [`EventLog::stream_head`] this log has shown), oldest first forwards and newest first
    /// backwards: what [`EventLog::read_stream`] selected. A version the log does not hold
    /// fails with `Corrupt`.
    fn read_versions(
        &self,
        account_id: &AccountId,
        versions: Range<u64>,
        direction: Direction,
    ) -> Result<Vec<StoredEvent>, StoreError>;
}
