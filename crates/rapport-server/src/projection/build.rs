//! A build: one rule set's projection of the whole log, its accounts in memory and in the
//! projection store, the position it reflects, its checkpoints and its digest.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use bytes::Bytes;
use rapport_domain::{AccountId, Timestamp};
use rapport_projection::{AccountDigest, AccountProjection, Checkpoint, ProjectionDigest, RuleSet};
use rapport_store::ProjectionStore;
use tokio::sync::watch;

use super::fold::fold_workers;
use super::listing::Listing;
use crate::error::ReadError;

/// Accounts read from the store per step of a full load.
const LOAD_PAGE: usize = 1_024;
/// Accounts a digest works out at once, spread over the cores.
const DIGEST_BATCH: usize = 512;

/// One rule set's projection.
pub(crate) struct Build {
    /// `name@version`, also the store namespace.
    pub id: String,
    /// The rule set.
    pub rules: Arc<RuleSet>,
    store: Arc<dyn ProjectionStore>,
    state: RwLock<BuildState>,
    /// One folder at a time (the writer for the active build, the projector for the others).
    pub(super) fold: Mutex<()>,
    /// The position folded so far, for those who watch the build's progress.
    progress: watch::Sender<u64>,
    /// The last digest taken: position, digest, number of accounts.
    digest: Mutex<Option<(u64, String, usize)>>,
    /// The portfolio kept scored for listings.
    pub(super) listing: Mutex<Listing>,
}

pub(super) struct BuildState {
    position: u64,
    recorded_at: Timestamp,
    /// Accounts read or changed so far; all of them when `complete`.
    accounts: HashMap<AccountId, Arc<AccountProjection>>,
    complete: bool,
    /// Changed since the last checkpoint.
    dirty: HashSet<AccountId>,
    /// Changed since the portfolio index last looked; `None` until the first listing.
    pub(super) unlisted: Option<HashSet<AccountId>>,
}

impl Build {
    pub(super) fn new(rules: RuleSet, store: Arc<dyn ProjectionStore>, checkpoint: Option<&Checkpoint>) -> Build {
        let (position, recorded_at) = checkpoint.map_or((0, Timestamp::EPOCH), |c| (c.position, c.recorded_at));
        Build {
            id: rules.id(),
            rules: Arc::new(rules),
            store,
            state: RwLock::new(BuildState {
                position,
                recorded_at,
                accounts: HashMap::new(),
                // A build from nothing holds every account it has; a resumed one reads them lazily.
                complete: checkpoint.is_none(),
                dirty: HashSet::new(),
                unlisted: None,
            }),
            fold: Mutex::new(()),
            progress: watch::channel(position).0,
            digest: Mutex::new(None),
            listing: Mutex::default(),
        }
    }

    pub(super) fn read(&self) -> std::sync::RwLockReadGuard<'_, BuildState> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn write(&self) -> std::sync::RwLockWriteGuard<'_, BuildState> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The position of the last event folded in.
    pub fn position(&self) -> u64 {
        self.read().position
    }

    /// Follows this build's position.
    pub fn progress(&self) -> watch::Receiver<u64> {
        self.progress.subscribe()
    }

    /// An account as this build holds it.
    pub fn get(&self, account_id: &AccountId) -> Result<Option<Arc<AccountProjection>>, ReadError> {
        if let Some(known) = self.in_memory(account_id) {
            return Ok(known);
        }
        // Not read yet: then the store holds its current state (changed accounts stay in memory).
        let Some(bytes) = self.store.get(&self.id, account_id.as_str().as_bytes())? else { return Ok(None) };
        let loaded = Arc::new(decode_projection(&self.id, &bytes)?);
        let mut state = self.write();
        // A fold may have changed it meanwhile; what is in memory is newer.
        Ok(Some(Arc::clone(state.accounts.entry(account_id.clone()).or_insert(loaded))))
    }

    /// The account if this build holds it in memory (`Some(None)`: it knows there is no such
    /// account); `None` if only the store can tell, which [`Build::get`] reads.
    pub fn in_memory(&self, account_id: &AccountId) -> Option<Option<Arc<AccountProjection>>> {
        let state = self.read();
        match state.accounts.get(account_id) {
            Some(found) => Some(Some(Arc::clone(found))),
            None if state.complete => Some(None),
            None => None,
        }
    }

    /// Every account, by id, and the position they reflect.
    pub fn all(&self) -> Result<(Vec<Arc<AccountProjection>>, u64, Timestamp), ReadError> {
        if !self.read().complete {
            self.load_all()?;
        }
        let state = self.read();
        let mut accounts: Vec<Arc<AccountProjection>> = state.accounts.values().cloned().collect();
        accounts.sort_by(|a, b| a.account.id.cmp(&b.account.id));
        Ok((accounts, state.position, state.recorded_at))
    }

    fn load_all(&self) -> Result<(), ReadError> {
        let mut after: Option<Bytes> = None;
        loop {
            let page = self.store.scan(&self.id, after.as_deref(), LOAD_PAGE)?;
            let Some((last, _)) = page.last() else { break };
            after = Some(last.clone());
            let decoded = page
                .iter()
                .map(|(_, value)| decode_projection(&self.id, value).map(Arc::new))
                .collect::<Result<Vec<_>, _>>()?;
            let mut state = self.write();
            for projection in decoded {
                state.accounts.entry(projection.account.id.clone()).or_insert(projection);
            }
        }
        self.write().complete = true;
        Ok(())
    }

    /// Shows accounts folded up to `position` (whose last event was recorded at `recorded_at`).
    /// Returns the pictures it replaced, released from the lock: dropping them frees what no
    /// reader holds any more (with what a change copied, that can be most of a picture), so a
    /// caller that can free them elsewhere keeps that off its own path.
    pub fn publish(
        &self,
        accounts: impl IntoIterator<Item = (AccountId, Arc<AccountProjection>)>,
        position: u64,
        recorded_at: Timestamp,
    ) -> Vec<Arc<AccountProjection>> {
        let mut replaced = Vec::new();
        let mut state = self.write();
        let state = &mut *state;
        for (id, projection) in accounts {
            state.dirty.insert(id.clone());
            if let Some(unlisted) = &mut state.unlisted {
                unlisted.insert(id.clone());
            }
            replaced.extend(state.accounts.insert(id, projection));
        }
        if position > state.position {
            state.position = position;
            state.recorded_at = recorded_at;
        }
        self.progress.send_replace(state.position);
        replaced
    }

    /// Commits the accounts changed since the last checkpoint, with the position they reflect.
    pub fn checkpoint(&self) -> Result<(), ReadError> {
        let (changed, checkpoint) = {
            let mut state = self.write();
            let dirty = std::mem::take(&mut state.dirty);
            let changed: Vec<Arc<AccountProjection>> =
                dirty.iter().filter_map(|id| state.accounts.get(id).cloned()).collect();
            let checkpoint = Checkpoint {
                rules: self.rules.to_toml(),
                position: state.position,
                recorded_at: state.recorded_at,
                encoding: rapport_projection::ENCODING_VERSION,
            };
            (changed, checkpoint)
        };
        let entries: Vec<(Bytes, Bytes)> = changed
            .iter()
            .map(|p| {
                (Bytes::copy_from_slice(p.account.id.as_str().as_bytes()), Bytes::from(rapport_projection::encode(p)))
            })
            .collect();
        if let Err(error) = self.store.commit(&self.id, &entries, Bytes::from(checkpoint.encode())) {
            // Try again next time.
            self.write().dirty.extend(changed.iter().map(|p| p.account.id.clone()));
            return Err(error.into());
        }
        Ok(())
    }

    /// The digest of the whole build: its rule set, position, and every account with its scores
    /// as of the recording time of the event at that position.
    pub fn digest(&self) -> Result<(String, u64, usize), ReadError> {
        let mut cached = self.digest.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((position, digest, accounts)) = cached.as_ref()
            && *position == self.position()
        {
            return Ok((digest.clone(), *position, *accounts));
        }
        let (accounts, position, recorded_at) = self.all()?;
        let mut digest = ProjectionDigest::new(&self.rules, position, recorded_at);
        // Each account is encoded and scored on one of the cores; the parts are hashed in order,
        // a batch at a time so that the encoded accounts are not all held at once.
        let threads = fold_workers();
        for batch in accounts.chunks(DIGEST_BATCH) {
            let per_thread = batch.len().div_ceil(threads);
            let parts: Vec<Vec<AccountDigest>> = std::thread::scope(|scope| {
                let digest = &digest;
                let shares: Vec<_> = batch
                    .chunks(per_thread)
                    .map(|share| scope.spawn(move || share.iter().map(|a| digest.part(a)).collect::<Vec<_>>()))
                    .collect();
                shares.into_iter().map(|s| s.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))).collect()
            });
            for part in parts.into_iter().flatten() {
                digest.add_part(part);
            }
        }
        let digest = digest.finish();
        *cached = Some((position, digest.clone(), accounts.len()));
        Ok((digest, position, accounts.len()))
    }
}

pub(super) fn decode_projection(namespace: &str, bytes: &[u8]) -> Result<AccountProjection, ReadError> {
    rapport_projection::decode(bytes).map_err(|e| ReadError::Corrupt(format!("projection {namespace}: {e}")))
}
