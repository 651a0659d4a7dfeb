//! The key stream: how the nodes of a cluster share their data keys ([`KeyStream`], the
//! `rapport_keys::KeyCluster` of a node), and the stream's settings and their check.
//!
//! # The stream
//!
//! Beside the event stream `<stream>` is its key stream `<stream>_KEYS` ([`stream_name`]):
//! file storage, at least three replicas, no limits, direct gets, purges denied and deletes
//! allowed (an erasure deletes a key's message), format [`FORMAT`] in its metadata ([`check`]).
//! Each subject (one contact of one account, as a SHA-256 of the two ids: no personal text)
//! has a NATS subject of its own, `<stream>_KEYS.k.<the subject id in lower-case hex>`
//! ([`key_subject`]), and two kinds of message, told apart by the header [`KIND`]:
//!
//! - `wrapped`: the subject's data key wrapped under the master key, exactly as a keyring slot
//!   holds it (60 bytes: nonce ‖ ciphertext and tag, the subject id as associated data), never
//!   the key itself. Every node of a cluster is given the same master key file
//!   (`--master-key-file`), and that is how the nodes open each other's keys. It is published
//!   with `Nats-Expected-Last-Subject-Sequence: 0`, so the servers take one key per subject,
//!   the first any node offers, as the subject's first message, and refuse every later one
//!   (code 10071), as they refuse one sent while another for the subject is in flight (code
//!   10164: the one in flight may yet fail). The node refused reads the key taken (a direct
//!   get of the subject's last message, or the leader's when a replica lags), or offers again
//!   if none landed, and adopts what the stream holds before anything is sealed under it.
//! - `forgotten`, empty: the subject's tombstone, published expecting the subject's last
//!   sequence (so that no key slips in between) before the key's message is erased (a
//!   JetStream message delete with `no_erase: false`, which overwrites the stored bytes on
//!   every replica). It is then the subject's only message, and no key is taken for the
//!   subject ever again.
//!
//! A publish the servers acknowledge is durable on a quorum (they run with
//! `sync_interval: always`). Purging the stream, or deleting a tombstone by hand, would let a
//! forgotten contact get a key again on a node that never read the tombstone; the stream
//! denies purges, and nothing in Rapport deletes a tombstone. Each server's raft log of the
//! stream keeps the published key, wrapped, until the server compacts it on its own timer
//! (within three minutes in the tests); it opens only with the master key.
//!
//! # A node
//!
//! [`KeyStream::open`] makes or checks the stream and reads it from its start into the node's
//! `KeyStore` with an ordered consumer, made again from where it stopped after a failure, as
//! the log's is: keys the store lacks are adopted (unwrapped under the master key first, then
//! written as Live slots), tombstones forget. A new node, with an empty key store, so gets
//! every live key and none of the forgotten ones. Once it has read to the end, the keys and
//! erasures the store had before it shared its keys, and the stream lacks, are given to the
//! stream; then the key stream is installed on the store, whose new keys are from then on
//! agreed through the stream before they are written, and whose erasures go through it first.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use async_nats::jetstream::{
    self, ErrorCode,
    context::{PublishAckFuture, PublishError, PublishErrorKind},
    message::{PublishMessage, StreamMessage},
    response::Response,
    stream::{
        Config, DeleteStatus, DirectGetErrorKind, DiscardPolicy, LastRawMessageErrorKind, RetentionPolicy, StorageType,
    },
};
use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use rapport_keys::{KeyCluster, KeyError, KeyState, KeyStore, SharedKey, SubjectId, WrappedKey};
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::client::{self, ClientRuntime};
use crate::follow::{RETRY_AFTER, ordered};
use crate::stream::{MIN_REPLICAS, UnsafeStream, check_kept, check_subjects, unsafe_setting};
use crate::{NatsOptions, OpenError};

/// The format of the key stream's messages this build writes and reads, in the stream's
/// metadata under [`FORMAT_KEY`]: a later format gets a new number, and a node that does not
/// read it refuses the stream.
pub const FORMAT: &str = "1";

/// The key of [`FORMAT`] in the stream's metadata.
pub const FORMAT_KEY: &str = "rapport_key_format";

/// The header that says what a message of the key stream is: `wrapped` (a key) or `forgotten`
/// (a tombstone).
pub const KIND: &str = "Rapport-Key";

const WRAPPED: &str = "wrapped";
const FORGOTTEN: &str = "forgotten";

/// Keys a node that had keys before it shared them offers at once (publishes in flight).
const OFFER_BATCH: usize = 256;

/// Messages the consumer takes into the key store at once, with one sync.
const ADOPT_BATCH: usize = 1024;

/// The name of the key stream beside the event stream `stream`: `<stream>_KEYS`.
pub fn stream_name(stream: &str) -> String {
    format!("{stream}_KEYS")
}

/// The subjects of the key stream named `name`: one per data subject under `<name>.k.`.
pub fn subjects(name: &str) -> String {
    format!("{name}.k.>")
}

/// The NATS subject of a data subject's key in the key stream `name`.
pub fn key_subject(name: &str, subject: &SubjectId) -> String {
    format!("{name}.k.{subject}")
}

/// The data subject a NATS subject of the key stream `name` is of, or `None` for one that is
/// no data subject's.
fn subject_of(name: &str, nats_subject: &str) -> Option<SubjectId> {
    let hex = nats_subject.strip_prefix(name)?.strip_prefix(".k.")?.as_bytes();
    if hex.len() != 64 {
        return None;
    }
    let digit = |d: u8| match d {
        b'0'..=b'9' => Some(d - b'0'),
        b'a'..=b'f' => Some(d - b'a' + 10),
        _ => None,
    };
    let mut bytes = [0u8; 32];
    for (byte, pair) in bytes.iter_mut().zip(hex.chunks_exact(2)) {
        *byte = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(SubjectId::from_bytes(bytes))
}

/// The configuration Rapport creates a key stream named `name` with: file storage,
/// `replicas` copies (at least [`MIN_REPLICAS`]), no limits, purges denied, deletes allowed,
/// direct gets, [`FORMAT`] in its metadata.
pub fn config(name: &str, replicas: usize) -> Config {
    Config {
        name: name.to_owned(),
        subjects: vec![subjects(name)],
        storage: StorageType::File,
        num_replicas: replicas.max(MIN_REPLICAS),
        retention: RetentionPolicy::Limits,
        discard: DiscardPolicy::New,
        max_bytes: -1,
        max_messages: -1,
        max_messages_per_subject: -1,
        max_age: Duration::ZERO,
        deny_delete: false,
        deny_purge: true,
        allow_rollup: false,
        allow_direct: true,
        metadata: HashMap::from([(FORMAT_KEY.to_owned(), FORMAT.to_owned())]),
        description: Some(
            "Rapport's data keys, wrapped under the master key its nodes share: one subject per contact, its key and \
             then its tombstone; never purge, limit or delete from it"
                .into(),
        ),
        ..Default::default()
    }
}

/// Checks a key stream's configuration (as the server reports it) before a node follows it:
/// the settings of every stream Rapport keeps something in, and the key stream's own.
pub fn check(config: &Config) -> Result<(), UnsafeStream> {
    check_kept(config)?;
    if config.deny_delete {
        return Err(unsafe_setting(
            config,
            "deny_delete",
            "true",
            "false",
            "an erasure deletes the forgotten contact's key from the stream",
        ));
    }
    if !config.deny_purge {
        return Err(unsafe_setting(
            config,
            "deny_purge",
            "false",
            "true",
            "a purge would remove the tombstones, and a forgotten contact could get a key again",
        ));
    }
    if !config.allow_direct {
        return Err(unsafe_setting(
            config,
            "allow_direct",
            "false",
            "true",
            "a node reads the key another node made first with a direct get",
        ));
    }
    if config.allow_message_ttl {
        return Err(unsafe_setting(
            config,
            "allow_msg_ttl",
            "true",
            "false",
            "a message with a TTL would vanish, a key or a tombstone",
        ));
    }
    let format = config.metadata.get(FORMAT_KEY).map_or("missing", String::as_str);
    if format != FORMAT {
        return Err(unsafe_setting(
            config,
            "metadata.rapport_key_format",
            format,
            FORMAT,
            "this build reads key streams of that format only",
        ));
    }
    check_subjects(config, &subjects(&config.name), "the nodes' keys would not land in it")
}

/// A node's key stream: see the module's docs. It implements `KeyCluster` for the node's
/// `KeyStore`, which holds it from [`KeyStream::open`] on; its methods block, on a small
/// runtime of its own, as [`crate::NatsLog`]'s do.
pub struct KeyStream {
    runtime: ClientRuntime,
    node: Arc<Node>,
}

impl std::fmt::Debug for KeyStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyStream").field("stream", &self.node.name).finish_non_exhaustive()
    }
}

/// What the node's key stream shares with its consumer.
struct Node {
    js: jetstream::Context,
    stream: jetstream::stream::Stream,
    name: String,
    /// The store the consumer feeds: not held, since the store holds the key stream.
    store: Weak<KeyStore>,
    /// The sequence of the last message the store has taken.
    read_up_to: watch::Sender<u64>,
    /// Why the consumer stopped, if it did: the stream holds what this node cannot take. New
    /// keys and erasures are refused from then on, since the node no longer knows the
    /// cluster's.
    broken: Mutex<Option<String>>,
    /// While [`KeyStream::open`] runs: what it needs of what the consumer reads.
    opening: Mutex<Option<Opening>>,
    ack_timeout: Duration,
}

/// What opening learns from reading the stream to its end.
#[derive(Default)]
struct Opening {
    /// Each subject read, and whether it was forgotten.
    seen: HashMap<SubjectId, bool>,
    /// Subjects whose key in the store differs from the stream's.
    differing: Vec<SubjectId>,
}

impl KeyStream {
    /// Connects to the cluster, makes the key stream beside `options.stream` if it is missing,
    /// refuses it if its settings could lose keys or tombstones, reads it to its end into
    /// `store`, gives the stream the keys and erasures the store had before and the stream
    /// lacks, and installs itself on the store ([`KeyStore::share_with`]). Blocks: call it
    /// from a thread that is not a runtime's worker, before the store is used.
    ///
    /// Refused when the store's master key does not open the stream's keys (every node must
    /// be given the same master key file) and when the store holds other keys than the
    /// stream for the same subjects ([`OpenError::KeyConflict`]).
    pub fn open(options: &NatsOptions, store: Arc<KeyStore>) -> Result<Arc<KeyStream>, OpenError> {
        let runtime = ClientRuntime::new("rapport-keys")?;
        let name = stream_name(&options.stream);
        let (node, end) = runtime.block_on(connect(options, &name, &store))?;
        let node = Arc::new(node);
        runtime.spawn(follow(Arc::clone(&node)));
        let failed = |error: KeyError| OpenError::KeyStream { stream: name.clone(), why: error.to_string() };
        runtime.block_on(node.read_to(end)).map_err(failed)?;
        let keys = KeyStream { runtime, node };
        let Opening { seen, differing } = keys.node.opening().take().unwrap_or_default();
        let differing = keys.share_held(&store, &seen, differing).map_err(failed)?;
        if let Some(first) = differing.first() {
            return Err(OpenError::KeyConflict { stream: name, count: differing.len(), first: *first });
        }
        let keys = Arc::new(keys);
        store.share_with(Arc::clone(&keys) as Arc<dyn KeyCluster>);
        let counts = store.counts();
        info!(stream = %name, live = counts.live, forgotten = counts.forgotten, "following the key stream");
        Ok(keys)
    }

    /// Waits until this node has read the key stream to its end as the servers report it now:
    /// every key and every erasure the cluster had when it was called is then in the node's
    /// key store.
    pub fn catch_up(&self) -> Result<(), KeyError> {
        self.runtime.block_on(async {
            let end = self.node.stream_end().await?;
            self.node.read_to(end).await
        })
    }

    /// The key stream's name.
    pub fn name(&self) -> &str {
        &self.node.name
    }

    /// Gives the stream what the store had before it shared its keys and the stream lacks
    /// (`seen` is what the stream held): its keys, each taken or refused for the key another
    /// node gave first (then adopted, or reported in the subjects returned when it differs),
    /// and its erasures, which win over a key the stream holds. Returns every subject whose
    /// key here differs from the stream's, `differing` (found while reading) included.
    fn share_held(
        &self,
        store: &KeyStore,
        seen: &HashMap<SubjectId, bool>,
        mut differing: Vec<SubjectId>,
    ) -> Result<Vec<SubjectId>, KeyError> {
        let mut offered = Vec::new();
        let mut forgotten = Vec::new();
        for subject in store.subjects() {
            match (store.key(&subject), seen.get(&subject)) {
                (KeyState::Live(_), None) => offered.extend(store.wrapped(&subject)?.map(|wrapped| (subject, wrapped))),
                (KeyState::Forgotten, None | Some(false)) => forgotten.push(subject),
                _ => {}
            }
        }
        for made in offered.chunks(OFFER_BATCH) {
            let held = self.runtime.block_on(self.node.offer(made))?;
            let given: Vec<(SubjectId, SharedKey)> = made
                .iter()
                .zip(held)
                .filter(|((_, ours), held)| *held != SharedKey::Wrapped(*ours))
                .map(|((subject, _), held)| (*subject, held))
                .collect();
            differing.extend(store.adopt(&given)?);
        }
        for subject in &forgotten {
            self.runtime.block_on(self.node.erase(subject))?;
        }
        if !offered.is_empty() || !forgotten.is_empty() {
            info!(
                stream = %self.node.name,
                keys = offered.len(),
                erasures = forgotten.len(),
                "gave the key stream the keys and erasures this node had before it shared them"
            );
        }
        Ok(differing)
    }
}

impl KeyCluster for KeyStream {
    fn agree(&self, made: &[(SubjectId, WrappedKey)]) -> Result<Vec<WrappedKey>, KeyError> {
        let held = self.runtime.block_on(self.node.offer(made))?;
        held.into_iter()
            .enumerate()
            .map(|(index, held)| match held {
                SharedKey::Wrapped(wrapped) => Ok(wrapped),
                SharedKey::Forgotten => Err(KeyError::Forgotten { index }),
            })
            .collect()
    }

    fn forget(&self, subject: &SubjectId) -> Result<(), KeyError> {
        self.runtime.block_on(self.node.erase(subject))
    }
}

/// Connects, and makes or checks the key stream `name`; returns the node and the stream's last
/// sequence.
async fn connect(options: &NatsOptions, name: &str, store: &Arc<KeyStore>) -> Result<(Node, u64), OpenError> {
    let (_, js) = client::connect(options).await?;
    let stream = client::stream_made(&js, config(name, options.replicas), options).await?;
    check(&stream.cached_info().config)?;
    let end = stream.cached_info().state.last_sequence;
    let (read_up_to, _) = watch::channel(0);
    let node = Node {
        js,
        stream,
        name: name.to_owned(),
        store: Arc::downgrade(store),
        read_up_to,
        broken: Mutex::new(None),
        opening: Mutex::new(Some(Opening::default())),
        ack_timeout: options.ack_timeout,
    };
    Ok((node, end))
}

/// Which message of a subject to get.
#[derive(Clone, Copy)]
enum Which {
    First,
    Last,
}

impl Node {
    fn opening(&self) -> MutexGuard<'_, Option<Opening>> {
        self.opening.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A [`KeyError::Cluster`]: the key stream `what`.
    fn failed(&self, what: String) -> KeyError {
        KeyError::Cluster { why: format!("the key stream {} {what}", self.name) }
    }

    fn refuse_if_broken(&self) -> Result<(), KeyError> {
        match &*self.broken.lock().unwrap_or_else(PoisonError::into_inner) {
            Some(why) => Err(self.failed(format!(
                "is no longer followed by this node ({why}), so it takes no new keys and forgets no contact; restart \
                 it once that is fixed"
            ))),
            None => Ok(()),
        }
    }

    /// Offers keys for subjects new to this node, each as the subject's first message; returns
    /// what the stream holds for each: the key offered, or the key or tombstone another node
    /// put there first.
    async fn offer(&self, made: &[(SubjectId, WrappedKey)]) -> Result<Vec<SharedKey>, KeyError> {
        self.refuse_if_broken()?;
        // Sent back to back, their acknowledgements awaited together.
        let mut acks = Vec::with_capacity(made.len());
        for (subject, wrapped) in made {
            acks.push(self.send(subject, SharedKey::Wrapped(*wrapped), 0).await?);
        }
        let mut held = Vec::with_capacity(made.len());
        for ((subject, wrapped), ack) in made.iter().zip(acks) {
            let taken = self.acked(subject, SharedKey::Wrapped(*wrapped), ack).await?;
            held.push(if taken { SharedKey::Wrapped(*wrapped) } else { self.taken(subject, wrapped).await? });
        }
        Ok(held)
    }

    /// What the stream holds for a subject whose key it refused, the subject having a message
    /// already or one in flight: read it, or offer the key again if the one in flight never
    /// landed.
    async fn taken(&self, subject: &SubjectId, wrapped: &WrappedKey) -> Result<SharedKey, KeyError> {
        let mut backoff = Backoff::within(self.ack_timeout);
        loop {
            // A replica answering a direct get may not have the message yet; the leader has.
            for from_leader in [false, true] {
                if let Some((_, held)) = self.message(subject, Which::Last, from_leader).await? {
                    return Ok(held);
                }
            }
            if !backoff.wait().await {
                return Err(self.failed(format!(
                    "neither took nor showed a key for subject {subject} within {:?}; nothing was sealed: retry",
                    self.ack_timeout
                )));
            }
            let ack = self.send(subject, SharedKey::Wrapped(*wrapped), 0).await?;
            if self.acked(subject, SharedKey::Wrapped(*wrapped), ack).await? {
                return Ok(SharedKey::Wrapped(*wrapped));
            }
        }
    }

    /// Sends `held` (a key, or a tombstone) for a subject whose last message the servers must
    /// find at `expected` (0: none); the acknowledgement is awaited with [`Node::acked`].
    async fn send(&self, subject: &SubjectId, held: SharedKey, expected: u64) -> Result<PublishAckFuture, KeyError> {
        let mut headers = HeaderMap::new();
        headers.insert(async_nats::header::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE, expected.to_string().as_str());
        let payload = match held {
            SharedKey::Wrapped(wrapped) => {
                headers.insert(KIND, WRAPPED);
                Bytes::copy_from_slice(wrapped.as_bytes())
            }
            SharedKey::Forgotten => {
                headers.insert(KIND, FORGOTTEN);
                Bytes::new()
            }
        };
        let message = PublishMessage::build().headers(headers).payload(payload);
        self.js
            .send_publish(key_subject(&self.name, subject), message)
            .await
            .map_err(|e| self.failed(format!("could not be sent {} ({e}); retry", what(subject, held))))
    }

    /// Whether the servers took what [`Node::send`] sent: `false` when the subject's last
    /// message was not the one expected, or another was in flight.
    async fn acked(&self, subject: &SubjectId, held: SharedKey, ack: PublishAckFuture) -> Result<bool, KeyError> {
        match ack.await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == PublishErrorKind::WrongLastSequence || in_flight(&e) => Ok(false),
            Err(e) => Err(self.failed(format!(
                "did not take {} within {:?} ({e}); nothing here relies on it: retry",
                what(subject, held),
                self.ack_timeout
            ))),
        }
    }

    /// A subject's first or last message and what it says, `None` when it has none: by a
    /// direct get (any replica answers), or from the stream's leader.
    async fn message(
        &self,
        subject: &SubjectId,
        which: Which,
        from_leader: bool,
    ) -> Result<Option<(u64, SharedKey)>, KeyError> {
        let nats_subject = key_subject(&self.name, subject);
        let unavailable = |e: &dyn std::fmt::Display| {
            self.failed(format!("could not be read for subject {subject} ({e}); nothing was changed: retry"))
        };
        let got: Option<StreamMessage> = if from_leader {
            let get = self.stream.raw_message_builder();
            let get = match which {
                Which::First => get.next_by_subject(nats_subject),
                Which::Last => get.last_by_subject(nats_subject),
            };
            match get.send().await {
                Ok(message) => Some(message),
                Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => None,
                Err(e) => return Err(unavailable(&e)),
            }
        } else {
            let get = self.stream.direct_get_builder();
            let get = match which {
                Which::First => get.next_by_subject(nats_subject),
                Which::Last => get.last_by_subject(nats_subject),
            };
            match get.send().await {
                Ok(message) => Some(message),
                Err(e) if e.kind() == DirectGetErrorKind::NotFound => None,
                Err(e) => return Err(unavailable(&e)),
            }
        };
        let Some(message) = got else { return Ok(None) };
        match read_message(&self.name, &message.subject, Some(&message.headers), &message.payload) {
            Ok((_, held)) => Ok(Some((message.sequence, held))),
            Err(why) => Err(self.failed(format!("holds at sequence {} a message that {why}", message.sequence))),
        }
    }

    /// Forgets a subject in the stream: its tombstone, then its key's message erased.
    /// Idempotent, and it finishes what a failed attempt left (a tombstone without the
    /// erasure).
    async fn erase(&self, subject: &SubjectId) -> Result<(), KeyError> {
        self.refuse_if_broken()?;
        let mut backoff = Backoff::within(self.ack_timeout);
        let mut from_leader = false;
        loop {
            // A key is always the subject's first message, a tombstone always its last.
            let key_at = match self.message(subject, Which::First, from_leader).await? {
                Some((_, SharedKey::Forgotten)) => return Ok(()),
                Some((sequence, SharedKey::Wrapped(_))) => Some(sequence),
                None => None,
            };
            // The tombstone expects the subject's last message, so that no key lands between.
            let last = match key_at {
                None => Some(0),
                Some(_) => match self.message(subject, Which::Last, from_leader).await? {
                    Some((_, SharedKey::Forgotten)) => None,
                    Some((last, SharedKey::Wrapped(_))) => Some(last),
                    None => Some(0),
                },
            };
            let tombstoned = match last {
                // Published already, by an attempt that failed before the erasure.
                None => true,
                Some(expected) => {
                    let ack = self.send(subject, SharedKey::Forgotten, expected).await?;
                    self.acked(subject, SharedKey::Forgotten, ack).await?
                }
            };
            if tombstoned {
                if let Some(sequence) = key_at {
                    self.erase_message(subject, sequence).await?;
                }
                info!(stream = %self.name, subject = %subject, "forgot the subject on every node: its tombstone is in the key stream and its key erased");
                return Ok(());
            }
            // Another node's message came first, or is in flight: look again, at the leader,
            // since a replica answering a direct get may lag behind it.
            from_leader = true;
            if !backoff.wait().await {
                return Err(self.failed(format!(
                    "kept changing while subject {subject} was being forgotten, for {:?}; the erasure stays pending: \
                     retry",
                    self.ack_timeout
                )));
            }
        }
    }

    /// Erases the message at `sequence`, a subject's key: a message delete with
    /// `no_erase: false`, so that the servers overwrite its bytes rather than only mark it
    /// deleted. Written out here rather than through async-nats's `delete_message`, which
    /// sends no `no_erase` and so erases only because the servers default to it.
    async fn erase_message(&self, subject: &SubjectId, sequence: u64) -> Result<(), KeyError> {
        let request = serde_json::json!({ "seq": sequence, "no_erase": false });
        let not_erased = |e: &dyn std::fmt::Display| {
            self.failed(format!(
                "did not erase the key of subject {subject} at sequence {sequence} ({e}); the erasure stays pending: \
                 retry"
            ))
        };
        let response: Response<DeleteStatus> =
            self.js.request(format!("STREAM.MSG.DELETE.{}", self.name), &request).await.map_err(|e| not_erased(&e))?;
        match response {
            Response::Ok(DeleteStatus { success: true }) => Ok(()),
            // Erased already, by an attempt whose answer was lost or by another node.
            Response::Err { error } if error.error_code() == ErrorCode::NO_MESSAGE_FOUND => Ok(()),
            Response::Ok(DeleteStatus { success: false }) => Err(not_erased(&"the servers said it failed")),
            Response::Err { error } => Err(not_erased(&error)),
        }
    }

    /// The stream's last sequence as the servers report it.
    async fn stream_end(&self) -> Result<u64, KeyError> {
        let info = self.stream.get_info().await.map_err(|e| self.failed(format!("could not be read ({e}); retry")))?;
        Ok(info.state.last_sequence)
    }

    /// Waits until the store has taken the stream up to `end`; a consumer that makes no
    /// progress for an acknowledgement's wait is given up on.
    async fn read_to(&self, end: u64) -> Result<(), KeyError> {
        let mut read = self.read_up_to.subscribe();
        loop {
            let at = *read.borrow_and_update();
            if at >= end {
                return Ok(());
            }
            self.refuse_if_broken()?;
            if tokio::time::timeout(self.ack_timeout, read.changed()).await.is_err() && *read.borrow() == at {
                return Err(self.failed(format!(
                    "could not be read past sequence {at} of {end} within {:?}; retry once the cluster answers",
                    self.ack_timeout
                )));
            }
        }
    }

    /// Takes a batch of messages the consumer read into the store, with one sync.
    async fn take(&self, batch: &[jetstream::Message]) -> Result<(), Stop> {
        let mut read = Vec::with_capacity(batch.len());
        let mut last = 0;
        for message in batch {
            let sequence = message.info().map_err(|e| Stop::Retry(e.to_string()))?.stream_sequence;
            let held = read_message(&self.name, &message.subject, message.headers.as_ref(), &message.payload).map_err(
                |why| {
                    Stop::Broken(format!(
                        "the message at sequence {sequence} {why}: the stream holds what Rapport never writes, or a \
                         format this build does not read"
                    ))
                },
            )?;
            read.push(held);
            last = sequence;
        }
        let Some(store) = self.store.upgrade() else { return Err(Stop::Closed) };
        let taken = read.clone();
        let differing = tokio::task::spawn_blocking(move || store.adopt(&taken))
            .await
            .map_err(|e| Stop::Retry(e.to_string()))?
            .map_err(|e| Stop::Broken(e.to_string()))?;
        for subject in &differing {
            error!(stream = %self.name, subject = %subject, "this node holds another key for the subject than the key stream: it keeps its own");
        }
        if let Some(opening) = self.opening().as_mut() {
            for (subject, held) in &read {
                opening.seen.insert(*subject, *held == SharedKey::Forgotten);
            }
            opening.differing.extend(differing);
        }
        self.read_up_to.send_replace(last);
        Ok(())
    }
}

/// Whether the servers refused a publish because another one with an expected sequence for the
/// same subject was in flight (code 10164, which async-nats files as `Other`): it may or may
/// not land, so the subject's state is not known yet.
fn in_flight(error: &PublishError) -> bool {
    std::error::Error::source(error)
        .and_then(|source| source.downcast_ref::<jetstream::Error>())
        .is_some_and(|refusal| refusal.error_code() == ErrorCode::STREAM_WRONG_LAST_SEQUENCE_CONSTANT)
}

/// What a message of a subject is, for errors.
fn what(subject: &SubjectId, held: SharedKey) -> String {
    match held {
        SharedKey::Wrapped(_) => format!("the key of subject {subject}"),
        SharedKey::Forgotten => format!("the tombstone of subject {subject}"),
    }
}

/// Pauses between attempts at a subject that another node is changing, growing from 5 ms to
/// 100 ms, for at most a given time in all.
struct Backoff {
    until: Instant,
    pause: Duration,
}

impl Backoff {
    fn within(time: Duration) -> Backoff {
        Backoff { until: Instant::now() + time, pause: Duration::from_millis(5) }
    }

    /// Waits before the next attempt; `false` when the time is up.
    async fn wait(&mut self) -> bool {
        if Instant::now() + self.pause > self.until {
            return false;
        }
        tokio::time::sleep(self.pause).await;
        self.pause = (self.pause * 2).min(Duration::from_millis(100));
        true
    }
}

/// What a message of the key stream `name` says of its subject, or why it is not a message
/// Rapport writes.
fn read_message(
    name: &str,
    nats_subject: &str,
    headers: Option<&HeaderMap>,
    payload: &[u8],
) -> Result<(SubjectId, SharedKey), String> {
    let Some(subject) = subject_of(name, nats_subject) else {
        return Err(format!("is on {nats_subject}, which names no subject"));
    };
    match headers.and_then(|h| h.get(KIND)).map(|value| value.as_str()) {
        Some(WRAPPED) => match <[u8; WrappedKey::LEN]>::try_from(payload) {
            Ok(bytes) => Ok((subject, SharedKey::Wrapped(WrappedKey::from_bytes(bytes)))),
            Err(_) => Err(format!("holds {} bytes where a wrapped key has {}", payload.len(), WrappedKey::LEN)),
        },
        Some(FORGOTTEN) => Ok((subject, SharedKey::Forgotten)),
        Some(other) => Err(format!("says {KIND}: {other}, which is neither {WRAPPED} nor {FORGOTTEN}")),
        None => Err(format!("has no {KIND} header")),
    }
}

enum Stop {
    /// The consumer failed; make it again.
    Retry(String),
    /// The stream holds what the store cannot take: stop following it.
    Broken(String),
    /// The store is gone: nothing to follow for.
    Closed,
}

/// Takes the stream into the store until the store is gone or the stream holds what it
/// cannot take.
async fn follow(node: Arc<Node>) {
    loop {
        match read(&node).await {
            Ok(()) => warn!(stream = %node.name, "the key stream's consumer ended; reading on"),
            Err(Stop::Retry(why)) => warn!(stream = %node.name, %why, "the key stream's consumer failed; reading on"),
            Err(Stop::Closed) => return,
            Err(Stop::Broken(why)) => {
                error!(stream = %node.name, %why, "this node stopped following the key stream: it takes no new keys and forgets no contact until it is restarted");
                *node.broken.lock().unwrap_or_else(PoisonError::into_inner) = Some(why);
                node.read_up_to.send_modify(|_| ());
                return;
            }
        }
        tokio::time::sleep(RETRY_AFTER).await;
    }
}

/// Reads from the message after the last one taken, a batch at a time (what has arrived, up
/// to [`ADOPT_BATCH`]), until the consumer fails.
async fn read(node: &Node) -> Result<(), Stop> {
    let from = *node.read_up_to.borrow() + 1;
    let mut messages = ordered(&node.js, &node.name, from).await.map_err(Stop::Retry)?;
    loop {
        let Some(first) = messages.next().await else { return Ok(()) };
        let mut batch = vec![first.map_err(|e| Stop::Retry(e.to_string()))?];
        // How the consumer ended while the batch was gathered, once the batch is taken.
        let mut ended = None;
        while batch.len() < ADOPT_BATCH {
            match messages.next().now_or_never() {
                Some(Some(Ok(message))) => batch.push(message),
                Some(Some(Err(e))) => {
                    ended = Some(Err(Stop::Retry(e.to_string())));
                    break;
                }
                Some(None) => {
                    ended = Some(Ok(()));
                    break;
                }
                None => break,
            }
        }
        node.take(&batch).await?;
        if let Some(ended) = ended {
            return ended;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_subject_has_one_subject_of_lower_case_hex_and_back() {
        let subject = SubjectId::from_bytes([0xab; 32]);
        let name = stream_name("RAPPORT");
        assert_eq!(name, "RAPPORT_KEYS");
        let nats_subject = key_subject(&name, &subject);
        assert_eq!(nats_subject, format!("RAPPORT_KEYS.k.{}", "ab".repeat(32)));
        assert_eq!(subject_of(&name, &nats_subject), Some(subject));
        assert_eq!(subject_of(&name, &format!("RAPPORT_KEYS.k.{}", "AB".repeat(32))), None, "lower case only");
        assert_eq!(subject_of(&name, &format!("RAPPORT_KEYS.k.{}", "ab".repeat(31))), None);
        assert_eq!(subject_of(&name, &format!("OTHER_KEYS.k.{}", "ab".repeat(32))), None);
        assert_eq!(subject_of("RAPPORT", &format!("RAPPORT.a.{}", "ab".repeat(32))), None);
    }

    #[test]
    fn a_message_is_a_wrapped_key_or_a_tombstone_and_nothing_else() {
        let subject = SubjectId::from_bytes([1; 32]);
        let nats_subject = key_subject("K", &subject);
        let with = |kind: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(KIND, kind);
            headers
        };
        let wrapped = [7u8; WrappedKey::LEN];
        assert_eq!(
            read_message("K", &nats_subject, Some(&with("wrapped")), &wrapped),
            Ok((subject, SharedKey::Wrapped(WrappedKey::from_bytes(wrapped))))
        );
        assert_eq!(
            read_message("K", &nats_subject, Some(&with("forgotten")), b""),
            Ok((subject, SharedKey::Forgotten))
        );
        let refused = [
            read_message("K", &nats_subject, Some(&with("wrapped")), &wrapped[..59]),
            read_message("K", &nats_subject, Some(&with("rotated")), b""),
            read_message("K", &nats_subject, None, &wrapped),
            read_message("K", "K.k.zz", Some(&with("forgotten")), b""),
        ];
        for (refusal, says) in refused.into_iter().zip(["59 bytes", "rotated", "no Rapport-Key", "names no subject"]) {
            assert!(refusal.as_ref().is_err_and(|why| why.contains(says)), "{refusal:?} should say {says}");
        }
    }

    #[test]
    fn the_key_stream_rapport_makes_passes_its_own_check() {
        let made = config(&stream_name("RAPPORT"), 1);
        assert_eq!(check(&made), Ok(()));
        assert_eq!(made.subjects, ["RAPPORT_KEYS.k.>"]);
        assert_eq!(made.num_replicas, 3, "never fewer than three replicas");
        assert!(!made.deny_delete && made.deny_purge && made.allow_direct);
    }

    /// A setting, and a change that makes it unsafe.
    type Spoiled = (&'static str, fn(&mut Config));

    #[test]
    fn every_unsafe_setting_is_refused_by_name() {
        let cases: [Spoiled; 16] = [
            ("storage", |c| c.storage = StorageType::Memory),
            ("num_replicas", |c| c.num_replicas = 1),
            ("retention", |c| c.retention = RetentionPolicy::Interest),
            ("max_age", |c| c.max_age = Duration::from_secs(60)),
            ("max_bytes", |c| c.max_bytes = 1 << 20),
            ("max_msgs", |c| c.max_messages = 10),
            ("max_msgs_per_subject", |c| c.max_messages_per_subject = 1),
            ("allow_rollup", |c| c.allow_rollup = true),
            ("sealed", |c| c.sealed = true),
            ("deny_delete", |c| c.deny_delete = true),
            ("deny_purge", |c| c.deny_purge = false),
            ("allow_direct", |c| c.allow_direct = false),
            ("allow_msg_ttl", |c| c.allow_message_ttl = true),
            ("metadata.rapport_key_format", |c| c.metadata.clear()),
            ("metadata.rapport_key_format", |c| {
                c.metadata.insert(FORMAT_KEY.into(), "2".into());
            }),
            ("subjects", |c| c.subjects = vec!["RAPPORT_KEYS.>".into()]),
        ];
        for (setting, spoil) in cases {
            let mut spoiled = config("RAPPORT_KEYS", 3);
            spoil(&mut spoiled);
            let refused = check(&spoiled).expect_err(setting);
            assert_eq!(refused.setting, setting);
            let message = refused.to_string();
            assert!(message.contains("stream RAPPORT_KEYS") && message.contains(&format!("`{setting}`")), "{message}");
        }
    }
}
