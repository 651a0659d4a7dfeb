//! Logs held in memory: [`MemoryEvents`], recorded events indexed by position, stream and id
//! (what a replicated log's node reads from, and what [`MemoryLog`] keeps), and [`MemoryLog`],
//! the reference implementation of the contract, for fast tests. Nothing survives the
//! process; `sync` has nothing to do.

use std::{
    collections::HashMap,
    ops::Range,
    sync::{Mutex, MutexGuard, PoisonError},
};

use rapport_domain::{AccountId, EventId, Timestamp};

use crate::{AppendBatch, Appended, Direction, EventLog, PublishedLog, Staging, StoreError, StoredEvent, StreamHead};

/// Recorded events in memory, in position order, with each stream's versions and each id's
/// position: the reads of [`EventLog`] over them, and [`PublishedLog`] for a [`Staging`].
#[derive(Debug, Default)]
pub struct MemoryEvents {
    /// Every event; the event at position p is `events[p - 1]`.
    events: Vec<StoredEvent>,
    /// Per stream, the positions of its events; version v is `streams[id][v - 1]`.
    streams: HashMap<AccountId, Vec<u64>>,
    /// Event id to position.
    ids: HashMap<EventId, u64>,
    /// The latest recording time held (`None`: empty).
    latest_recorded_at: Option<Timestamp>,
}

impl MemoryEvents {
    /// Adds the next event of the log: it must be at the position after the last and at the
    /// version after its stream's head, with an id not held yet; `Corrupt` (and nothing added)
    /// if not. Its hashes are the caller's to check.
    pub fn push(&mut self, event: StoredEvent) -> Result<(), StoreError> {
        let (position, version) = (event.position, event.version);
        let after = self.last_position() + 1;
        if position != after {
            return Err(StoreError::Corrupt(format!(
                "the event at position {position} comes after position {}",
                after - 1
            )));
        }
        let stream = self.streams.get(&event.account_id).map_or(0, Vec::len) as u64;
        if version != stream + 1 {
            return Err(StoreError::Corrupt(format!(
                "the event at position {position} is version {version} of \"{}\", which is at version {stream}",
                event.account_id
            )));
        }
        if let Some(held) = self.ids.get(&event.event_id) {
            return Err(StoreError::Corrupt(format!(
                "the event at position {position} has the id of the event at position {held}"
            )));
        }
        self.streams.entry(event.account_id.clone()).or_default().push(position);
        self.ids.insert(event.event_id, position);
        self.latest_recorded_at = Some(self.latest_recorded_at.map_or(event.recorded_at, |t| t.max(event.recorded_at)));
        self.events.push(event);
        Ok(())
    }

    /// The position of the last event; 0 when empty.
    pub fn last_position(&self) -> u64 {
        self.events.len() as u64
    }

    /// The latest recording time of any event held; `None` when empty. On a log with one
    /// writer it is the last event's.
    pub fn latest_recorded_at(&self) -> Option<Timestamp> {
        self.latest_recorded_at
    }

    /// The event at `position`; `Corrupt` if it is not held (an index that points past the
    /// log, which the code never makes).
    fn event_at(&self, position: u64) -> Result<StoredEvent, StoreError> {
        let index = position.checked_sub(1).and_then(|i| usize::try_from(i).ok());
        index
            .and_then(|i| self.events.get(i))
            .cloned()
            .ok_or_else(|| StoreError::Corrupt(format!("position {position} is not in the log")))
    }

    /// The last event of a stream.
    pub fn head(&self, account_id: &AccountId) -> Result<Option<StreamHead>, StoreError> {
        let Some(&position) = self.streams.get(account_id).and_then(|s| s.last()) else { return Ok(None) };
        let event = self.event_at(position)?;
        Ok(Some(StreamHead { version: event.version, position, hash: event.hash }))
    }

    /// The event with this id.
    pub fn find(&self, event_id: &EventId) -> Result<Option<StoredEvent>, StoreError> {
        self.ids.get(event_id).map(|&position| self.event_at(position)).transpose()
    }

    /// [`EventLog::read_positions`] over the events held.
    pub fn read_positions(&self, positions: Range<u64>) -> Result<Vec<StoredEvent>, StoreError> {
        positions.map(|position| self.event_at(position)).collect()
    }

    /// [`EventLog::read_versions`] over the events held.
    pub fn read_versions(
        &self,
        account_id: &AccountId,
        versions: Range<u64>,
        direction: Direction,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let (first, end) = (versions.start, versions.end);
        let positions = self
            .streams
            .get(account_id)
            .and_then(|s| s.get(first.checked_sub(1)? as usize..end.checked_sub(1)? as usize))
            .ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "versions {first} to {} of \"{account_id}\" are not all in the log",
                    end - 1
                ))
            })?;
        let read = |&position: &u64| self.event_at(position);
        match direction {
            Direction::Forwards => positions.iter().map(read).collect(),
            Direction::Backwards => positions.iter().rev().map(read).collect(),
        }
    }
}

impl PublishedLog for &MemoryEvents {
    fn stream_head(&mut self, account_id: &AccountId) -> Result<Option<StreamHead>, StoreError> {
        self.head(account_id)
    }

    fn event_position(&mut self, event_id: &EventId) -> Result<Option<u64>, StoreError> {
        Ok(self.ids.get(event_id).copied())
    }
}

/// A log held in memory. Any number of writers may share one (each `append_all` is checked
/// and stamped against the log as it stands); those that ask are told of every append
/// ([`EventLog::on_foreign_appends`]), as a replicated log tells its nodes.
#[derive(Default)]
pub struct MemoryLog {
    inner: Mutex<MemoryEvents>,
    watchers: Mutex<Vec<Box<dyn Fn() + Send + Sync>>>,
}

impl std::fmt::Debug for MemoryLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryLog").field("events", &self.lock().last_position()).finish_non_exhaustive()
    }
}

impl MemoryLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, MemoryEvents> {
        // A panic while holding the lock cannot leave a half-applied batch (batches are
        // staged fully before the first mutation), so a poisoned lock is still consistent.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl EventLog for MemoryLog {
    fn append_all(&self, batches: &[AppendBatch<'_>]) -> Vec<Result<Appended, StoreError>> {
        let mut inner = self.lock();
        let mut staging = Staging::new(inner.last_position(), inner.latest_recorded_at());
        let mut written: Vec<StoredEvent> = Vec::new();
        let mut published: &MemoryEvents = &inner;
        let mut results: Vec<_> = batches
            .iter()
            .map(|batch| {
                staging.stage(batch, &mut published, |events| {
                    written.extend_from_slice(events);
                    Ok(())
                })
            })
            .collect();
        let appended = !written.is_empty();
        for event in written {
            // The staging checked what `push` checks; a refusal would be a bug in one of them.
            if let Err(error) = inner.push(event) {
                results.iter_mut().for_each(|result| *result = Err(error.clone()));
                break;
            }
        }
        drop(inner);
        if appended {
            self.watchers.lock().unwrap_or_else(PoisonError::into_inner).iter().for_each(|notify| notify());
        }
        results
    }

    fn sync(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn last_position(&self) -> Result<u64, StoreError> {
        Ok(self.lock().last_position())
    }

    fn stream_head(&self, account_id: &AccountId) -> Result<Option<StreamHead>, StoreError> {
        self.lock().head(account_id)
    }

    fn find_event(&self, event_id: &EventId) -> Result<Option<StoredEvent>, StoreError> {
        self.lock().find(event_id)
    }

    fn read_positions(&self, positions: Range<u64>) -> Result<Vec<StoredEvent>, StoreError> {
        self.lock().read_positions(positions)
    }

    fn read_versions(
        &self,
        account_id: &AccountId,
        versions: Range<u64>,
        direction: Direction,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.lock().read_versions(account_id, versions, direction)
    }

    fn on_foreign_appends(&self, notify: Box<dyn Fn() + Send + Sync>) {
        self.watchers.lock().unwrap_or_else(PoisonError::into_inner).push(notify);
    }
}
