//! An in-memory log: the reference implementation of the contract, for fast tests.
//! Nothing survives the process; `sync` has nothing to do.

use std::{
    collections::HashMap,
    ops::Range,
    sync::{Mutex, MutexGuard},
};

use rapport_domain::{AccountId, EventId};

use crate::{AppendBatch, Appended, Direction, EventLog, PublishedLog, Staging, StoreError, StoredEvent, StreamHead};

/// A log held in memory.
#[derive(Debug, Default)]
pub struct MemoryLog {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Every event; the event at position p is `events[p - 1]`.
    events: Vec<StoredEvent>,
    /// Per stream, the positions of its events; version v is `streams[id][v - 1]`.
    streams: HashMap<AccountId, Vec<u64>>,
    /// Event id to position.
    ids: HashMap<EventId, u64>,
}

impl MemoryLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-applied batch (batches are
        // staged fully before the first mutation), so a poisoned lock is still consistent.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Inner {
    /// The event at `position`; `Corrupt` if the log does not hold it (an index that points
    /// past the log, which the code never makes).
    fn event_at(&self, position: u64) -> Result<StoredEvent, StoreError> {
        let index = position.checked_sub(1).and_then(|i| usize::try_from(i).ok());
        index
            .and_then(|i| self.events.get(i))
            .cloned()
            .ok_or_else(|| StoreError::Corrupt(format!("position {position} is not in the log")))
    }

    fn head(&self, account_id: &AccountId) -> Result<Option<StreamHead>, StoreError> {
        let Some(&position) = self.streams.get(account_id).and_then(|s| s.last()) else { return Ok(None) };
        let event = self.event_at(position)?;
        Ok(Some(StreamHead { version: event.version, position, hash: event.hash }))
    }
}

impl PublishedLog for &Inner {
    fn stream_head(&mut self, account_id: &AccountId) -> Result<Option<StreamHead>, StoreError> {
        self.head(account_id)
    }

    fn event_position(&mut self, event_id: &EventId) -> Result<Option<u64>, StoreError> {
        Ok(self.ids.get(event_id).copied())
    }
}

impl EventLog for MemoryLog {
    fn append_all(&self, batches: &[AppendBatch<'_>]) -> Vec<Result<Appended, StoreError>> {
        let mut inner = self.lock();
        let last_recorded_at = inner.events.last().map(|e| e.recorded_at);
        let mut staging = Staging::new(inner.events.len() as u64, last_recorded_at);
        let mut written: Vec<StoredEvent> = Vec::new();
        let mut published: &Inner = &inner;
        let results = batches
            .iter()
            .map(|batch| {
                staging.stage(batch, &mut published, |events| {
                    written.extend_from_slice(events);
                    Ok(())
                })
            })
            .collect();
        for event in written {
            inner.streams.entry(event.account_id.clone()).or_default().push(event.position);
            inner.ids.insert(event.event_id, event.position);
            inner.events.push(event);
        }
        results
    }

    fn sync(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn last_position(&self) -> Result<u64, StoreError> {
        Ok(self.lock().events.len() as u64)
    }

    fn stream_head(&self, account_id: &AccountId) -> Result<Option<StreamHead>, StoreError> {
        self.lock().head(account_id)
    }

    fn find_event(&self, event_id: &EventId) -> Result<Option<StoredEvent>, StoreError> {
        let inner = self.lock();
        inner.ids.get(event_id).map(|&position| inner.event_at(position)).transpose()
    }

    fn read_positions(&self, positions: Range<u64>) -> Result<Vec<StoredEvent>, StoreError> {
        let inner = self.lock();
        positions.map(|position| inner.event_at(position)).collect()
    }

    fn read_versions(
        &self,
        account_id: &AccountId,
        versions: Range<u64>,
        direction: Direction,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let inner = self.lock();
        let (first, end) = (versions.start, versions.end);
        let positions = inner
            .streams
            .get(account_id)
            .and_then(|s| s.get(first.checked_sub(1)? as usize..end.checked_sub(1)? as usize))
            .ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "versions {first} to {} of \"{account_id}\" are not all in the log",
                    end - 1
                ))
            })?;
        let read = |&position: &u64| inner.event_at(position);
        match direction {
            Direction::Forwards => positions.iter().map(read).collect(),
            Direction::Backwards => positions.iter().rev().map(read).collect(),
        }
    }
}
