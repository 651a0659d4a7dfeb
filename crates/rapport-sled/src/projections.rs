//! The projection store on sled: one tree per namespace (`projection/<name>`), entries under
//! `a`‖key and the checkpoint under `c`, so that one sled batch commits both atomically;
//! settings in the `projection-settings` tree. It lives in a database of its own beside the
//! segment log, or in the sled log's own database.

use std::path::Path;

use bytes::Bytes;
use rapport_store::{ProjectionStore, StoreError};

use crate::{SledLog, io_error, open_db, sled_error};

/// Projections in a sled database.
#[derive(Clone)]
pub struct SledProjections {
    db: sled::Db,
}

impl std::fmt::Debug for SledProjections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledProjections").finish_non_exhaustive()
    }
}

impl SledProjections {
    /// Opens the projection store in `dir`, creating the directory and an empty store if
    /// there is none.
    pub fn open(dir: &Path) -> Result<SledProjections, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| io_error(&e, &format!("creating {}", dir.display())))?;
        Ok(SledProjections { db: open_db(dir)? })
    }
}

impl SledLog {
    /// The projection store in this log's own database.
    pub fn projections(&self) -> SledProjections {
        SledProjections { db: self.db.clone() }
    }
}

const TREE_PREFIX: &str = "projection/";
const SETTINGS: &str = "projection-settings";
const ENTRY: u8 = b'a';
const CHECKPOINT: &[u8] = b"c";

impl SledProjections {
    fn namespace(&self, namespace: &str) -> Result<sled::Tree, StoreError> {
        self.db
            .open_tree(format!("{TREE_PREFIX}{namespace}"))
            .map_err(|e| sled_error(e, &format!("opening projection {namespace}")))
    }

    /// The namespace's tree if it exists, without creating it.
    fn existing(&self, namespace: &str) -> Result<Option<sled::Tree>, StoreError> {
        let name = format!("{TREE_PREFIX}{namespace}");
        if self.db.tree_names().iter().any(|n| n.as_ref() == name.as_bytes()) {
            self.namespace(namespace).map(Some)
        } else {
            Ok(None)
        }
    }
}

fn entry_key(key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.len() + 1);
    k.push(ENTRY);
    k.extend_from_slice(key);
    k
}

impl ProjectionStore for SledProjections {
    fn namespaces(&self) -> Result<Vec<String>, StoreError> {
        let mut names = Vec::new();
        for name in self.db.tree_names() {
            let Some(namespace) = name.strip_prefix(TREE_PREFIX.as_bytes()) else { continue };
            let namespace = String::from_utf8_lossy(namespace).into_owned();
            if self.checkpoint(&namespace)?.is_some() {
                names.push(namespace);
            }
        }
        names.sort();
        Ok(names)
    }

    fn checkpoint(&self, namespace: &str) -> Result<Option<Bytes>, StoreError> {
        let Some(tree) = self.existing(namespace)? else { return Ok(None) };
        let value = tree.get(CHECKPOINT).map_err(|e| sled_error(e, &format!("reading projection {namespace}")))?;
        Ok(value.map(|v| Bytes::copy_from_slice(&v)))
    }

    fn get(&self, namespace: &str, key: &[u8]) -> Result<Option<Bytes>, StoreError> {
        let Some(tree) = self.existing(namespace)? else { return Ok(None) };
        let value = tree.get(entry_key(key)).map_err(|e| sled_error(e, &format!("reading projection {namespace}")))?;
        Ok(value.map(|v| Bytes::copy_from_slice(&v)))
    }

    fn scan(&self, namespace: &str, after: Option<&[u8]>, limit: usize) -> Result<Vec<(Bytes, Bytes)>, StoreError> {
        use std::ops::Bound;
        let Some(tree) = self.existing(namespace)? else { return Ok(Vec::new()) };
        let start = match after {
            Some(after) => Bound::Excluded(entry_key(after)),
            None => Bound::Included(vec![ENTRY]),
        };
        let mut entries = Vec::new();
        for item in tree.range((start, Bound::Excluded(vec![ENTRY + 1]))).take(limit) {
            let (key, value) = item.map_err(|e| sled_error(e, &format!("scanning projection {namespace}")))?;
            entries.push((Bytes::copy_from_slice(&key[1..]), Bytes::copy_from_slice(&value)));
        }
        Ok(entries)
    }

    fn commit(&self, namespace: &str, entries: &[(Bytes, Bytes)], checkpoint: Bytes) -> Result<(), StoreError> {
        let tree = self.namespace(namespace)?;
        let mut batch = sled::Batch::default();
        for (key, value) in entries {
            batch.insert(entry_key(key), value.as_ref());
        }
        batch.insert(CHECKPOINT, checkpoint.as_ref());
        tree.apply_batch(batch).map_err(|e| sled_error(e, &format!("committing projection {namespace}")))
    }

    fn drop_namespace(&self, namespace: &str) -> Result<(), StoreError> {
        self.db
            .drop_tree(format!("{TREE_PREFIX}{namespace}"))
            .map(drop)
            .map_err(|e| sled_error(e, &format!("dropping projection {namespace}")))
    }

    fn setting(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        let tree = self.db.open_tree(SETTINGS).map_err(|e| sled_error(e, "opening the projection settings"))?;
        let value = tree.get(key).map_err(|e| sled_error(e, &format!("reading setting {key}")))?;
        Ok(value.map(|v| Bytes::copy_from_slice(&v)))
    }

    fn set_setting(&self, key: &str, value: Bytes) -> Result<(), StoreError> {
        let tree = self.db.open_tree(SETTINGS).map_err(|e| sled_error(e, "opening the projection settings"))?;
        tree.insert(key, value.as_ref()).map(drop).map_err(|e| sled_error(e, &format!("writing setting {key}")))
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush().map(drop).map_err(|e| sled_error(e, "flushing projections"))
    }
}
