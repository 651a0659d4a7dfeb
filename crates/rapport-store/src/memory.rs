//! An in-memory log: the reference implementation of the contract, for fast tests.
//! Nothing survives the process; `sync` has nothing to do.

use std::{
    collections::HashMap,
    sync::{Mutex, MutexGuard},
};

use rapport_domain::{AccountId, EventId};

use crate::{AppendBatch, Appended, Direction, EventLog, GENESIS_HASH, StoreError, StoredEvent, StreamHead};

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
        // checked fully before the first mutation), so a poisoned lock is still consistent.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Inner {
    fn event_at(&self, position: u64) -> StoredEvent {
        self.events[(position - 1) as usize].clone()
    }
}

impl EventLog for MemoryLog {
    fn append(&self, batch: AppendBatch<'_>) -> Result<Appended, StoreError> {
        let mut inner = self.lock();
        let stream = inner.streams.get(batch.account_id);
        let current = stream.map_or(0, |s| s.len() as u64);
        batch.check(current, |id| Ok(inner.ids.get(id).copied()))?;
        let mut prev_hash = stream.and_then(|s| s.last()).map_or(GENESIS_HASH, |&p| inner.event_at(p).hash);
        let last = inner.events.last();
        let recorded_at = last.map_or(batch.recorded_at, |e| e.recorded_at.max(batch.recorded_at));
        let first_position = inner.events.len() as u64 + 1;
        for (offset, new) in batch.events.iter().enumerate() {
            let version = current + 1 + offset as u64;
            let position = first_position + offset as u64;
            let mut event = StoredEvent {
                account_id: batch.account_id.clone(),
                version,
                position,
                recorded_at,
                event_id: new.event_id,
                recorded_by: batch.recorded_by.to_owned(),
                payload: new.payload.clone(),
                prev_hash,
                hash: GENESIS_HASH,
            };
            event.hash = event.computed_hash();
            prev_hash = event.hash;
            inner.events.push(event);
            inner.streams.entry(batch.account_id.clone()).or_default().push(position);
            inner.ids.insert(new.event_id, position);
        }
        Ok(Appended { first_version: current + 1, first_position, recorded_at })
    }

    fn sync(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn last_position(&self) -> Result<u64, StoreError> {
        Ok(self.lock().events.len() as u64)
    }

    fn stream_head(&self, account_id: &AccountId) -> Result<Option<StreamHead>, StoreError> {
        let inner = self.lock();
        Ok(inner.streams.get(account_id).and_then(|s| s.last()).map(|&position| {
            let event = inner.event_at(position);
            StreamHead { version: event.version, position, hash: event.hash }
        }))
    }

    fn find_event(&self, event_id: &EventId) -> Result<Option<StoredEvent>, StoreError> {
        let inner = self.lock();
        Ok(inner.ids.get(event_id).map(|&position| inner.event_at(position)))
    }

    fn read_all(&self, from_position: u64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        let inner = self.lock();
        let start = from_position.max(1) as usize - 1;
        Ok(inner.events.iter().skip(start).take(limit).cloned().collect())
    }

    fn read_stream(
        &self,
        account_id: &AccountId,
        from_version: u64,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let inner = self.lock();
        let Some(positions) = inner.streams.get(account_id) else {
            return Ok(Vec::new());
        };
        let head = positions.len() as u64;
        let selected: Vec<u64> = match direction {
            Direction::Forwards => {
                positions.iter().skip(from_version.max(1) as usize - 1).take(limit).copied().collect()
            }
            Direction::Backwards => {
                let from = if from_version == 0 { head } else { from_version.min(head) };
                positions[..from as usize].iter().rev().take(limit).copied().collect()
            }
        };
        Ok(selected.into_iter().map(|p| inner.event_at(p)).collect())
    }
}
