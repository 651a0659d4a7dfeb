//! `Ledger.Subscribe`: the log from a position on, then live.
//!
//! Each subscription is a task with its own cursor into the log. It takes pages up to the
//! durable position, sends what its filter lets through, moves its cursor, and when it has
//! caught up waits for the durable position to move (a `watch` channel the writer updates).
//! The pages are rendered once for every subscription that reads them ([`crate::feed`]):
//! each event read, opened, encoded and framed once, and its bytes shared; the stream carries
//! framed gRPC messages, which [`crate::service::SubscribeRoute`] hands to HTTP/2 as they are. Catch-up and live are the same
//! loop over the same log, so there is no hand-over at which an event could be lost or
//! repeated; and a slow subscriber only slows its own cursor: appends and other subscribers
//! never wait for it.

use std::ops::Range;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt, stream};
use rapport_domain::EventFilter;
use rapport_proto::framed::framed;
use rapport_proto::v1 as pb;
use rapport_wire::replies::{subscription_checkpoint, subscription_heartbeat};
use rapport_wire::requests::{event_filter, interval};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use crate::error::{ReadError, SubscriptionEnd};
use crate::feed::{self, Page};
use crate::state::AppState;
use crate::subscribers::Slot;

/// Sends buffered per subscriber before the task waits for the client: each is a run of a page's
/// events (up to a page of them, 512) or one checkpoint or heartbeat.
const BUFFER: usize = 4;
/// How often a checkpoint is sent while the cursor moves, unless the request says.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// How long an idle subscription waits before a heartbeat, unless the request says.
const HEARTBEAT_AFTER: Duration = Duration::from_secs(5);

/// The stream a subscriber reads: `SubscribeResponse`s framed as gRPC sends them, one or
/// more to an item.
pub type SubscriptionStream = Pin<Box<dyn Stream<Item = Result<Bytes, Status>> + Send>>;

/// Starts a subscription for `client` (who it counts against); the stream ends only when the
/// client goes, or with a status that says why the server ended it.
pub(crate) fn subscribe(
    state: Arc<AppState>,
    request: &pb::SubscribeRequest,
    client: String,
) -> Result<SubscriptionStream, ReadError> {
    let filter = event_filter(request.filter.as_ref(), &state.limits).map_err(ReadError::Invalid)?;
    let checkpoint_every = interval(request.checkpoint_interval_ms, CHECKPOINT_EVERY, "checkpoint_interval_ms")
        .map_err(ReadError::Invalid)?;
    let heartbeat_after = interval(request.heartbeat_interval_ms, HEARTBEAT_AFTER, "heartbeat_interval_ms")
        .map_err(ReadError::Invalid)?;
    let slot = state.subscribers.take(client, request.from_position.max(1))?;
    let (sender, receiver) = mpsc::channel(BUFFER);
    // The status that ends the stream is delivered after whatever is still buffered.
    let ending: Arc<Mutex<Option<Status>>> = Arc::default();
    let subscription = Subscription {
        state,
        filter: Arc::new(filter),
        cursor: request.from_position.max(1),
        checkpoint_every,
        heartbeat_after,
        sender,
        ending: Arc::clone(&ending),
        slot,
    };
    tokio::spawn(subscription.run());
    let end = stream::once(async move { ending.lock().unwrap_or_else(PoisonError::into_inner).take().map(Err) })
        .filter_map(|status| async move { status });
    Ok(Box::pin(ReceiverStream::new(receiver).chain(end)))
}

struct Subscription {
    state: Arc<AppState>,
    filter: Arc<EventFilter>,
    /// The next position to consider.
    cursor: u64,
    checkpoint_every: Duration,
    heartbeat_after: Duration,
    sender: mpsc::Sender<Result<Bytes, Status>>,
    ending: Arc<Mutex<Option<Status>>>,
    /// Held while the task runs; it shows the cursor to the metrics.
    slot: Slot,
}

/// Why a subscription task stopped.
enum Stop {
    /// The client went away.
    Gone,
    /// The server ends it, for this reason.
    Ended(SubscriptionEnd),
}

impl From<ReadError> for Stop {
    fn from(error: ReadError) -> Self {
        Stop::Ended(SubscriptionEnd::Read(error))
    }
}

impl Subscription {
    async fn run(mut self) {
        if let Err(Stop::Ended(end)) = self.follow().await {
            *self.ending.lock().unwrap_or_else(PoisonError::into_inner) = Some(Status::from(end));
        }
        // Dropping the sender ends the stream after what is buffered, then the ending status.
    }

    fn shutting_down(&self) -> Stop {
        Stop::Ended(SubscriptionEnd::ShuttingDown { resume_from: self.cursor })
    }

    async fn follow(&mut self) -> Result<(), Stop> {
        let mut durable = self.state.projections.durable_watch();
        let mut closing = self.state.closing.clone();
        let mut last_checkpoint = Instant::now();
        let mut checkpointed = self.cursor - 1;
        let mut last_sent = Instant::now();
        loop {
            if *closing.borrow() {
                return Err(self.shutting_down());
            }
            let head = self.state.projections.durable_position();
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
            if self.cursor <= self.state.projections.durable_position() {
                continue;
            }
            if now >= last_sent + self.heartbeat_after {
                // Idle: say so, with the position, so that the client can still store progress.
                self.send(framed(&subscription_heartbeat(head, (self.state.clock)()))).await?;
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
                _ = closing.changed() => {}
                _ = self.sender.closed() => return Err(Stop::Gone),
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    /// Sends what the filter lets through from the cursor up to `head` (a page at most): the
    /// page every subscription shares, or, filtering by account, one of its own.
    async fn send_page(&mut self, head: u64) -> Result<(), Stop> {
        let from = self.cursor;
        let page = if self.filter.admits_every_account() {
            self.state.feed.page(&self.state, from, head).await?
        } else {
            feed::render(Arc::clone(&self.state), from, head, Some(Arc::clone(&self.filter))).await?
        };
        // Each run of events the filter lets through goes in one send: a whole page, when it
        // lets every event through.
        let start = page.events.partition_point(|event| event.position < from);
        let mut run = start..start;
        for (i, event) in page.events.iter().enumerate().skip(start) {
            let admitted = self.filter.admits_account(&event.account_id)
                && event.kind.is_some_and(|kind| self.filter.admits_kind(kind));
            if admitted {
                run = if run.is_empty() { i..i + 1 } else { run.start..i + 1 };
            } else if !run.is_empty() {
                self.send_run(&page, std::mem::replace(&mut run, i..i)).await?;
            }
        }
        if !run.is_empty() {
            self.send_run(&page, run).await?;
        }
        if let Some(last) = page.last {
            self.cursor = last + 1;
        }
        self.slot.advance(self.cursor);
        Ok(())
    }

    /// Sends a run of a page's events.
    async fn send_run(&mut self, page: &Page, run: Range<usize>) -> Result<(), Stop> {
        // Everything before the run's first event was sent or filtered out.
        if let Some(first) = page.events.get(run.start) {
            self.cursor = first.position;
        }
        self.send(page.framed(run)).await
    }

    /// Every position before the cursor has been considered.
    fn checkpoint(&self, head: u64) -> Bytes {
        framed(&subscription_checkpoint(self.cursor - 1, head, (self.state.clock)()))
    }

    /// Sends framed messages, waiting for the client at most the configured stall time.
    async fn send(&self, message: Bytes) -> Result<(), Stop> {
        let stall = self.state.subscriber_stall_timeout;
        match tokio::time::timeout(stall, self.sender.send(Ok(message))).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Stop::Gone),
            Err(_) => {
                Err(Stop::Ended(SubscriptionEnd::Stalled { stall_ms: stall.as_millis(), resume_from: self.cursor }))
            }
        }
    }
}
