//! Where projections persist: derived data, rebuildable from the log at any time.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use bytes::Bytes;

use crate::StoreError;

/// Named namespaces of key → value entries, one per projection build, each with a
/// checkpoint that says what the entries reflect.
///
/// [`ProjectionStore::commit`] writes entries and the checkpoint atomically, so after a crash
/// a namespace's entries are exactly those of its last checkpoint (a build that resumes from
/// it folds the rest of the log again). Commits need not be durable at once: what a crash
/// takes back is folded again from the log, which is the truth. Keys and values are opaque
/// here. One writer commits to a namespace at a time; reads may run concurrently.
pub trait ProjectionStore: Send + Sync + 'static {
    /// The namespaces that have a checkpoint, by name.
    fn namespaces(&self) -> Result<Vec<String>, StoreError>;

    /// The namespace's last committed checkpoint; `None` if it has none.
    fn checkpoint(&self, namespace: &str) -> Result<Option<Bytes>, StoreError>;

    /// One entry as of the namespace's last commit.
    fn get(&self, namespace: &str, key: &[u8]) -> Result<Option<Bytes>, StoreError>;

    /// Up to `limit` entries in key order, starting after `after` (from the first if `None`).
    fn scan(&self, namespace: &str, after: Option<&[u8]>, limit: usize) -> Result<Vec<(Bytes, Bytes)>, StoreError>;

    /// Writes `entries` (replacing entries with the same keys) and the checkpoint, atomically.
    fn commit(&self, namespace: &str, entries: &[(Bytes, Bytes)], checkpoint: Bytes) -> Result<(), StoreError>;

    /// Removes a namespace with its entries and checkpoint; nothing if it does not exist.
    fn drop_namespace(&self, namespace: &str) -> Result<(), StoreError>;

    /// A store-wide setting (such as which namespace is served).
    fn setting(&self, key: &str) -> Result<Option<Bytes>, StoreError>;

    /// Sets a store-wide setting.
    fn set_setting(&self, key: &str, value: Bytes) -> Result<(), StoreError>;

    /// Makes every commit and setting so far durable.
    fn flush(&self) -> Result<(), StoreError>;
}

/// A [`ProjectionStore`] in memory: the reference implementation, and the store of a server
/// run over a [`crate::MemoryLog`].
#[derive(Debug, Default)]
pub struct MemoryProjections {
    state: Mutex<MemoryState>,
}

#[derive(Debug, Default)]
struct MemoryState {
    namespaces: BTreeMap<String, (Bytes, BTreeMap<Bytes, Bytes>)>,
    settings: BTreeMap<String, Bytes>,
}

impl MemoryProjections {
    /// An empty store.
    pub fn new() -> MemoryProjections {
        MemoryProjections::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut MemoryState) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl ProjectionStore for MemoryProjections {
    fn namespaces(&self) -> Result<Vec<String>, StoreError> {
        Ok(self.with(|s| s.namespaces.keys().cloned().collect()))
    }

    fn checkpoint(&self, namespace: &str) -> Result<Option<Bytes>, StoreError> {
        Ok(self.with(|s| s.namespaces.get(namespace).map(|(checkpoint, _)| checkpoint.clone())))
    }

    fn get(&self, namespace: &str, key: &[u8]) -> Result<Option<Bytes>, StoreError> {
        Ok(self.with(|s| s.namespaces.get(namespace).and_then(|(_, entries)| entries.get(key).cloned())))
    }

    fn scan(&self, namespace: &str, after: Option<&[u8]>, limit: usize) -> Result<Vec<(Bytes, Bytes)>, StoreError> {
        use std::ops::Bound;
        Ok(self.with(|s| {
            let Some((_, entries)) = s.namespaces.get(namespace) else { return Vec::new() };
            let start = after.map_or(Bound::Unbounded, |a| Bound::Excluded(Bytes::copy_from_slice(a)));
            entries.range((start, Bound::Unbounded)).take(limit).map(|(k, v)| (k.clone(), v.clone())).collect()
        }))
    }

    fn commit(&self, namespace: &str, entries: &[(Bytes, Bytes)], checkpoint: Bytes) -> Result<(), StoreError> {
        self.with(|s| {
            let (stored, map) = s.namespaces.entry(namespace.to_owned()).or_default();
            map.extend(entries.iter().cloned());
            *stored = checkpoint;
        });
        Ok(())
    }

    fn drop_namespace(&self, namespace: &str) -> Result<(), StoreError> {
        self.with(|s| s.namespaces.remove(namespace));
        Ok(())
    }

    fn setting(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        Ok(self.with(|s| s.settings.get(key).cloned()))
    }

    fn set_setting(&self, key: &str, value: Bytes) -> Result<(), StoreError> {
        self.with(|s| s.settings.insert(key.to_owned(), value));
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
