//! The writer thread's group loop: each group of queued requests is staged (decided in turn
//! against the accounts as the requests before it leave them), written in one
//! `EventLog::append_all`, folded, made durable by one sync and published before any reply.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use rapport_domain::{Account, AccountId, AppendContext, Event, EventBody, EventId, RecordedFacts, Timestamp, decide};
use rapport_keys::KeysWritten;
use rapport_projection::{AccountProjection, Folded};
use rapport_store::{AppendBatch, Appended, EventLog, NewEvent, StoreError};
use rapport_wire::decode_event;
use tokio::sync::mpsc;
use tracing::{debug, error, warn};

use super::Command;
use crate::append::{Append, AppendOutcome};
use crate::config::ServerConfig;
use crate::error::{AppendError, ReadError};
use crate::idempotency::judge;
use crate::projection::{Projections, replay};

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
    /// Accounts changed by appends whose sync has not succeeded yet, folded under the active
    /// build's rule set.
    unpublished: HashMap<AccountId, Arc<AccountProjection>>,
    /// The log's last position once `unpublished` is durable.
    unpublished_position: u64,
    /// The recording time of the event at `unpublished_position`.
    unpublished_recorded_at: Timestamp,
}

impl Sequencer {
    pub(super) fn new(log: Arc<dyn EventLog>, projections: Arc<Projections>, config: ServerConfig) -> Sequencer {
        Sequencer {
            log,
            projections,
            config,
            unpublished: HashMap::new(),
            unpublished_position: 0,
            unpublished_recorded_at: Timestamp::EPOCH,
        }
    }

    /// Takes groups from the queue until it is closed (see the module's docs).
    pub(super) fn run(mut self, mut queue: mpsc::Receiver<Command>) {
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
                        // A request that looks up what the staged ones would write (a retry of
                        // one of them, a retraction of one of their events) sees it written.
                        if staged.touches(&append) {
                            self.write(&mut staged, &mut outcomes);
                        }
                        outcomes.push(None);
                        match self.stage(append, &staged) {
                            Ok(Staging::Staged(request)) => staged.push(*request, slot),
                            Ok(Staging::Done(outcome)) => outcomes[slot] = Some(Ok(outcome)),
                            Err(error) => outcomes[slot] = Some(Err(error)),
                        }
                    }
                    Command::Activate { build, reply } => activations.push((build, reply)),
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

    /// Makes everything appended so far durable and publishes it.
    fn sync(&mut self) -> Result<(), StoreError> {
        if self.unpublished.is_empty() {
            return Ok(());
        }
        if let Err(error) = self.log.sync() {
            warn!(%error, "sync failed; the group's appends are not acknowledged");
            return Err(error);
        }
        self.projections.publish(self.unpublished.drain(), self.unpublished_position, self.unpublished_recorded_at);
        Ok(())
    }

    fn current(&self, account_id: &AccountId) -> Result<Option<Arc<AccountProjection>>, AppendError> {
        if let Some(found) = self.unpublished.get(account_id) {
            return Ok(Some(Arc::clone(found)));
        }
        self.projections.active().get(account_id).map_err(read_to_append_error)
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
                projected = self.current(&append.account_id)?;
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

    /// Writes the staged requests to the log in one `append_all`, folds each written one into
    /// the unpublished projection, and puts every outcome in its slot.
    fn write(&mut self, staged: &mut Staged, outcomes: &mut [Option<Result<AppendOutcome, AppendError>>]) {
        if staged.requests.is_empty() {
            return;
        }
        // The data keys the events are sealed under go to disk before the events do: one sync
        // for the new keys of the whole group.
        let keys_written = staged.requests.iter().map(|(request, _)| request.append.keys_written).max();
        if let (Some(keys), Some(written)) = (&self.config.keys, keys_written)
            && written > KeysWritten::default()
            && let Err(error) = keys.make_durable(written)
        {
            let why = format!("the data keys of new contacts could not be made durable: {error}");
            for (_, slot) in std::mem::take(&mut staged.requests) {
                outcomes[slot] = Some(Err(AppendError::Store(StoreError::Io(why.clone()))));
            }
            staged.accounts.clear();
            staged.ids.clear();
            return;
        }
        let batches: Vec<AppendBatch<'_>> = staged
            .requests
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
        let requests = std::mem::take(&mut staged.requests);
        staged.accounts.clear();
        staged.ids.clear();
        for ((request, slot), result) in requests.into_iter().zip(results) {
            let outcome = match result {
                Ok(appended) => self.fold(request, appended),
                Err(error) => Err(AppendError::Store(error)),
            };
            outcomes[slot] = Some(outcome);
        }
    }

    /// Folds a written request into its account's unpublished projection.
    fn fold(&mut self, request: StagedRequest, appended: Appended) -> Result<AppendOutcome, AppendError> {
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
        let projection = if retracts {
            // Undoing the retracted events' effects takes a replay of the stream.
            let last_version = appended.first_version + count - 1;
            Some(replay(self.log.as_ref(), &rules, &append.account_id, last_version).map_err(read_to_append_error)?)
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
        self.unpublished_position = last_position;
        self.unpublished_recorded_at = appended.recorded_at;
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

fn read_to_append_error(error: ReadError) -> AppendError {
    match error {
        ReadError::Store(store) => AppendError::Store(store),
        other => AppendError::Store(StoreError::Corrupt(other.to_string())),
    }
}
