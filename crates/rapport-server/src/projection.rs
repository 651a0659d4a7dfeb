//! Projection builds: each rule set's picture of every account, kept current, checkpointed,
//! and served.
//!
//! A [`Build`] is one rule set's projection. Its accounts live in the projection store (one
//! namespace per rule set, named `name@version`) and, once read or changed, in memory. It
//! records the log position it reflects; [`Build::catch_up`] folds the log from there. The
//! checkpointer commits the changed accounts and the position together, so a restart resumes
//! from the last checkpoint and folds only the events after it, and a crash between a log
//! write and a checkpoint is repaired the same way.
//!
//! [`Projections`] holds every build and which one is active. The writer folds each durable
//! group into the active build before it replies (so a client reads its own writes); the
//! projector task ([`follow`]) keeps the other builds caught up behind it. A new rule set is
//! built from the whole log by the same task, while the active build keeps serving.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rapport_domain::{AccountId, Event, EventBody, Timestamp};
use rapport_projection::{AccountProjection, Checkpoint, Folded, ProjectionDigest, RuleSet};
use rapport_store::{Direction, EventLog, ProjectionStore, StoredEvent};
use tokio::sync::{Notify, watch};
use tracing::{info, warn};

use crate::convert::decode_event;
use crate::error::ReadError;

/// Events read from the log at a time.
const CHUNK: usize = 4_096;
/// Events folded per step of a catch-up: one fold-lock, one copy of each account touched and
/// one publication per step.
const STEP: u64 = 32_768;
/// Accounts read from the store per step of a full load.
const LOAD_PAGE: usize = 1_024;
/// A build at most this many events behind the durable log counts as caught up: it follows
/// the log live (under a steady load it is always a group or a chunk behind), and it can be
/// activated (it folds the rest first, holding appends up for no longer than that).
const CAUGHT_UP_WITHIN: u64 = CHUNK as u64;
/// The setting that names the active build.
const ACTIVE: &str = "active";

/// One rule set's projection.
pub(crate) struct Build {
    /// `name@version`, also the store namespace.
    pub id: String,
    /// The rule set.
    pub rules: Arc<RuleSet>,
    store: Arc<dyn ProjectionStore>,
    state: RwLock<BuildState>,
    /// One folder at a time (the writer for the active build, the projector for the others).
    fold: Mutex<()>,
    /// The position folded so far, for those who watch the build's progress.
    progress: watch::Sender<u64>,
    /// The last digest taken: position, digest, number of accounts.
    digest: Mutex<Option<(u64, String, usize)>>,
}

struct BuildState {
    position: u64,
    recorded_at: Timestamp,
    /// Accounts read or changed so far; all of them when `complete`.
    accounts: HashMap<AccountId, Arc<AccountProjection>>,
    complete: bool,
    /// Changed since the last checkpoint.
    dirty: HashSet<AccountId>,
}

impl Build {
    fn new(rules: RuleSet, store: Arc<dyn ProjectionStore>, checkpoint: Option<&Checkpoint>) -> Build {
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
            }),
            fold: Mutex::new(()),
            progress: watch::channel(position).0,
            digest: Mutex::new(None),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BuildState> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BuildState> {
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
    pub fn publish(
        &self,
        accounts: impl IntoIterator<Item = (AccountId, Arc<AccountProjection>)>,
        position: u64,
        recorded_at: Timestamp,
    ) {
        let mut state = self.write();
        for (id, projection) in accounts {
            state.dirty.insert(id.clone());
            state.accounts.insert(id, projection);
        }
        if position > state.position {
            state.position = position;
            state.recorded_at = recorded_at;
        }
        self.progress.send_replace(state.position);
    }

    /// Folds the log from this build's position up to `target`, in chunks. Stops early (and
    /// returns `Ok(false)`) when `keep_going` turns false. Holds the fold lock one chunk at a
    /// time, so an activation waits for one chunk at most.
    pub fn catch_up(&self, log: &dyn EventLog, target: u64, keep_going: impl Fn() -> bool) -> Result<bool, ReadError> {
        let workers = fold_workers();
        loop {
            if !keep_going() {
                return Ok(false);
            }
            let _folding = self.fold.lock().unwrap_or_else(PoisonError::into_inner);
            let step_start = self.position() + 1;
            if step_start > target {
                return Ok(true);
            }
            // Accounts are copied out of the build once per step and folded in place; a step
            // spans several chunks so that each copy serves many events.
            let mut changed: Vec<HashMap<AccountId, AccountProjection>> =
                (0..workers).map(|_| HashMap::new()).collect();
            let mut end = None;
            let mut next = step_start;
            // Stopping is checked per chunk, so a shutdown waits for one chunk at most.
            while next <= target && next - step_start < STEP && (next == step_start || keep_going()) {
                let limit = usize::try_from(target - next + 1).unwrap_or(CHUNK).min(CHUNK);
                let chunk = log.read_all(next, limit)?;
                let Some(last) = chunk.last() else { break };
                end = Some((last.position, last.recorded_at));
                next = last.position + 1;
                self.fold_chunk(log, &chunk, &mut changed)?;
            }
            let Some((position, recorded_at)) = end else { return Ok(true) };
            let changed = changed.into_iter().flatten().map(|(id, p)| (id, Arc::new(p)));
            self.publish(changed, position, recorded_at);
        }
    }

    /// Folds a chunk of the log into `changed`, one share of the accounts per worker. Accounts
    /// fold independently; a hash of the account id picks its worker, so that an account's
    /// events stay in order on one.
    fn fold_chunk(
        &self,
        log: &dyn EventLog,
        chunk: &[StoredEvent],
        changed: &mut [HashMap<AccountId, AccountProjection>],
    ) -> Result<(), ReadError> {
        let workers = changed.len();
        if let [only] = changed {
            return self.fold_share(log, chunk, only, |_| true);
        }
        std::thread::scope(|scope| {
            let shares: Vec<_> = changed
                .iter_mut()
                .enumerate()
                .map(|(worker, share)| {
                    scope.spawn(move || self.fold_share(log, chunk, share, |id| worker_of(id, workers) == worker))
                })
                .collect();
            shares
                .into_iter()
                .try_for_each(|share| share.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
        })
    }

    /// Folds the events of `chunk` whose account `mine` picks into `changed`, copying each
    /// account out of the build the first time.
    fn fold_share(
        &self,
        log: &dyn EventLog,
        chunk: &[StoredEvent],
        changed: &mut HashMap<AccountId, AccountProjection>,
        mine: impl Fn(&AccountId) -> bool,
    ) -> Result<(), ReadError> {
        for record in chunk.iter().filter(|record| mine(&record.account_id)) {
            let event = decode_event(record)?;
            if let Some(projection) = changed.get_mut(&record.account_id) {
                fold_into(log, &self.rules, projection, record, &event)?;
            } else {
                let current = self.get(&record.account_id)?.map(|p| (*p).clone());
                let folded = fold(log, &self.rules, current, record, &event)?;
                changed.insert(record.account_id.clone(), folded);
            }
        }
        Ok(())
    }

    /// Commits the accounts changed since the last checkpoint, with the position they reflect.
    pub fn checkpoint(&self) -> Result<(), ReadError> {
        let (changed, checkpoint) = {
            let mut state = self.write();
            let dirty = std::mem::take(&mut state.dirty);
            let changed: Vec<Arc<AccountProjection>> =
                dirty.iter().filter_map(|id| state.accounts.get(id).cloned()).collect();
            let checkpoint =
                Checkpoint { rules: self.rules.to_toml(), position: state.position, recorded_at: state.recorded_at };
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
        for account in &accounts {
            digest.add(account);
        }
        let digest = digest.finish();
        *cached = Some((position, digest.clone(), accounts.len()));
        Ok((digest, position, accounts.len()))
    }
}

fn decode_projection(namespace: &str, bytes: &[u8]) -> Result<AccountProjection, ReadError> {
    rapport_projection::decode(bytes).map_err(|e| ReadError::Corrupt(format!("projection {namespace}: {e}")))
}

/// How many threads fold a catch-up: one per core, at most four (beyond that the reading of the
/// log, which one thread does, is the limit).
fn fold_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 4)
}

/// Which of `workers` folds an account: a hash of its id (the same in every run, so the
/// share of work is too).
fn worker_of(account_id: &AccountId, workers: usize) -> usize {
    // FNV-1a: short ids, no need for more.
    let hash = account_id
        .as_str()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    (hash % workers as u64) as usize
}

/// A recorded event as a projection folds it.
fn folded<'a>(record: &StoredEvent, event: &'a Event) -> Folded<'a> {
    Folded { event, version: record.version, position: record.position, recorded_at: record.recorded_at }
}

/// An account's stream from version 1, at most `limit` events, with each event decoded.
fn read_decoded(
    log: &dyn EventLog,
    account_id: &AccountId,
    limit: usize,
) -> Result<(Vec<StoredEvent>, Vec<Event>), ReadError> {
    let records = log.read_stream(account_id, 1, Direction::Forwards, limit)?;
    let events = records.iter().map(decode_event).collect::<Result<Vec<_>, _>>()?;
    Ok((records, events))
}

/// Folds one recorded event into its account's projection. A retraction replays the stream up
/// to it, so that the retracted event's effect is gone.
fn fold(
    log: &dyn EventLog,
    rules: &RuleSet,
    current: Option<AccountProjection>,
    record: &StoredEvent,
    event: &Event,
) -> Result<AccountProjection, ReadError> {
    match current {
        None => AccountProjection::open(record.account_id.clone(), folded(record, event)).ok_or_else(|| {
            ReadError::Corrupt(format!(
                "the stream of account \"{}\" starts at position {} with {}, not account_opened",
                record.account_id,
                record.position,
                event.body.kind()
            ))
        }),
        Some(mut projection) => {
            fold_into(log, rules, &mut projection, record, event)?;
            Ok(projection)
        }
    }
}

/// Folds one recorded event into an account's projection in place.
fn fold_into(
    log: &dyn EventLog,
    rules: &RuleSet,
    projection: &mut AccountProjection,
    record: &StoredEvent,
    event: &Event,
) -> Result<(), ReadError> {
    if matches!(event.body, EventBody::EventRetracted(_)) {
        *projection = replay(log, rules, &record.account_id, record.version)?;
    } else {
        projection.apply(folded(record, event), rules);
    }
    Ok(())
}

/// Replays an account's stream up to `version` under `rules`, leaving out retracted events.
pub(crate) fn replay(
    log: &dyn EventLog,
    rules: &RuleSet,
    account_id: &AccountId,
    version: u64,
) -> Result<AccountProjection, ReadError> {
    let (records, events) = read_decoded(log, account_id, usize::try_from(version).unwrap_or(usize::MAX))?;
    let stream: Vec<Folded<'_>> = records.iter().zip(&events).map(|(r, e)| folded(r, e)).collect();
    AccountProjection::replay(account_id.clone(), &stream, rules)
        .ok_or_else(|| ReadError::Corrupt(format!("the stream of account \"{account_id}\" does not open the account")))
}

/// Every build, which one is served, and the durable position of the log.
pub(crate) struct Projections {
    log: Arc<dyn EventLog>,
    store: Arc<dyn ProjectionStore>,
    builds: RwLock<BTreeMap<String, Arc<Build>>>,
    active: RwLock<Arc<Build>>,
    durable: AtomicU64,
    durable_changed: watch::Sender<u64>,
    /// Wakes the projector when a build is added.
    kick: Notify,
    /// Held while builds are checkpointed or replaced, so that a checkpoint of a build being
    /// thrown away cannot land in the namespace of its replacement.
    checkpoints: Mutex<()>,
    stopping: AtomicBool,
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

/// The projector: keeps every build other than the active one caught up with the durable log,
/// and checkpoints every build each `interval`. Runs until [`Projections::close`].
pub(crate) async fn follow(projections: Arc<Projections>, interval: Duration) {
    let mut durable = projections.durable_changed.subscribe();
    let mut last_checkpoint = Instant::now();
    while !projections.stopping.load(Ordering::Acquire) {
        let active = projections.active();
        for build in projections.builds() {
            if Arc::ptr_eq(&build, &active) || build.position() >= projections.durable_position() {
                continue;
            }
            let (p, b) = (Arc::clone(&projections), Arc::clone(&build));
            let caught_up = tokio::task::spawn_blocking(move || {
                let target = p.durable_position();
                // Stop when the server stops, when the build becomes the active one (the writer
                // folds that one from then on) or when a rebuild from scratch replaces it.
                let keep_going =
                    || !p.stopping.load(Ordering::Acquire) && !Arc::ptr_eq(&p.active(), &b) && p.is_registered(&b);
                b.catch_up(p.log.as_ref(), target, keep_going)
            })
            .await;
            match caught_up {
                Ok(Ok(_)) => {}
                Ok(Err(error)) => warn!(build = %build.id, %error, "folding the log failed; retrying"),
                Err(error) => warn!(build = %build.id, %error, "the fold task failed; retrying"),
            }
        }
        if last_checkpoint.elapsed() >= interval {
            let p = Arc::clone(&projections);
            let _ = tokio::task::spawn_blocking(move || p.checkpoint_all()).await;
            last_checkpoint = Instant::now();
        }
        tokio::select! {
            _ = durable.changed() => {}
            _ = projections.kick.notified() => {}
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

/// Which past state of an account to replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cut {
    /// What we knew: events recorded up to the instant.
    Known(Timestamp),
    /// What was true: events that occurred up to the instant, whenever recorded, with every
    /// correction recorded since (a retracted event was never true).
    Occurred(Timestamp),
    /// The stream's first N events.
    Version(u64),
}

/// An account as it was, replayed from its durable stream under `rules`; `None` if it did not
/// exist then (its opening is not among the events the cut keeps). Its version and position
/// are those of the last event the cut keeps.
pub(crate) fn replay_as_of(
    log: &dyn EventLog,
    rules: &RuleSet,
    account_id: &AccountId,
    durable: u64,
    cut: Cut,
) -> Result<Option<AccountProjection>, ReadError> {
    let (records, events) = read_decoded(log, account_id, usize::MAX)?;
    let kept: Vec<Folded<'_>> = records
        .iter()
        .zip(&events)
        .filter(|(record, event)| {
            record.position <= durable
                && match cut {
                    Cut::Known(at) => record.recorded_at <= at,
                    Cut::Occurred(at) => event.occurred_at <= at || matches!(event.body, EventBody::EventRetracted(_)),
                    Cut::Version(version) => record.version <= version,
                }
        })
        .map(|(r, e)| folded(r, e))
        .collect();
    let Some(last) = kept.last().copied() else { return Ok(None) };
    let Some(mut projection) = AccountProjection::replay(account_id.clone(), &kept, rules) else { return Ok(None) };
    // The last event taken into account (under `Occurred`, kept events need not be a prefix).
    projection.account.version = last.version;
    projection.position = last.position;
    projection.recorded_at = last.recorded_at;
    Ok(Some(projection))
}
