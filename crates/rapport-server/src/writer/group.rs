//! The writer thread's group loop: before each group, what other writers appended is folded;
//! then the group's queued requests are staged (decided in turn against the accounts as the
//! requests before them leave them), written in one `EventLog::append_all`, folded in position
//! order with whatever other writers put between them, made durable by one sync and published
//! before any reply. A request the log refused because another writer got there first is
//! staged again.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use rapport_domain::{Account, AccountId, AppendContext, Event, EventBody, EventId, RecordedFacts, Timestamp, decide};
use rapport_keys::KeysWritten;
use rapport_projection::{AccountProjection, Folded, RuleSet};
use rapport_store::{AppendBatch, Appended, EventLog, NewEvent, StoreError, StoredEvent};
use rapport_wire::decode_event;
use tokio::sync::mpsc;
use tracing::{debug, error, warn};

use super::Command;
use crate::append::{Append, AppendOutcome};
use crate::config::ServerConfig;
use crate::error::{AppendError, ReadError};
use crate::feed::Feed;
use crate::idempotency::judge;
use crate::metrics::Metrics;
use crate::projection::{Projections, fold, fold_into, replay};

/// How many times a request the log refused because another writer got there first (its
/// version or one of its ids taken meanwhile) is staged again before the refusal is reported.
/// Each time is one more write, a round trip to the cluster on a replicated log, and it loses
/// again only if another writer appends to the same account in the short while between the
/// catch-up and the write: a request that loses this often is on an account several writers
/// append to without pause, and its client's own retry, later, serves it better than holding
/// the writer up.
const MAX_RESTAGES: u32 = 4;

/// Events read from the log at a time while folding what other writers appended.
const OTHERS_PAGE: u64 = 512;

/// Where each request's outcome goes: one slot per append of the group, in queue order.
type Outcomes = [Option<Result<AppendOutcome, AppendError>>];

/// A request the log refused because another writer got there first, with its slot and the
/// refusal.
type Conflicted = (StagedRequest, usize, StoreError);

/// A written request with where the log put it and its slot.
type Written = (StagedRequest, Appended, usize);

/// A request that passed every check, waiting to be written with the rest of its group.
struct StagedRequest {
    append: Append,
    /// The account after the request, as `decide` folded it.
    account: Account,
    /// The stream's version before the request.
    expected_version: u64,
    /// When it was decided: its recording time.
    recorded_at: Timestamp,
    /// Whether it retracts recorded events (its projection is then replayed from the log).
    retracts: bool,
    events: Vec<NewEvent>,
}

/// What checking a request gave.
enum Staging {
    /// Checked, to be written.
    Staged(Box<StagedRequest>),
    /// Already recorded by an earlier try: the original outcome.
    Done(AppendOutcome),
}

/// The requests of a group staged since the log was last written to, each with its slot in
/// the group's replies. Requests are decided against the accounts as the staged ones leave
/// them, then written together: one log write for many requests.
#[derive(Default)]
struct Staged {
    requests: Vec<(StagedRequest, usize)>,
    /// For each account with staged requests, the index of its latest one.
    accounts: HashMap<AccountId, usize>,
    /// The event ids the staged requests hold.
    ids: HashSet<EventId>,
}

impl Staged {
    /// Every staged request with its slot, leaving none.
    fn take(&mut self) -> Vec<(StagedRequest, usize)> {
        self.accounts.clear();
        self.ids.clear();
        std::mem::take(&mut self.requests)
    }

    fn push(&mut self, request: StagedRequest, slot: usize) {
        self.ids.extend(request.append.events.iter().map(|e| e.id));
        self.accounts.insert(request.append.account_id.clone(), self.requests.len());
        self.requests.push((request, slot));
    }

    /// The account as the staged requests leave it, if any of them is for it.
    fn account(&self, account_id: &AccountId) -> Option<&Account> {
        self.accounts.get(account_id).map(|&index| &self.requests[index].0.account)
    }

    /// Whether checking `append` would look up an event a staged request holds: the request
    /// repeats one of its ids, or retracts one of its events.
    fn touches(&self, append: &Append) -> bool {
        append.events.iter().any(|event| {
            self.ids.contains(&event.id)
                || matches!(&event.body, EventBody::EventRetracted(r) if self.ids.contains(&r.target))
        })
    }
}

/// The writer thread's state.
pub(super) struct Sequencer {
    log: Arc<dyn EventLog>,
    projections: Arc<Projections>,
    config: ServerConfig,
    /// Accounts changed by events folded but not published yet (their sync has not succeeded
    /// yet), folded under the active build's rule set: this writer's and other writers'.
    unpublished: HashMap<AccountId, Arc<AccountProjection>>,
    /// The position through which the log is folded, published or not: every event up to it,
    /// whoever wrote it, is in the active build or in `unpublished`. What is published never
    /// passes it.
    folded_position: u64,
    /// The recording time of the event at `folded_position`.
    folded_recorded_at: Timestamp,
    /// Set while a `Command::CatchUp` waits in the queue (see `Writer::start`).
    catch_up_queued: Arc<AtomicBool>,
    /// Group sizes and sync durations go here.
    metrics: Arc<Metrics>,
    /// Whether the last sync succeeded: the log takes appends (see `Writer::is_writable`).
    writable: Arc<AtomicBool>,
    /// The subscriptions' rendered events, dropped once a retraction is published (the events
    /// it retracts show `retracted_by`).
    feed: Arc<Feed>,
    /// Whether an event folded and not published yet retracts others.
    retraction_unpublished: bool,
}

impl Sequencer {
    /// A writer over a log whose durable state `projections` show: folded up to their durable
    /// position.
    pub(super) fn new(
        log: Arc<dyn EventLog>,
        projections: Arc<Projections>,
        config: ServerConfig,
        catch_up_queued: Arc<AtomicBool>,
        metrics: Arc<Metrics>,
        writable: Arc<AtomicBool>,
        feed: Arc<Feed>,
    ) -> Sequencer {
        Sequencer {
            log,
            folded_position: projections.durable_position(),
            // Published only with a position beyond the durable one, which sets it first.
            folded_recorded_at: Timestamp::EPOCH,
            projections,
            config,
            unpublished: HashMap::new(),
            catch_up_queued,
            metrics,
            writable,
            feed,
            retraction_unpublished: false,
        }
    }

    /// Takes groups from the queue until it is closed (see the module's docs).
    pub(super) fn run(mut self, mut queue: mpsc::Receiver<Command>) {
        // Other writers may have appended since the active build caught up at start, before
        // the log had anyone to notify.
        if let Err(error) = self.catch_up().and_then(|()| self.sync()) {
            warn!(%error, "folding what other writers appended failed; the next group retries");
        }
        let max_group = self.config.max_group_requests.max(1);
        let mut closing = false;
        while !closing {
            let Some(first) = queue.blocking_recv() else { break };
            let started = Instant::now();
            let mut group = vec![first];
            while group.len() < max_group && !matches!(group.last(), Some(Command::Close)) {
                match queue.try_recv() {
                    Ok(command) => group.push(command),
                    Err(_) => break,
                }
            }
            // A `CatchUp` asks for what the catch-up below does. Cleared first, so that other
            // writers' appends from here on queue the next one.
            if group.iter().any(|command| matches!(command, Command::CatchUp)) {
                self.catch_up_queued.store(false, Ordering::Release);
            }
            // Requests are decided against every event the log holds, whoever wrote it. On a
            // log with one writer (segments, sled) there is nothing to fold, and nothing changes:
            // the cost is one `last_position` call per group (and one after each write), an
            // index read under a lock.
            let caught_up = self.catch_up();
            if let Err(error) = &caught_up {
                warn!(%error, "folding what other writers appended failed; this group's appends fail, the next retries");
            }
            let mut replies = Vec::with_capacity(group.len());
            let mut outcomes: Vec<Option<Result<AppendOutcome, AppendError>>> = Vec::with_capacity(group.len());
            let mut staged = Staged::default();
            let mut activations = Vec::new();
            let mut events = 0;
            for command in group {
                match command {
                    Command::Append { append, reply } => {
                        events += append.events.len();
                        let slot = replies.len();
                        replies.push(reply);
                        outcomes.push(None);
                        if let Err(error) = &caught_up {
                            // Decided against a stale account, it could be refused by the log
                            // at best; folded, it could not be put in order.
                            outcomes[slot] = Some(Err(AppendError::Store(error.clone())));
                            continue;
                        }
                        // A request that looks up what the staged ones would write (a retry of
                        // one of them, a retraction of one of their events) sees it written.
                        if staged.touches(&append) {
                            self.write(&mut staged, &mut outcomes);
                        }
                        self.stage_in_slot(append, slot, &mut staged, &mut outcomes);
                    }
                    Command::Activate { build, reply } => activations.push((build, reply)),
                    Command::CatchUp => {}
                    Command::Close => closing = true,
                }
            }
            self.write(&mut staged, &mut outcomes);
            let synced = self.sync();
            let requests = replies.len();
            for (reply, outcome) in replies.into_iter().zip(outcomes) {
                let mut outcome = outcome.unwrap_or(Err(AppendError::ShuttingDown));
                if let (Err(error), Ok(_)) = (&synced, &outcome) {
                    outcome = Err(AppendError::Store(error.clone()));
                }
                // The client may have gone; its events are durable all the same.
                let _ = reply.send(outcome);
            }
            if requests > 0 {
                self.metrics.group_requests.observe(requests as f64);
                self.metrics.group_events.observe(events as f64);
            }
            debug!(requests, events, elapsed_us = started.elapsed().as_micros() as u64, "group committed");
            // Between groups every durable event is published, unless the sync failed.
            for (build, reply) in activations {
                let outcome = if self.unpublished.is_empty() {
                    self.projections.activate(&build)
                } else {
                    Err(ReadError::Busy("the log cannot sync at the moment; retry the activation".to_owned()))
                };
                let _ = reply.send(outcome);
            }
        }
        // Whatever was queued after Close is dropped here, and its senders see `ShuttingDown`.
        drop(queue);
        if let Err(error) = self.sync() {
            error!(%error, "the final sync failed");
        }
    }

    /// Makes everything appended so far durable and publishes what is folded: every event up
    /// to the folded position.
    fn sync(&mut self) -> Result<(), StoreError> {
        if self.unpublished.is_empty() && self.folded_position <= self.projections.durable_position() {
            return Ok(());
        }
        let started = Instant::now();
        let synced = self.log.sync();
        self.metrics.sync_seconds.observe(started.elapsed().as_secs_f64());
        self.writable.store(synced.is_ok(), Ordering::Release);
        if let Err(error) = synced {
            warn!(%error, "sync failed; the group's appends are not acknowledged");
            return Err(error);
        }
        self.projections.publish(self.unpublished.drain(), self.folded_position, self.folded_recorded_at);
        if std::mem::take(&mut self.retraction_unpublished) {
            self.feed.invalidate();
        }
        Ok(())
    }

    /// An account as folded so far: unpublished, or as the active build holds it.
    fn current(&self, account_id: &AccountId) -> Result<Option<Arc<AccountProjection>>, StoreError> {
        if let Some(found) = self.unpublished.get(account_id) {
            return Ok(Some(Arc::clone(found)));
        }
        self.projections.active().get(account_id).map_err(read_to_store_error)
    }

    /// Checks a request against the account as the log and the requests staged before it
    /// leave it: a retry's original outcome, a refusal, or the request staged for writing.
    fn stage(&self, append: Append, staged: &Staged) -> Result<Staging, AppendError> {
        if let Some(outcome) = self.find_earlier_try(&append)? {
            return Ok(Staging::Done(outcome));
        }
        let projected;
        let current = match staged.account(&append.account_id) {
            Some(account) => Some(account),
            None => {
                projected = self.current(&append.account_id).map_err(AppendError::Store)?;
                projected.as_ref().map(|p| &p.account)
            }
        };
        let current_version = current.map_or(0, |c| c.version);
        if !append.expected.holds(current_version) {
            return Err(AppendError::WrongExpectedVersion {
                account_id: append.account_id,
                expected: append.expected,
                current: current_version,
            });
        }
        let recorded = self.retraction_targets(&append.events)?;
        let now = (self.config.clock)();
        let context = AppendContext { now, limits: &self.config.limits, recorded: &recorded };
        let account = decide(current, &append.account_id, &append.events, &context).map_err(AppendError::Invalid)?;
        let events = append
            .events
            .iter()
            .zip(&append.payloads)
            .map(|(event, payload)| NewEvent { event_id: event.id, payload: payload.clone() })
            .collect();
        Ok(Staging::Staged(Box::new(StagedRequest {
            append,
            account,
            expected_version: current_version,
            recorded_at: now,
            retracts: !recorded.is_empty(),
            events,
        })))
    }

    /// Stages `append` (see `stage`), or puts its outcome in its slot if it is not to be written.
    fn stage_in_slot(&self, append: Append, slot: usize, staged: &mut Staged, outcomes: &mut Outcomes) {
        match self.stage(append, staged) {
            Ok(Staging::Staged(request)) => staged.push(*request, slot),
            Ok(Staging::Done(outcome)) => outcomes[slot] = Some(Ok(outcome)),
            Err(error) => outcomes[slot] = Some(Err(error)),
        }
    }

    /// Writes the staged requests and puts every outcome in its slot, leaving none staged. A
    /// request the log refused because another writer got there first is staged again, against
    /// the log as it then stands, and written again, at most `MAX_RESTAGES` times: a retry of
    /// the other writer's request then finds it (`duplicate`), an exact expected version that no
    /// longer holds is refused naming the current one, and any other request is decided again.
    fn write(&mut self, staged: &mut Staged, outcomes: &mut Outcomes) {
        let mut restages = 0;
        while !staged.requests.is_empty() {
            let conflicted = self.write_once(staged, outcomes);
            for (request, slot, refusal) in conflicted {
                if restages == MAX_RESTAGES {
                    outcomes[slot] = Some(Err(AppendError::Store(refusal)));
                    continue;
                }
                // The conflicted requests were staged together, so none touches another.
                self.stage_in_slot(request.append, slot, staged, outcomes);
            }
            restages += 1;
        }
    }

    /// Writes the staged requests to the log in one `append_all`, then folds the log in
    /// position order up to its last position: each written request at the positions the log
    /// gave it, every other event as another writer's (they may sit before, between and after
    /// the group's requests). Puts every outcome in its slot, except for the requests the log
    /// refused because another writer got there first, which are returned, to be staged again
    /// against the log now folded.
    fn write_once(&mut self, staged: &mut Staged, outcomes: &mut Outcomes) -> Vec<Conflicted> {
        let requests = staged.take();
        // The data keys the events are sealed under go to disk before the events do: one sync
        // for the new keys of the whole group.
        let keys_written = requests.iter().map(|(request, _)| request.append.keys_written).max();
        if let (Some(keys), Some(written)) = (&self.config.keys, keys_written)
            && written > KeysWritten::default()
            && let Err(error) = keys.make_durable(written)
        {
            let why = format!("the data keys of new contacts could not be made durable: {error}");
            for (_, slot) in requests {
                outcomes[slot] = Some(Err(AppendError::Store(StoreError::Io(why.clone()))));
            }
            return Vec::new();
        }
        let batches: Vec<AppendBatch<'_>> = requests
            .iter()
            .map(|(request, _)| AppendBatch {
                account_id: &request.append.account_id,
                expected_version: request.expected_version,
                recorded_at: request.recorded_at,
                recorded_by: &request.append.recorded_by,
                events: &request.events,
            })
            .collect();
        let results = self.log.append_all(&batches);
        drop(batches);
        let mut written = BTreeMap::new();
        let mut conflicted = Vec::new();
        for ((request, slot), result) in requests.into_iter().zip(results) {
            match result {
                Ok(appended) => {
                    written.insert(appended.first_position, (request, appended, slot));
                }
                // The request passed the writer's checks: another writer got there first.
                Err(refusal @ (StoreError::WrongVersion { .. } | StoreError::DuplicateEventId { .. })) => {
                    conflicted.push((request, slot, refusal));
                }
                Err(error) => outcomes[slot] = Some(Err(AppendError::Store(error))),
            }
        }
        if let Err(error) = self.fold_written(written, outcomes) {
            // Decided again against a log not folded to its end, they would only be refused again.
            for (_, slot, _) in conflicted {
                outcomes[slot] = Some(Err(AppendError::Store(error.clone())));
            }
            return Vec::new();
        }
        conflicted
    }

    /// Folds the log up to its last position, in position order: the `written` requests at
    /// their positions (reusing what `decide` folded), every other event as another writer's.
    /// On an error the written requests not folded yet fail with it: their events are in the
    /// log, where a retry finds them, and the next catch-up folds them as it folds any event.
    fn fold_written(&mut self, written: BTreeMap<u64, Written>, outcomes: &mut Outcomes) -> Result<(), StoreError> {
        let mut written = written.into_values();
        let folded = self.fold_in_order(&mut written, outcomes);
        if let Err(error) = &folded {
            for (_, _, slot) in written {
                outcomes[slot] = Some(Err(AppendError::Store(error.clone())));
            }
        }
        folded
    }

    /// See `fold_written`; stops at the first error, leaving the rest of `written` unfolded.
    fn fold_in_order(
        &mut self,
        written: &mut impl Iterator<Item = Written>,
        outcomes: &mut Outcomes,
    ) -> Result<(), StoreError> {
        let last = self.log.last_position()?;
        for (request, appended, slot) in written {
            let folded = self.fold_others(appended.first_position - 1).and_then(|()| self.fold(request, appended));
            match folded {
                Ok(outcome) => outcomes[slot] = Some(Ok(outcome)),
                Err(error) => {
                    outcomes[slot] = Some(Err(AppendError::Store(error.clone())));
                    return Err(error);
                }
            }
        }
        self.fold_others(last)
    }

    /// Folds what the log holds beyond the folded position (see `fold_others`).
    fn catch_up(&mut self) -> Result<(), StoreError> {
        let last = self.log.last_position()?;
        self.fold_others(last)
    }

    /// Folds the events after the folded position up to `through`, a page at a time, each into
    /// its account's unpublished projection as a build's catch-up folds it: events this writer
    /// did not write (or did not fold when it wrote them).
    fn fold_others(&mut self, through: u64) -> Result<(), StoreError> {
        while self.folded_position < through {
            let from = self.folded_position + 1;
            let limit = (through - self.folded_position).min(OTHERS_PAGE) as usize;
            let page = self.log.read_all(from, limit)?;
            if page.is_empty() {
                return Err(StoreError::Corrupt(format!(
                    "the log's last position is at least {through}, but it holds nothing at position {from}"
                )));
            }
            let rules = Arc::clone(&self.projections.active().rules);
            for record in &page {
                self.fold_other(record, &rules).map_err(read_to_store_error)?;
            }
        }
        Ok(())
    }

    /// Folds one recorded event into its account's unpublished projection.
    fn fold_other(&mut self, record: &StoredEvent, rules: &RuleSet) -> Result<(), ReadError> {
        debug_assert_eq!(record.position, self.folded_position + 1, "the log is folded in position order");
        let event = decode_event(record)?;
        self.retraction_unpublished |= matches!(event.body, EventBody::EventRetracted(_));
        let log = self.log.as_ref();
        match self.unpublished.entry(record.account_id.clone()) {
            // In place: nothing holds an unpublished projection for long (if something does,
            // `make_mut` folds into a copy).
            Entry::Occupied(mut unpublished) => {
                fold_into(log, rules, Arc::make_mut(unpublished.get_mut()), record, &event)?;
            }
            Entry::Vacant(vacant) => {
                let current = self.projections.active().get(&record.account_id)?.map(|p| (*p).clone());
                vacant.insert(Arc::new(fold(log, rules, current, record, &event)?));
            }
        }
        self.folded_position = record.position;
        self.folded_recorded_at = record.recorded_at;
        Ok(())
    }

    /// Folds a written request into its account's unpublished projection: the next event of
    /// the log is its first.
    fn fold(&mut self, request: StagedRequest, appended: Appended) -> Result<AppendOutcome, StoreError> {
        debug_assert_eq!(appended.first_position, self.folded_position + 1, "the log is folded in position order");
        let StagedRequest { append, account, retracts, .. } = request;
        let count = append.events.len() as u64;
        let last_position = appended.first_position + count - 1;
        let rules = Arc::clone(&self.projections.active().rules);
        let folded = |offset: usize, event| Folded {
            event,
            version: appended.first_version + offset as u64,
            position: appended.first_position + offset as u64,
            recorded_at: appended.recorded_at,
        };
        self.retraction_unpublished |= retracts;
        let projection = if retracts {
            // Undoing the retracted events' effects takes a replay of the stream.
            let last_version = appended.first_version + count - 1;
            Some(replay(self.log.as_ref(), &rules, &append.account_id, last_version).map_err(read_to_store_error)?)
        } else if let Some(current) = self.current(&append.account_id)? {
            // `decide` folded the account already; only the rest of the picture is left.
            let mut projection = current.with_account(account);
            for (offset, event) in append.events.iter().enumerate() {
                projection.record(folded(offset, event), &rules);
            }
            Some(projection)
        } else {
            let mut events = append.events.iter().enumerate();
            let opened = events
                .next()
                .and_then(|(offset, event)| AccountProjection::open(append.account_id.clone(), folded(offset, event)));
            opened.map(|mut projection| {
                for (offset, event) in events {
                    projection.apply(folded(offset, event), &rules);
                }
                projection
            })
        };
        if let Some(projection) = projection {
            self.unpublished.insert(append.account_id, Arc::new(projection));
        }
        self.folded_position = last_position;
        self.folded_recorded_at = appended.recorded_at;
        Ok(AppendOutcome {
            first_version: appended.first_version,
            first_position: appended.first_position,
            events: count,
            duplicate: false,
        })
    }

    /// The original outcome if the request is a retry of the one that recorded its event ids,
    /// a refusal if it reuses them otherwise, `None` if none is recorded (see `idempotency`).
    fn find_earlier_try(&self, append: &Append) -> Result<Option<AppendOutcome>, AppendError> {
        let ids: Vec<EventId> = append.events.iter().map(|e| e.id).collect();
        let found =
            ids.iter().map(|id| self.log.find_event(id)).collect::<Result<Vec<_>, _>>().map_err(AppendError::Store)?;
        judge(&append.account_id, &ids, &append.payloads, &found)
    }

    /// The recorded facts about each event the batch retracts (absent if not recorded).
    fn retraction_targets(&self, events: &[Event]) -> Result<BTreeMap<EventId, RecordedFacts>, AppendError> {
        let mut recorded = BTreeMap::new();
        for event in events {
            let EventBody::EventRetracted(retraction) = &event.body else { continue };
            let Some(record) = self.log.find_event(&retraction.target).map_err(AppendError::Store)? else { continue };
            let target = decode_event(&record).map_err(|e| AppendError::Store(StoreError::Corrupt(e.to_string())))?;
            recorded.insert(
                retraction.target,
                RecordedFacts { account_id: record.account_id.clone(), kind: target.body.kind() },
            );
        }
        Ok(recorded)
    }
}

/// A read of the log or of the projection that failed, as the store error an append reports:
/// a stored event or projection that does not decode is corrupt storage.
fn read_to_store_error(error: ReadError) -> StoreError {
    match error {
        ReadError::Store(store) => store,
        other => StoreError::Corrupt(other.to_string()),
    }
}
