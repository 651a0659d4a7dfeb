//! The single writer of the log, and its group commit.
//!
//! Every append goes through one sequencer thread, so the checks an append depends on (the
//! stream's version, the account's state, whether an event id is taken) cannot race with
//! another append. The thread takes every request waiting in its queue as one group and
//! decides each request in turn against the accounts as the requests before it leave them
//! (staging); it writes the staged requests to the log in one [`EventLog::append_all`] (one
//! sled batch for the group: far cheaper to apply and to sync than one per request), folds
//! them into the projection, makes the whole group durable with one [`EventLog::sync`] and
//! only then replies. A request that would look up an event a staged request holds (a retry of
//! it, a retraction of it) first has the staged ones written, so it sees them in the log. While a sync runs, new requests queue up and form
//! the next group, so the number of syncs per second stays near the disk's limit while the
//! number of events per sync grows with the load.
//!
//! A request's reply is sent after the sync that covers it: an acknowledged event is durable.
//! If a sync fails, the group's appends are reported as failed (they may or may not survive a
//! crash); their events stay in the log, unpublished, and become durable and visible with the
//! next successful sync. A retry with the same event ids then finds them and gets the original
//! versions and positions.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Instant;

use bytes::Bytes;
use rapport_domain::{Account, AccountId, AppendContext, Event, EventBody, EventId, RecordedFacts, Timestamp, decide};
use rapport_projection::{AccountProjection, Folded};
use rapport_store::{AppendBatch, Appended, EventLog, NewEvent, StoreError};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, error, warn};

use crate::ServerConfig;
use crate::convert::decode_event;
use crate::error::{AppendError, Expected, ReadError};
use crate::projection::{Build, Projections, replay};

/// Requests that may wait for the writer; beyond this, handlers wait to enqueue.
const QUEUE_CAPACITY: usize = 4_096;

/// An append the handler has parsed and validated field by field.
#[derive(Debug)]
pub(crate) struct Append {
    /// The stream.
    pub account_id: AccountId,
    /// The client's belief about the stream.
    pub expected: Expected,
    /// The events, in order.
    pub events: Vec<Event>,
    /// Each event's canonical encoding, as the log stores it (same order as `events`).
    pub payloads: Vec<Bytes>,
    /// The authenticated identity appending them; empty without authentication.
    pub recorded_by: String,
}

/// Where an append's events are, whether just written or found from an earlier try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AppendOutcome {
    pub first_version: u64,
    pub last_version: u64,
    pub first_position: u64,
    pub last_position: u64,
    /// The events were already recorded by an earlier try of the same request.
    pub duplicate: bool,
}

enum Command {
    Append {
        append: Append,
        reply: oneshot::Sender<Result<AppendOutcome, AppendError>>,
    },
    /// Switch the served build, between groups (see [`Projections::activate`]).
    Activate {
        build: Arc<Build>,
        reply: oneshot::Sender<Result<String, ReadError>>,
    },
    Close,
}

/// The handle request handlers use to reach the writer thread.
pub(crate) struct Writer {
    commands: mpsc::Sender<Command>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Writer {
    /// Starts the writer thread over a log whose durable state `projections` show.
    pub fn start(
        log: Arc<dyn EventLog>,
        projections: Arc<Projections>,
        config: &ServerConfig,
    ) -> std::io::Result<Writer> {
        let (commands, queue) = mpsc::channel(QUEUE_CAPACITY);
        let sequencer = Sequencer {
            log,
            projections,
            config: config.clone(),
            unpublished: HashMap::new(),
            unpublished_position: 0,
            unpublished_recorded_at: Timestamp::EPOCH,
        };
        let thread = std::thread::Builder::new().name("rapport-writer".into()).spawn(move || sequencer.run(queue))?;
        Ok(Writer { commands, thread: Mutex::new(Some(thread)) })
    }

    /// Appends, and returns once the events are durable (or the append failed).
    pub async fn append(&self, append: Append) -> Result<AppendOutcome, AppendError> {
        let (reply, outcome) = oneshot::channel();
        self.commands.send(Command::Append { append, reply }).await.map_err(|_| AppendError::ShuttingDown)?;
        // A dropped reply means the writer stopped before it got to this request.
        outcome.await.map_err(|_| AppendError::ShuttingDown)?
    }

    /// Makes `build` the served one, once every durable event is folded into it. Returns the
    /// id of the build served before.
    pub async fn activate(&self, build: Arc<Build>) -> Result<String, ReadError> {
        let (reply, outcome) = oneshot::channel();
        let shutting_down = || ReadError::Busy("the server is shutting down".to_owned());
        self.commands.send(Command::Activate { build, reply }).await.map_err(|_| shutting_down())?;
        outcome.await.map_err(|_| shutting_down())?
    }

    /// Lets the writer finish the requests queued before this call, then stops it. Requests
    /// queued later are refused with `ShuttingDown`.
    pub async fn close(&self) {
        if self.commands.send(Command::Close).await.is_err() {
            return; // Already stopped.
        }
        let thread = self.thread.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(thread) = thread {
            let joined = tokio::task::spawn_blocking(move || thread.join()).await;
            if !matches!(joined, Ok(Ok(()))) {
                error!("the writer thread panicked");
            }
        }
    }
}

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
struct Sequencer {
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
    fn run(mut self, mut queue: mpsc::Receiver<Command>) {
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
            last_version: appended.first_version + count - 1,
            first_position: appended.first_position,
            last_position,
            duplicate: false,
        })
    }

    /// If the request's event ids are already recorded, decides whether this is a retry of
    /// the request that recorded them (same account, same content, same order: the original
    /// outcome) or a conflict (`EventIdTaken`). `None` when no id is recorded.
    fn find_earlier_try(&self, append: &Append) -> Result<Option<AppendOutcome>, AppendError> {
        let mut found = Vec::with_capacity(append.events.len());
        for event in &append.events {
            found.push(self.log.find_event(&event.id).map_err(AppendError::Store)?);
        }
        let Some(first_found) = found.iter().position(Option::is_some) else { return Ok(None) };
        let taken = |index: usize, detail: String| AppendError::EventIdTaken {
            index,
            event_id: append.events[index].id,
            detail,
        };
        let mut first: Option<(u64, u64)> = None;
        for (index, record) in found.iter().enumerate() {
            let Some(record) = record else {
                return Err(taken(
                    first_found,
                    format!(
                        "is already recorded, but events[{index}] of this request is not: a retry must resend the \
                         original request unchanged, and new events need new event ids"
                    ),
                ));
            };
            let at =
                format!("account \"{}\", version {}, position {}", record.account_id, record.version, record.position);
            if record.account_id != append.account_id {
                return Err(taken(
                    index,
                    format!(
                        "is already recorded in another stream ({at}); event ids are unique across the log, give this event a new id"
                    ),
                ));
            }
            if record.payload != append.payloads[index] {
                return Err(taken(
                    index,
                    format!(
                        "is already recorded with different content ({at}); a retry must resend the same event, a new event needs a new id"
                    ),
                ));
            }
            let (first_version, first_position) = *first.get_or_insert((record.version, record.position));
            let offset = index as u64;
            if record.version != first_version + offset || record.position != first_position + offset {
                return Err(taken(
                    index,
                    format!(
                        "is already recorded ({at}), but not right after the events before it in this request; resend each original request as it was"
                    ),
                ));
            }
        }
        let Some((first_version, first_position)) = first else { return Ok(None) };
        let count = append.events.len() as u64;
        Ok(Some(AppendOutcome {
            first_version,
            last_version: first_version + count - 1,
            first_position,
            last_position: first_position + count - 1,
            duplicate: true,
        }))
    }

    /// The recorded facts about each event the batch retracts (absent if not recorded).
    fn retraction_targets(&self, events: &[Event]) -> Result<BTreeMap<EventId, RecordedFacts>, AppendError> {
        let mut recorded = BTreeMap::new();
        for event in events {
            let EventBody::EventRetracted(retraction) = &event.body else { continue };
            let Some(record) = self.log.find_event(&retraction.target).map_err(AppendError::Store)? else { continue };
            let target = decode_event(&record).map_err(read_to_append_error)?;
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
