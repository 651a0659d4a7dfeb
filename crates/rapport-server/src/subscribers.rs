//! How many subscriptions each client holds, against a limit, and where each stands: a slot is
//! taken when a subscription starts, moved as it sends, and given back when it ends.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::error::ReadError;

/// How many subscriptions each client holds, against a limit, and each one's cursor.
#[derive(Debug)]
pub(crate) struct Subscribers {
    limit: usize,
    open: Arc<Mutex<Open>>,
}

#[derive(Debug, Default)]
struct Open {
    per_client: HashMap<String, usize>,
    /// The next position each open subscription considers, by slot number.
    cursors: BTreeMap<u64, Arc<AtomicU64>>,
    next_slot: u64,
}

impl Subscribers {
    pub(crate) fn new(limit: usize) -> Self {
        Self { limit, open: Arc::default() }
    }

    /// Takes one of the client's subscription slots, if it has one left, for a subscription
    /// that starts at position `from`.
    pub(crate) fn take(&self, client: String, from: u64) -> Result<Slot, ReadError> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.per_client.entry(client.clone()).or_default();
        if *count >= self.limit {
            return Err(ReadError::TooManySubscriptions { client, limit: self.limit });
        }
        *count += 1;
        let (number, cursor) = (open.next_slot, Arc::new(AtomicU64::new(from)));
        open.next_slot += 1;
        open.cursors.insert(number, Arc::clone(&cursor));
        Ok(Slot { client, number, cursor, open: Arc::clone(&self.open) })
    }

    /// The cursor of every open subscription: the next position it considers.
    pub(crate) fn cursors(&self) -> Vec<u64> {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.cursors.values().map(|cursor| cursor.load(Ordering::Relaxed)).collect()
    }
}

/// One open subscription of a client; given back when the subscription ends.
pub(crate) struct Slot {
    client: String,
    number: u64,
    cursor: Arc<AtomicU64>,
    open: Arc<Mutex<Open>>,
}

impl Slot {
    /// The subscription has considered every position before `cursor`.
    pub(crate) fn advance(&self, cursor: u64) {
        self.cursor.store(cursor, Ordering::Relaxed);
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.cursors.remove(&self.number);
        if let Some(count) = open.per_client.get_mut(&self.client) {
            *count -= 1;
            if *count == 0 {
                open.per_client.remove(&self.client);
            }
        }
    }
}
