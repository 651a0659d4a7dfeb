//! Every build, which one is served, and the log's durable position: what the writer
//! publishes to, what readers take builds from, and what rebuilds and activations change.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Instant;

use bytes::Bytes;
use rapport_domain::{AccountId, Timestamp};
use rapport_projection::{AccountProjection, Checkpoint, RuleSet};
use rapport_store::{EventLog, ProjectionStore};
use tokio::sync::{Notify, watch};
use tracing::{info, warn};

use super::build::Build;
use super::fold::CHUNK;
use crate::error::ReadError;

/// A build at most this many events behind the durable log counts as caught up: it follows
/// the log live (under a steady load it is always a group or a chunk behind), and it can be
/// activated (it folds the rest first, holding appends up for no longer than that).
const CAUGHT_UP_WITHIN: u64 = CHUNK as u64;
/// The setting that names the active build.
const ACTIVE: &str = "active";

/// Every build, which one is served, and the durable position of the log.
pub(crate) struct Projections {
    pub(super) log: Arc<dyn EventLog>,
    store: Arc<dyn ProjectionStore>,
    builds: RwLock<BTreeMap<String, Arc<Build>>>,
    active: RwLock<Arc<Build>>,
    durable: AtomicU64,
    pub(super) durable_changed: watch::Sender<u64>,
    /// Wakes the projector when a build is added.
    pub(super) kick: Notify,
    /// Held while builds are checkpointed or replaced, so that a checkpoint of a build being
    /// thrown away cannot land in the namespace of its replacement.
    checkpoints: Mutex<()>,
    pub(super) stopping: AtomicBool,
}

impl Projections {
    /// Opens every stored build, resumes the active one from its checkpoint (or builds
    /// `default_rules` from the whole log if none is stored), and catches it up to the log.
    pub fn open(
        log: Arc<dyn EventLog>,
        store: Arc<dyn ProjectionStore>,
        default_rules: RuleSet,
    ) -> Result<Projections, ReadError> {
        let last = log.last_position()?;
        let mut builds = BTreeMap::new();
        for namespace in store.namespaces()? {
            let Some(bytes) = store.checkpoint(&namespace)? else { continue };
            match Checkpoint::decode(&bytes) {
                Ok((checkpoint, _)) if checkpoint.encoding != rapport_projection::ENCODING_VERSION => {
                    warn!(
                        namespace,
                        encoding = checkpoint.encoding,
                        "the projection's accounts are of an older encoding; dropping it to rebuild"
                    );
                    store.drop_namespace(&namespace)?;
                }
                Ok((checkpoint, rules)) if checkpoint.position <= last && rules.id() == namespace => {
                    builds.insert(namespace, Arc::new(Build::new(rules, Arc::clone(&store), Some(&checkpoint))));
                }
                Ok((checkpoint, _)) => {
                    warn!(
                        namespace,
                        position = checkpoint.position,
                        last,
                        "the projection is ahead of the log; dropping it to rebuild"
                    );
                    store.drop_namespace(&namespace)?;
                }
                Err(error) => {
                    warn!(namespace, %error, "the projection does not decode; dropping it to rebuild");
                    store.drop_namespace(&namespace)?;
                }
            }
        }
        let active_id = store
            .setting(ACTIVE)?
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .filter(|id| builds.contains_key(id));
        let active = match active_id {
            Some(id) => Arc::clone(&builds[&id]),
            None => {
                let id = default_rules.id();
                let build = match builds.get(&id) {
                    Some(build) => Arc::clone(build),
                    None => Arc::new(Build::new(default_rules, Arc::clone(&store), None)),
                };
                builds.insert(id.clone(), Arc::clone(&build));
                store.set_setting(ACTIVE, Bytes::from(id))?;
                build
            }
        };
        let started = Instant::now();
        let from = active.position();
        active.catch_up(log.as_ref(), last, || true)?;
        active.checkpoint()?;
        info!(
            rule_set = %active.id,
            from,
            to = last,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "the active projection caught up with the log"
        );
        Ok(Projections {
            log,
            store,
            builds: RwLock::new(builds),
            active: RwLock::new(active),
            durable: AtomicU64::new(last),
            durable_changed: watch::channel(last).0,
            kick: Notify::new(),
            checkpoints: Mutex::new(()),
            stopping: AtomicBool::new(false),
        })
    }

    /// The served build.
    pub fn active(&self) -> Arc<Build> {
        Arc::clone(&self.active.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// The build of a rule set (`name@version`), or the active one when `id` is empty.
    pub fn build(&self, id: &str) -> Option<Arc<Build>> {
        if id.is_empty() {
            return Some(self.active());
        }
        self.builds.read().unwrap_or_else(PoisonError::into_inner).get(id).cloned()
    }

    /// Every build, by id.
    pub fn builds(&self) -> Vec<Arc<Build>> {
        self.builds.read().unwrap_or_else(PoisonError::into_inner).values().cloned().collect()
    }

    /// Whether `build` is still the registered build of its rule set (a rebuild from scratch
    /// replaces it).
    pub fn is_registered(&self, build: &Arc<Build>) -> bool {
        self.builds.read().unwrap_or_else(PoisonError::into_inner).get(&build.id).is_some_and(|b| Arc::ptr_eq(b, build))
    }

    /// Whether `build` is close enough behind the durable log to follow it live.
    pub fn is_caught_up(&self, build: &Build) -> bool {
        build.position() + CAUGHT_UP_WITHIN >= self.durable_position()
    }

    /// Follows the durable position.
    pub fn durable_watch(&self) -> watch::Receiver<u64> {
        self.durable_changed.subscribe()
    }

    /// The position up to which every event of the log is durable and visible.
    pub fn durable_position(&self) -> u64 {
        self.durable.load(Ordering::Acquire)
    }

    /// Shows a durable group: folds it into the active build and moves the durable position.
    pub fn publish(
        &self,
        accounts: impl IntoIterator<Item = (AccountId, Arc<AccountProjection>)>,
        position: u64,
        recorded_at: Timestamp,
    ) {
        let active = self.active();
        {
            let _folding = active.fold.lock().unwrap_or_else(PoisonError::into_inner);
            active.publish(accounts, position, recorded_at);
        }
        // After the accounts: a reader that sees the new position also sees them.
        self.durable.fetch_max(position, Ordering::AcqRel);
        self.durable_changed.send_replace(self.durable_position());
    }

    /// Starts a build of `rules` from the whole log, or returns the existing build of the same
    /// rule set. `Err` with the existing build's id if a build of the same name and version
    /// holds other values.
    pub fn start_build(&self, rules: RuleSet, from_scratch: bool) -> Result<Arc<Build>, ReadError> {
        let id = rules.id();
        let _checkpoints = self.checkpoints.lock().unwrap_or_else(PoisonError::into_inner);
        let mut builds = self.builds.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(existing) = builds.get(&id) {
            if existing.rules.fingerprint() != rules.fingerprint() {
                return Err(ReadError::RuleSetChanged(id));
            }
            let active = Arc::ptr_eq(existing, &self.active());
            if !from_scratch || active {
                return Ok(Arc::clone(existing));
            }
            self.store.drop_namespace(&id)?;
        }
        let build = Arc::new(Build::new(rules, Arc::clone(&self.store), None));
        // An empty checkpoint, so the build survives a restart and resumes.
        build.checkpoint()?;
        builds.insert(id, Arc::clone(&build));
        drop(builds);
        self.kick.notify_one();
        Ok(build)
    }

    /// Makes `build` the served one. Called by the writer between groups, when every durable
    /// event is published: the build is caught up to the durable position first, so the switch
    /// loses and repeats nothing.
    pub fn activate(&self, build: &Arc<Build>) -> Result<String, ReadError> {
        let previous = self.active();
        if Arc::ptr_eq(&previous, build) {
            return Ok(previous.id.clone());
        }
        let _checkpoints = self.checkpoints.lock().unwrap_or_else(PoisonError::into_inner);
        if !self.is_registered(build) {
            return Err(ReadError::Busy(format!(
                "rule set {} is being rebuilt from scratch; activate it once caught up",
                build.id
            )));
        }
        // Folding a long way behind would hold every append up meanwhile.
        if !self.is_caught_up(build) {
            let (position, durable) = (build.position(), self.durable_position());
            return Err(ReadError::NotCaughtUp { id: build.id.clone(), position, durable });
        }
        build.catch_up(self.log.as_ref(), self.durable_position(), || true)?;
        build.checkpoint()?;
        self.store.set_setting(ACTIVE, Bytes::from(build.id.clone()))?;
        self.store.flush()?;
        *self.active.write().unwrap_or_else(PoisonError::into_inner) = Arc::clone(build);
        // The previous build now follows the log like any other.
        self.kick.notify_one();
        info!(from = %previous.id, to = %build.id, "activated a rule set");
        Ok(previous.id.clone())
    }

    /// Commits every build's changes.
    pub fn checkpoint_all(&self) {
        let _checkpoints = self.checkpoints.lock().unwrap_or_else(PoisonError::into_inner);
        for build in self.builds() {
            if let Err(error) = build.checkpoint() {
                warn!(build = %build.id, %error, "checkpoint failed; it will be retried");
            }
        }
    }

    /// Stops the projector at its next chunk; what it folded stays, to be checkpointed.
    pub fn stop_following(&self) {
        self.stopping.store(true, Ordering::Release);
        self.kick.notify_one();
    }

    /// Stops the projector, checkpoints every build and flushes the store.
    pub fn close(&self) {
        self.stop_following();
        self.checkpoint_all();
        if let Err(error) = self.store.flush() {
            warn!(%error, "flushing the projections failed; they will catch up from the log");
        }
    }
}
