//! How many subscriptions each client holds, against a limit: a slot is taken when a
//! subscription starts and given back when it ends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::error::ReadError;

/// How many subscriptions each client holds, against a limit.
#[derive(Debug)]
pub(crate) struct Subscribers {
    limit: usize,
    open: Arc<Mutex<HashMap<String, usize>>>,
}

impl Subscribers {
    pub(crate) fn new(limit: usize) -> Self {
        Self { limit, open: Arc::default() }
    }

    /// Takes one of the client's subscription slots, if it has one left.
    pub(crate) fn take(&self, client: String) -> Result<Slot, ReadError> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(client.clone()).or_default();
        if *count >= self.limit {
            return Err(ReadError::TooManySubscriptions { client, limit: self.limit });
        }
        *count += 1;
        Ok(Slot { client, open: Arc::clone(&self.open) })
    }
}

/// One open subscription of a client; given back when the subscription ends.
pub(crate) struct Slot {
    client: String,
    open: Arc<Mutex<HashMap<String, usize>>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.client) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.client);
            }
        }
    }
}
