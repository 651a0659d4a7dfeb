//! `Ledger.Subscribe`: the log from a position on, then live.
//!
//! Each subscription is a task with its own cursor into the log. It reads pages up to the
//! durable position, sends what its filter lets through, moves its cursor, and when it has
//! caught up waits for the durable position to move (a `watch` channel the writer updates;
//! nothing is fanned out). Catch-up and live are the same loop over the same log, so there is
//! no hand-over at which an event could be lost or repeated; and a slow subscriber only slows
//! its own cursor: appends and other subscribers never wait for it.

use std::collections::{HashMap, HashSet};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::{Stream, StreamExt, stream};
use rapport_domain::{AccountId, EventKind};
use rapport_proto::v1 as pb;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use crate::convert::{account_id_from_wire, kind_of, recorded_to_wire, timestamp_to_wire};
use crate::error::ReadError;
use crate::service::Shared;

/// Events read from the log per page.
const PAGE: usize = 512;
/// Messages buffered per subscriber before the task waits for the client.
const BUFFER: usize = 256;

/// The stream a subscriber reads.
pub type SubscriptionStream = Pin<Box<dyn Stream<Item = Result<pb::SubscribeResponse, Status>> + Send>>;

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
    fn take(&self, client: String) -> Result<Slot, ReadError> {
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
struct Slot {
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

/// What a subscriber wants to see.
#[derive(Debug, Clone, Default)]
struct Filter {
    kinds: Option<HashSet<EventKind>>,
    accounts: Option<HashSet<AccountId>>,
    prefix: String,
}

impl Filter {
    fn from_wire(filter: Option<&pb::SubscribeFilter>, shared: &Shared) -> Result<Filter, ReadError> {
        let Some(filter) = filter else { return Ok(Filter::default()) };
        let mut kinds = HashSet::new();
        for (i, name) in filter.event_types.iter().enumerate() {
            let kind = EventKind::ALL.into_iter().find(|k| k.name() == name).ok_or_else(|| {
                let names: Vec<&str> = EventKind::ALL.iter().map(|k| k.name()).collect();
                ReadError::Invalid(
                    rapport_domain::InvalidValue::new(format!(
                        "{name:?} is not an event type; use one of {}",
                        names.join(", ")
                    ))
                    .at(format!("filter.event_types[{i}]")),
                )
            })?;
            kinds.insert(kind);
        }
        let mut accounts = HashSet::new();
        for (i, id) in filter.account_ids.iter().enumerate() {
            let field = format!("filter.account_ids[{i}]");
            accounts.insert(account_id_from_wire(id, &field, &shared.limits).map_err(ReadError::Invalid)?);
        }
        Ok(Filter {
            kinds: (!kinds.is_empty()).then_some(kinds),
            accounts: (!accounts.is_empty()).then_some(accounts),
            prefix: filter.account_id_prefix.clone(),
        })
    }

    fn account(&self, account_id: &AccountId) -> bool {
        account_id.as_str().starts_with(&self.prefix) && self.accounts.as_ref().is_none_or(|a| a.contains(account_id))
    }

    fn kind(&self, event: &pb::RecordedEvent) -> bool {
        let Some(kinds) = &self.kinds else { return true };
        event.event.as_ref().and_then(|e| e.body.as_ref()).is_some_and(|body| kinds.contains(&kind_of(body)))
    }
}

fn interval(ms: u32, default_ms: u64, field: &str) -> Result<Duration, ReadError> {
    match ms {
        0 => Ok(Duration::from_millis(default_ms)),
        10..=60_000 => Ok(Duration::from_millis(u64::from(ms))),
        _ => Err(ReadError::Invalid(
            rapport_domain::InvalidValue::new(format!(
                "{ms} ms is out of range; give 10 to 60000, or 0 for the default"
            ))
            .at(field),
        )),
    }
}

/// Starts a subscription for `client` (who it counts against); the stream ends only when the
/// client goes, or with a status that says why the server ended it.
pub(crate) fn subscribe(
    shared: Arc<Shared>,
    request: &pb::SubscribeRequest,
    client: String,
) -> Result<SubscriptionStream, ReadError> {
    let filter = Filter::from_wire(request.filter.as_ref(), &shared)?;
    let checkpoint_every = interval(request.checkpoint_interval_ms, 1_000, "checkpoint_interval_ms")?;
    let heartbeat_after = interval(request.heartbeat_interval_ms, 5_000, "heartbeat_interval_ms")?;
    let slot = shared.subscribers.take(client)?;
    let (sender, receiver) = mpsc::channel(BUFFER);
    // The status that ends the stream is delivered after whatever is still buffered.
    let ending: Arc<Mutex<Option<Status>>> = Arc::default();
    let subscription = Subscription {
        shared,
        filter,
        cursor: request.from_position.max(1),
        checkpoint_every,
        heartbeat_after,
        sender,
        ending: Arc::clone(&ending),
        _slot: slot,
    };
    tokio::spawn(subscription.run());
    let end = stream::once(async move { ending.lock().unwrap_or_else(PoisonError::into_inner).take().map(Err) })
        .filter_map(|status| async move { status });
    Ok(Box::pin(ReceiverStream::new(receiver).chain(end)))
}

struct Subscription {
    shared: Arc<Shared>,
    filter: Filter,
    /// The next position to consider.
    cursor: u64,
    checkpoint_every: Duration,
    heartbeat_after: Duration,
    sender: mpsc::Sender<Result<pb::SubscribeResponse, Status>>,
    ending: Arc<Mutex<Option<Status>>>,
    /// Held while the task runs.
    _slot: Slot,
}

/// Why a subscription task stopped.
enum Stop {
    /// The client went away.
    Gone,
    /// The server ends it, with this status.
    Ended(Status),
}

impl Subscription {
    async fn run(mut self) {
        if let Err(Stop::Ended(status)) = self.follow().await {
            *self.ending.lock().unwrap_or_else(PoisonError::into_inner) = Some(status);
        }
        // Dropping the sender ends the stream after what is buffered, then the ending status.
    }

    async fn follow(&mut self) -> Result<(), Stop> {
        let mut durable = self.shared.projections.durable_watch();
        let mut closing = self.shared.closing.clone();
        let mut last_checkpoint = Instant::now();
        let mut checkpointed = self.cursor - 1;
        let mut last_sent = Instant::now();
        loop {
            if *closing.borrow() {
                return Err(Stop::Ended(Status::unavailable(format!(
                    "the server is shutting down; subscribe again from position {} to resume",
                    self.cursor
                ))));
            }
            let head = self.shared.projections.durable_position();
            if self.cursor <= head {
                self.send_page(head).await?;
                last_sent = Instant::now();
            }
            let now = Instant::now();
            if now >= last_checkpoint + self.checkpoint_every && self.cursor - 1 != checkpointed {
                self.send(self.checkpoint(head)).await?;
                checkpointed = self.cursor - 1;
                last_checkpoint = now;
                last_sent = now;
            }
            if self.cursor <= self.shared.projections.durable_position() {
                continue;
            }
            if now >= last_sent + self.heartbeat_after {
                // Idle: say so, with the position, so that the client can still store progress.
                self.send(self.heartbeat(head)).await?;
                if self.cursor - 1 != checkpointed {
                    self.send(self.checkpoint(head)).await?;
                    checkpointed = self.cursor - 1;
                }
                last_sent = now;
            }
            // A checkpoint is only due when the cursor moved since the last one.
            let next_heartbeat = last_sent + self.heartbeat_after;
            let wake = if self.cursor - 1 != checkpointed {
                next_heartbeat.min(last_checkpoint + self.checkpoint_every)
            } else {
                next_heartbeat
            };
            tokio::select! {
                _ = durable.changed() => {}
                changed = closing.changed() => {
                    if changed.is_err() {
                        return Err(Stop::Ended(Status::unavailable("the server stopped")));
                    }
                }
                _ = self.sender.closed() => return Err(Stop::Gone),
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    /// Sends what the filter lets through from the cursor up to `head` (a page at most).
    async fn send_page(&mut self, head: u64) -> Result<(), Stop> {
        let (log, from) = (Arc::clone(&self.shared.log), self.cursor);
        let limit = usize::try_from(head - from + 1).unwrap_or(PAGE).min(PAGE);
        let page = match tokio::task::spawn_blocking(move || log.read_all(from, limit)).await {
            Ok(Ok(page)) => page,
            Ok(Err(error)) => return Err(Stop::Ended(Status::from(ReadError::from(error)))),
            Err(error) => return Err(Stop::Ended(Status::internal(format!("a read task failed: {error}")))),
        };
        for record in &page {
            if self.filter.account(&record.account_id) {
                let event = recorded_to_wire(record).map_err(|e| Stop::Ended(Status::from(e)))?;
                if self.filter.kind(&event) {
                    self.send(pb::SubscribeResponse { kind: Some(pb::subscribe_response::Kind::Event(event)) }).await?;
                }
            }
            self.cursor = record.position + 1;
        }
        Ok(())
    }

    /// Every position before the cursor has been considered.
    fn checkpoint(&self, head: u64) -> pb::SubscribeResponse {
        let at = Some(timestamp_to_wire((self.shared.clock)()));
        let checkpoint = pb::SubscriptionCheckpoint { position: self.cursor - 1, at, head };
        pb::SubscribeResponse { kind: Some(pb::subscribe_response::Kind::Checkpoint(checkpoint)) }
    }

    fn heartbeat(&self, head: u64) -> pb::SubscribeResponse {
        let at = Some(timestamp_to_wire((self.shared.clock)()));
        pb::SubscribeResponse { kind: Some(pb::subscribe_response::Kind::Heartbeat(pb::Heartbeat { at, head })) }
    }

    /// Sends one message, waiting for the client at most the configured stall time.
    async fn send(&self, message: pb::SubscribeResponse) -> Result<(), Stop> {
        let stall = self.shared.subscriber_stall_timeout;
        match tokio::time::timeout(stall, self.sender.send(Ok(message))).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Stop::Gone),
            Err(_) => Err(Stop::Ended(Status::resource_exhausted(format!(
                "the subscriber did not read for {} ms, so the server ended the subscription; subscribe again \
                 from the last checkpoint's position + 1 (everything before position {} was sent or filtered out)",
                stall.as_millis(),
                self.cursor
            )))),
        }
    }
}
