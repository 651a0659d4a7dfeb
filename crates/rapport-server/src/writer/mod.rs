//! The server's single writer of the log, and its group commit.
//!
//! Every append goes through one sequencer thread, so the checks an append depends on (the
//! stream's version, the account's state, whether an event id is taken) cannot race with
//! another append of this server. The thread takes every request waiting in its queue as one
//! group and decides each request in turn against the accounts as the requests before it leave
//! them (staging); it writes the staged requests to the log in one [`EventLog::append_all`]
//! (one frame on the segment log, one batch on sled: far cheaper to write and to sync than one
//! per request), folds them into the projection, makes the whole group durable with one
//! [`EventLog::sync`] and only then replies. A request that would look up an event a staged
//! request holds (a retry of it, a retraction of it) first has the staged ones written, so it
//! sees them in the log. While a sync runs, new requests queue up and form the next group, so
//! the number of syncs per second stays near the disk's limit while the number of events per
//! sync grows with the load. The group loop itself is `group.rs`.
//!
//! A request's reply is sent after the sync that covers it: an acknowledged event is durable.
//! If a sync fails, the group's appends are reported as failed (they may or may not survive a
//! crash); their events stay in the log, unpublished, and become durable and visible with the
//! next successful sync. A retry with the same event ids then finds them and gets the original
//! versions and positions.
//!
//! On a replicated log this thread is one writer of several (one per node). It folds every
//! event of the log, in position order, whoever wrote it: before each group it folds what the
//! others appended since, and after a write the events they put before, between and after the
//! group's own requests; the log's notification of other writers' appends queues a
//! `Command::CatchUp`, so that an idle node follows too. A published position never passes an
//! event not folded. The checks it makes can then race with another node's append, and the log
//! settles the race: it refuses the later batch (`WrongVersion`, `DuplicateEventId`), and the
//! writer stages that request again against the log as it now stands (`group.rs`).

mod group;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use rapport_store::EventLog;
use tokio::sync::{mpsc, oneshot};
use tracing::error;

use crate::append::{Append, AppendOutcome};
use crate::config::{QueueHook, ServerConfig};
use crate::error::{AppendError, ReadError};
use crate::feed::Feed;
use crate::metrics::Metrics;
use crate::projection::{Build, Projections};
use group::Sequencer;

/// Requests that may wait for the writer; beyond this, handlers wait to enqueue.
const QUEUE_CAPACITY: usize = 4_096;

/// What the writer thread is asked to do, in queue order.
pub(super) enum Command {
    Append {
        append: Append,
        reply: oneshot::Sender<Result<AppendOutcome, AppendError>>,
    },
    /// Switch the served build, between groups (see [`Projections::activate`]).
    Activate {
        build: Arc<Build>,
        reply: oneshot::Sender<Result<String, ReadError>>,
    },
    /// Fold what other writers appended and publish it (see `Writer::start`).
    CatchUp,
    Close,
}

/// The handle request handlers use to reach the writer thread.
pub(crate) struct Writer {
    commands: mpsc::Sender<Command>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Told of every append that joins the queue.
    queued: Option<QueueHook>,
    /// Whether the writer's last sync succeeded.
    writable: Arc<AtomicBool>,
}

impl Writer {
    /// Starts the writer thread over a log whose durable state `projections` show, and asks
    /// the log to tell it of other writers' appends.
    pub fn start(
        log: Arc<dyn EventLog>,
        projections: Arc<Projections>,
        config: &ServerConfig,
        metrics: Arc<Metrics>,
        feed: Arc<Feed>,
    ) -> std::io::Result<Writer> {
        let (commands, queue) = mpsc::channel(QUEUE_CAPACITY);
        let writable = Arc::new(AtomicBool::new(true));
        let catch_up_queued = Arc::new(AtomicBool::new(false));
        let (queued, weak_commands) = (Arc::clone(&catch_up_queued), commands.downgrade());
        // Called by the log, maybe on its own task or on another writer's thread: it never
        // blocks. One `CatchUp` waiting in the queue covers every append until it is taken, so
        // notifications are coalesced. A full queue holds appends, and every group catches up
        // before it stages. The sender is weak: the log, which may outlive this server, does
        // not hold its queue open.
        log.on_foreign_appends(Box::new(move || {
            if queued.swap(true, Ordering::AcqRel) {
                return;
            }
            let sent = weak_commands.upgrade().is_some_and(|commands| commands.try_send(Command::CatchUp).is_ok());
            if !sent {
                queued.store(false, Ordering::Release);
            }
        }));
        let sequencer =
            Sequencer::new(log, projections, config.clone(), catch_up_queued, metrics, Arc::clone(&writable), feed);
        let thread = std::thread::Builder::new().name("rapport-writer".into()).spawn(move || sequencer.run(queue))?;
        Ok(Writer { commands, thread: Mutex::new(Some(thread)), queued: config.on_append_queued.clone(), writable })
    }

    /// Whether appends can be made durable now: the writer runs and its last sync succeeded.
    pub fn is_writable(&self) -> bool {
        !self.commands.is_closed() && self.writable.load(Ordering::Acquire)
    }

    /// Appends, and returns once the events are durable (or the append failed).
    pub async fn append(&self, append: Append) -> Result<AppendOutcome, AppendError> {
        self.submit(append).await?.await
    }

    /// Queues an append, and returns once it is queued: the writer decides queued appends in
    /// queue order, so appends submitted one after the other are decided in that order. The
    /// future returned completes once the events are durable (or the append failed).
    pub async fn submit(
        &self,
        append: Append,
    ) -> Result<impl Future<Output = Result<AppendOutcome, AppendError>> + Send + 'static, AppendError> {
        let (reply, outcome) = oneshot::channel();
        self.commands.send(Command::Append { append, reply }).await.map_err(|_| AppendError::ShuttingDown)?;
        if let Some(queued) = &self.queued {
            queued();
        }
        // A dropped reply means the writer stopped before it got to this request.
        Ok(async move { outcome.await.map_err(|_| AppendError::ShuttingDown)? })
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
