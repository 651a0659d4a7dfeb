//! [`NatsLog`]: Rapport's log on a JetStream stream, as one node sees it.
//!
//! The stream is the log. Each account's events are the messages of its subject
//! ([`account_subject`]); a message's data is the event's envelope (`rapport-envelope`) hashed
//! without its position ([`HashScheme::Unpositioned`]), and its stream sequence is the event's
//! position. That holds because nothing else ever takes or frees a sequence: the stream denies
//! deletes and purges and has no limits ([`stream::check`]), publishes the servers refuse take
//! no sequence, and only Rapport publishes to its subjects.
//!
//! A node keeps what it has read of the stream in memory ([`MemoryEvents`]), fed in stream order
//! by one ordered consumer (`follow.rs`); every read is served from there, and so is every check
//! an append makes first: the stream head (its version, hash and the subject's last sequence)
//! and the id index, for ever, which the servers' duplicate window is not.
//!
//! An append publishes each batch with `Nats-Expected-Last-Subject-Sequence` set to the
//! account's last sequence as the node has read it, so the servers refuse it if another node
//! appended to the account since: the stream never forks. A batch of several events is an
//! atomic batch (ADR-50: `Nats-Batch-Id`, `Nats-Batch-Sequence`, `Nats-Batch-Commit`, at most
//! 1,000 messages, the expected sequence on the first), built here on the client's core publish
//! and request because async-nats has no batch API, so that the batches of one `append_all` go
//! out back to back and their acknowledgements are awaited together. An append returns once
//! the servers have acknowledged it (a quorum has it on disk) and the node has read it back.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard};
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, context::PublishErrorKind, message::PublishMessage};
use bytes::Bytes;
use rapport_domain::{AccountId, EventId, Timestamp};
use rapport_envelope::encode_envelope;
use rapport_store::{AppendBatch, Appended, Direction, EventLog, MemoryEvents, StoreError, StoredEvent, StreamHead};
use tokio::sync::watch;
use tracing::info;

use crate::client::{self, ClientRuntime};
use crate::follow::follow;
use crate::stream::{self, DEFAULT_STREAM, MIN_REPLICAS, UnsafeStream, account_subject};

/// The header that tells a reader how many events of the same atomic batch follow a message
/// (absent: none), so that a node shows a batch only once it has read all of it.
pub(crate) const BATCH_LEFT: &str = "Rapport-Batch-Left";

/// Multi-event batches one wave of an append sends before it awaits them: below the servers'
/// limit of batches in flight per stream (50 by default).
const BATCHES_IN_FLIGHT: usize = 32;

/// The pause before a batch is sent again (doubled, tripled, ... up to twenty times for the
/// next tries), when the servers refused it for another node's publish in flight or the stream
/// had no leader.
const RESEND_AFTER: Duration = Duration::from_millis(10);

/// Where and how a node reaches its cluster.
#[derive(Debug, Clone)]
pub struct NatsOptions {
    /// The servers to connect to, `nats://host:port` each; the client finds the rest of the
    /// cluster from them.
    pub servers: Vec<String>,
    /// The stream's name ([`DEFAULT_STREAM`] unless told otherwise). Made if missing.
    pub stream: String,
    /// Replicas of a stream this node makes (at least [`MIN_REPLICAS`]).
    pub replicas: usize,
    /// A NATS credentials file (a user JWT and its NKey seed), for servers that ask for one.
    pub credentials: Option<std::path::PathBuf>,
    /// A PEM file of the certificate authorities to trust for TLS to the servers; with it the
    /// connection requires TLS.
    pub tls_ca: Option<std::path::PathBuf>,
    /// A client certificate and its key (PEM files), for servers that verify clients.
    pub tls_client: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// How long an append waits for the servers' acknowledgement, and a read-back for the
    /// node's consumer, before it reports the cluster unavailable.
    pub ack_timeout: Duration,
}

impl NatsOptions {
    /// Options for `servers` (comma-separated URLs) with every other setting at its default.
    pub fn new(servers: &str) -> NatsOptions {
        NatsOptions {
            servers: servers.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect(),
            stream: DEFAULT_STREAM.to_owned(),
            replicas: MIN_REPLICAS,
            credentials: None,
            tls_ca: None,
            tls_client: None,
            ack_timeout: Duration::from_secs(5),
        }
    }

    /// The cluster could not be reached or did not answer: `why`.
    pub(crate) fn unreachable(&self, why: String) -> OpenError {
        OpenError::Unreachable { servers: self.servers.join(","), why }
    }
}

/// Why a node could not start on its cluster.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The options do not name a usable cluster.
    #[error("{0}")]
    Options(String),
    /// The cluster could not be reached or did not answer.
    #[error("the NATS cluster at {servers} could not be reached: {why}")]
    Unreachable {
        /// The servers tried.
        servers: String,
        /// What failed.
        why: String,
    },
    /// The stream is configured so that it could lose events.
    #[error(transparent)]
    Unsafe(#[from] UnsafeStream),
    /// The stream holds what is not a Rapport log.
    #[error(transparent)]
    Corrupt(StoreError),
    /// The node's key store could not follow the cluster's key stream.
    #[error("the key stream {stream} could not be followed into this node's key store: {why}")]
    KeyStream {
        /// The key stream.
        stream: String,
        /// What failed, and what to do.
        why: String,
    },
    /// The node's key store holds keys that differ from the key stream's for the same
    /// contacts: made on each side before keys were shared, so fields may be sealed under
    /// either, and neither can replace the other.
    #[error(
        "this node's key store holds keys for {count} contacts (the first: subject {first}) that differ from the keys the \
         key stream {stream} holds for them: each was made before keys were shared across the cluster, and fields may \
         be sealed under either, so neither can replace the other; keep this key store (only it opens what was sealed \
         under its keys), and to join the node anyway, start it on an empty data directory: fields sealed under its \
         own keys for these contacts then read as forgotten"
    )]
    KeyConflict {
        /// The key stream.
        stream: String,
        /// How many subjects differ.
        count: usize,
        /// The first of them.
        first: rapport_keys::SubjectId,
    },
}

/// Rapport's log on a JetStream stream: see the module's docs.
///
/// It runs its own small tokio runtime for the client and its consumer, so that its
/// `EventLog` methods, which are blocking, can be called from any thread that is not a
/// runtime's worker (the server calls them from its writer thread and its blocking pool).
pub struct NatsLog {
    runtime: ClientRuntime,
    node: Arc<Node>,
}

/// What the node shares with its consumer.
pub(crate) struct Node {
    pub(crate) js: jetstream::Context,
    pub(crate) client: async_nats::Client,
    pub(crate) stream: String,
    /// The stream's name and when it was made: what tells it from a stream deleted and made
    /// again under the same name.
    identity: String,
    /// What the node has read of the stream, whole batches only.
    pub(crate) events: RwLock<MemoryEvents>,
    /// The last position in `events`, for those who wait for one.
    pub(crate) read_up_to: watch::Sender<u64>,
    /// Why the node stopped reading the stream, if it did: the stream holds what a Rapport log
    /// cannot. Appends are refused from then on.
    pub(crate) broken: Mutex<Option<StoreError>>,
    /// Told of every batch read.
    pub(crate) watchers: Mutex<Vec<Box<dyn Fn() + Send + Sync>>>,
    ack_timeout: Duration,
    /// Makes batch ids unique within the process.
    batches: AtomicU64,
}

impl Node {
    pub(crate) fn events(&self) -> RwLockReadGuard<'_, MemoryEvents> {
        // The consumer adds a batch with checks made first; a panic cannot leave half of one.
        self.events.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn broken(&self) -> Option<StoreError> {
        self.broken.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Waits until the node has read the stream up to `position`.
    async fn read_up_to(&self, position: u64) -> Result<(), StoreError> {
        let mut read = self.read_up_to.subscribe();
        let waited = tokio::time::timeout(self.ack_timeout, async {
            loop {
                if *read.borrow_and_update() >= position {
                    return Ok(());
                }
                if let Some(broken) = self.broken() {
                    return Err(broken);
                }
                // The sender lives as long as the node.
                let _ = read.changed().await;
            }
        })
        .await;
        waited.unwrap_or_else(|_| {
            Err(StoreError::Io(format!(
                "the events are recorded in the NATS stream up to position {position}, but this node has read it \
                 only up to position {} within {:?}; they will show once it has",
                *self.read_up_to.borrow(),
                self.ack_timeout
            )))
        })
    }

    /// The stream's last sequence as the servers report it.
    async fn stream_end(&self) -> Result<u64, StoreError> {
        let unavailable = |e: &dyn std::fmt::Display| StoreError::Io(format!("the NATS stream cannot be read: {e}"));
        let mut stream = self.js.get_stream(&self.stream).await.map_err(|e| unavailable(&e))?;
        Ok(stream.info().await.map_err(|e| unavailable(&e))?.state.last_sequence)
    }
}

impl NatsLog {
    /// Connects to the cluster, makes the stream if it is missing, refuses it if its settings
    /// could lose events, and reads it to its end before it returns. Blocks: call it from a
    /// thread that is not a runtime's worker.
    pub fn open(options: &NatsOptions) -> Result<NatsLog, OpenError> {
        let runtime = ClientRuntime::new("rapport-nats")?;
        let node = runtime.block_on(connect(options))?;
        let node = Arc::new(node);
        let stream_end = runtime.block_on(node.stream_end()).map_err(|e| options.unreachable(e.to_string()))?;
        runtime.spawn(follow(Arc::clone(&node)));
        // Reading a long stream takes a while; a consumer that stops making progress is waited
        // for no longer than an acknowledgement.
        let mut read = node.read_up_to.subscribe();
        runtime.block_on(async {
            loop {
                let at = *read.borrow_and_update();
                if at >= stream_end {
                    return Ok(());
                }
                if let Some(broken) = node.broken() {
                    return Err(OpenError::Corrupt(broken));
                }
                if tokio::time::timeout(options.ack_timeout, read.changed()).await.is_err() && *read.borrow() == at {
                    return Err(
                        options.unreachable(format!("the stream could not be read past position {at} of {stream_end}"))
                    );
                }
            }
        })?;
        info!(stream = %node.stream, events = stream_end, "read the NATS stream");
        Ok(NatsLog { runtime, node })
    }

    /// The stream's name and when it was made, as the servers report them: another stream, or
    /// one deleted and made again under the same name, has another.
    pub fn stream_identity(&self) -> String {
        self.node.identity.clone()
    }
}

async fn connect(options: &NatsOptions) -> Result<Node, OpenError> {
    let (client, js) = client::connect(options).await?;
    let made = client::stream_made(&js, stream::config(&options.stream, options.replicas), options).await?;
    let info = made.cached_info();
    stream::check(&info.config)?;
    let (read_up_to, _) = watch::channel(0);
    Ok(Node {
        js,
        client,
        stream: options.stream.clone(),
        identity: format!("{} made {}", options.stream, info.created),
        events: RwLock::new(MemoryEvents::default()),
        read_up_to,
        broken: Mutex::new(None),
        watchers: Mutex::new(Vec::new()),
        ack_timeout: options.ack_timeout,
        batches: AtomicU64::new(0),
    })
}

/// A batch checked and stamped, with the messages that carry it.
struct Outgoing {
    /// Its place in the `append_all` call.
    index: usize,
    subject: String,
    messages: Vec<(HeaderMap, Bytes)>,
    first_version: u64,
    recorded_at: Timestamp,
}

/// How a sent batch ended, as far as the servers said.
enum Acked {
    /// Stored; the sequence of its last message.
    Stored(u64),
    /// Refused or dropped by the servers, though it passed the node's checks: another node got
    /// there first (a moved subject, a duplicate id), or something else the error says.
    Refused(String),
    /// No server took it: the stream has no leader at the moment. Not stored.
    NoLeader,
    /// No answer: stored or not.
    Unknown(StoreError),
}

impl Node {
    async fn append_all(&self, batches: &[AppendBatch<'_>]) -> Vec<Result<Appended, StoreError>> {
        if let Some(broken) = self.broken() {
            return batches.iter().map(|_| Err(broken.clone())).collect();
        }
        let mut results: Vec<Result<Appended, StoreError>> =
            batches.iter().map(|_| Err(StoreError::InvalidBatch("not appended".into()))).collect();
        let mut start = 0;
        while start < batches.len() {
            let end = wave_end(batches, start);
            self.append_wave(batches, start..end, &mut results).await;
            start = end;
        }
        results
    }

    /// Appends `batches[wave]`, which go to different accounts: stamped against what the node
    /// has read, sent back to back, their acknowledgements awaited together, then read back.
    ///
    /// A batch the servers refuse though it passed the node's checks is explained by reading
    /// the stream on: another node's events make the checks fail now, with the error the
    /// embedded engines give. If they still pass, another node's publish to the account was in
    /// flight when this one arrived (the servers refuse an expected sequence while one is) and
    /// did not land: the batch is stamped and sent again. So is a batch no server took because
    /// the stream had no leader (one is being elected). Both for at most the acknowledgement
    /// timeout.
    async fn append_wave(
        &self,
        batches: &[AppendBatch<'_>],
        wave: std::ops::Range<usize>,
        results: &mut [Result<Appended, StoreError>],
    ) {
        let deadline = tokio::time::Instant::now() + self.ack_timeout;
        let mut pending: Vec<usize> = wave.collect();
        for round in 1u32.. {
            let (refused, unled) = self.send_all(batches, &pending, results).await;
            let last_round = tokio::time::Instant::now() >= deadline;
            pending.clear();
            if !refused.is_empty() {
                let caught_up = match self.stream_end().await {
                    Ok(end) => self.read_up_to(end).await,
                    Err(error) => Err(error),
                };
                for (index, why) in refused {
                    results[index] = match (&caught_up, self.recheck(&batches[index])) {
                        (Err(error), _) => Err(error.clone()),
                        (Ok(()), Err(error)) => Err(error),
                        (Ok(()), Ok(())) if !last_round => {
                            pending.push(index);
                            continue;
                        }
                        (Ok(()), Ok(())) => {
                            Err(StoreError::Io(format!("the NATS cluster refused the append: {why}; retry")))
                        }
                    };
                }
            }
            for index in unled {
                if last_round {
                    results[index] = Err(StoreError::Io(format!(
                        "the NATS stream {} has had no leader for {:?} (is a quorum of its servers up?); nothing was \
                         recorded; retry",
                        self.stream, self.ack_timeout
                    )));
                } else {
                    pending.push(index);
                }
            }
            if pending.is_empty() {
                return;
            }
            tokio::time::sleep(RESEND_AFTER.saturating_mul(round).min(RESEND_AFTER * 20)).await;
        }
    }

    /// Stamps and sends `batches[pending]`, awaits their acknowledgements and reads the stored
    /// ones back; returns the ones the servers refused, with why, and the ones no server took
    /// (the stream had no leader).
    async fn send_all(
        &self,
        batches: &[AppendBatch<'_>],
        pending: &[usize],
        results: &mut [Result<Appended, StoreError>],
    ) -> (Vec<(usize, String)>, Vec<usize>) {
        let outgoing = self.stage(batches, pending, results);
        let mut sent = Vec::with_capacity(outgoing.len());
        for batch in outgoing {
            match self.send(&batch).await {
                Ok(ack) => sent.push((batch, ack)),
                Err(error) => results[batch.index] = Err(error),
            }
        }
        let mut last_stored = 0;
        let mut stored = Vec::new();
        let (mut refused, mut unled) = (Vec::new(), Vec::new());
        for (batch, ack) in sent {
            match self.acked(ack).await {
                Acked::Stored(last) => {
                    last_stored = last_stored.max(last);
                    let count = batch.messages.len() as u64;
                    stored.push(batch.index);
                    results[batch.index] = Ok(Appended {
                        first_version: batch.first_version,
                        first_position: last + 1 - count,
                        recorded_at: batch.recorded_at,
                    });
                }
                Acked::Refused(why) => refused.push((batch.index, why)),
                Acked::NoLeader => unled.push(batch.index),
                Acked::Unknown(error) => results[batch.index] = Err(error),
            }
        }
        if last_stored > 0
            && let Err(error) = self.read_up_to(last_stored).await
        {
            // Recorded, and durable; this node just cannot show them yet.
            for index in stored {
                results[index] = Err(error.clone());
            }
        }
        (refused, unled)
    }

    /// Checks and stamps the wave's batches against what the node has read: the contract's
    /// checks, in its order, each batch's refusal in its slot.
    fn stage(
        &self,
        batches: &[AppendBatch<'_>],
        wave: &[usize],
        results: &mut [Result<Appended, StoreError>],
    ) -> Vec<Outgoing> {
        let events = self.events();
        let mut staging =
            rapport_store::Staging::new(events.last_position(), events.latest_recorded_at()).unpositioned();
        let mut published: &MemoryEvents = &events;
        let mut outgoing = Vec::with_capacity(wave.len());
        for &index in wave {
            let batch = &batches[index];
            let subject_sequence = match events.head(batch.account_id) {
                Ok(head) => head.map_or(0, |h| h.position),
                Err(error) => {
                    results[index] = Err(error);
                    continue;
                }
            };
            let mut messages = Vec::new();
            let staged = staging.stage(batch, &mut published, |stamped| {
                messages = self.messages(stamped, subject_sequence);
                Ok(())
            });
            match staged {
                Ok(appended) => outgoing.push(Outgoing {
                    index,
                    subject: account_subject(&self.stream, batch.account_id),
                    messages,
                    first_version: appended.first_version,
                    recorded_at: appended.recorded_at,
                }),
                Err(error) => results[index] = Err(error),
            }
        }
        outgoing
    }

    /// The messages of one batch: each event's envelope without a position, its id for the
    /// servers' duplicate window, the subject's expected last sequence on the first, and the
    /// atomic batch's headers when there is more than one.
    fn messages(&self, stamped: &[StoredEvent], subject_sequence: u64) -> Vec<(HeaderMap, Bytes)> {
        let batch_id = (stamped.len() > 1).then(|| {
            let n = self.batches.fetch_add(1, Ordering::Relaxed);
            let first: String = stamped[0].event_id.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
            format!("{first}-{n}")
        });
        let count = stamped.len();
        stamped
            .iter()
            .enumerate()
            .map(|(i, event)| {
                let mut headers = HeaderMap::new();
                headers.insert(async_nats::header::NATS_MESSAGE_ID, event.event_id.to_string().as_str());
                if i == 0 {
                    headers.insert(
                        async_nats::header::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE,
                        subject_sequence.to_string().as_str(),
                    );
                }
                if let Some(batch_id) = &batch_id {
                    headers.insert("Nats-Batch-Id", batch_id.as_str());
                    headers.insert("Nats-Batch-Sequence", (i + 1).to_string().as_str());
                    headers.insert(BATCH_LEFT, (count - 1 - i).to_string().as_str());
                    if i + 1 == count {
                        headers.insert("Nats-Batch-Commit", "1");
                    }
                }
                let envelope = encode_envelope(&StoredEvent { position: 0, ..event.clone() });
                (headers, Bytes::from(envelope))
            })
            .collect()
    }

    /// Sends a batch: every message but the last as a plain publish, the last as a request
    /// whose answer is the batch's acknowledgement.
    async fn send(&self, batch: &Outgoing) -> Result<jetstream::context::PublishAckFuture, StoreError> {
        let unavailable = |e: &dyn std::fmt::Display| {
            StoreError::Io(format!("the append could not be sent to the NATS cluster: {e}; nothing was recorded"))
        };
        let Some(((last_headers, last_payload), rest)) = batch.messages.split_last() else {
            return Err(StoreError::InvalidBatch("a batch needs at least one event".into()));
        };
        for (headers, payload) in rest {
            self.client
                .publish_with_headers(batch.subject.clone(), headers.clone(), payload.clone())
                .await
                .map_err(|e| unavailable(&e))?;
        }
        let last = PublishMessage::build().headers(last_headers.clone()).payload(last_payload.clone());
        self.js.send_publish(batch.subject.clone(), last).await.map_err(|e| unavailable(&e))
    }

    async fn acked(&self, ack: jetstream::context::PublishAckFuture) -> Acked {
        match ack.await {
            // A duplicate id is an event already in the stream: refused, and the read-back
            // finds where.
            Ok(ack) if ack.duplicate => Acked::Refused(format!("an event id is already at position {}", ack.sequence)),
            Ok(ack) => Acked::Stored(ack.sequence),
            Err(error) => match error.kind() {
                PublishErrorKind::TimedOut | PublishErrorKind::BrokenPipe => Acked::Unknown(StoreError::Io(format!(
                    "the NATS cluster did not acknowledge the append within {:?} ({error}): it may or may not be \
                     recorded; a retry with the same event ids is safe",
                    self.ack_timeout
                ))),
                // "No responders": no server listens for the stream's subjects just now.
                PublishErrorKind::StreamNotFound => Acked::NoLeader,
                _ => Acked::Refused(error.to_string()),
            },
        }
    }

    /// The contract's checks of `batch` against what the node has read now.
    fn recheck(&self, batch: &AppendBatch<'_>) -> Result<(), StoreError> {
        let events = self.events();
        let current = events.head(batch.account_id)?.map_or(0, |h| h.version);
        batch.check(current, |id| Ok(events.find(id)?.map(|e| e.position)))
    }
}

/// Where the wave that starts at `start` ends: before a second batch of an account already in
/// it (whose expected sequence the first one's acknowledgement gives), or once it holds
/// [`BATCHES_IN_FLIGHT`] multi-event batches.
fn wave_end(batches: &[AppendBatch<'_>], start: usize) -> usize {
    let mut accounts: Vec<&AccountId> = Vec::new();
    let mut atomic = 0;
    for (index, batch) in batches.iter().enumerate().skip(start) {
        if accounts.contains(&batch.account_id) || (batch.events.len() > 1 && atomic == BATCHES_IN_FLIGHT) {
            return index;
        }
        accounts.push(batch.account_id);
        atomic += usize::from(batch.events.len() > 1);
    }
    batches.len()
}

impl EventLog for NatsLog {
    fn append_all(&self, batches: &[AppendBatch<'_>]) -> Vec<Result<Appended, StoreError>> {
        self.runtime.block_on(self.node.append_all(batches))
    }

    /// Nothing to do: an append returns once a quorum of the servers has acknowledged it, and
    /// each server syncs before it acknowledges (`sync_interval: always`, which the operator
    /// sets and the test cluster does).
    fn sync(&self) -> Result<(), StoreError> {
        match self.node.broken() {
            Some(broken) => Err(broken),
            None => Ok(()),
        }
    }

    fn last_position(&self) -> Result<u64, StoreError> {
        Ok(self.node.events().last_position())
    }

    fn stream_head(&self, account_id: &AccountId) -> Result<Option<StreamHead>, StoreError> {
        self.node.events().head(account_id)
    }

    fn find_event(&self, event_id: &EventId) -> Result<Option<StoredEvent>, StoreError> {
        self.node.events().find(event_id)
    }

    fn read_positions(&self, positions: std::ops::Range<u64>) -> Result<Vec<StoredEvent>, StoreError> {
        self.node.events().read_positions(positions)
    }

    fn read_versions(
        &self,
        account_id: &AccountId,
        versions: std::ops::Range<u64>,
        direction: Direction,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.node.events().read_versions(account_id, versions, direction)
    }

    fn on_foreign_appends(&self, notify: Box<dyn Fn() + Send + Sync>) {
        self.node.watchers.lock().unwrap_or_else(PoisonError::into_inner).push(notify);
    }
}
