//! The node's consumer: it reads the stream in order into the node's [`MemoryEvents`], one
//! whole batch at a time, checking each event as the log's invariants require, and tells the
//! watchers of every batch it adds.
//!
//! It reads through [`ordered`], which the key stream's follower shares: when the consumer
//! fails, falls silent (its leader died, say) or skips a sequence, it is made again from the
//! position after the last one read, so the node never skips or repeats an event and a new
//! leader is found within two heartbeats.

use std::sync::{Arc, PoisonError};
use std::time::Duration;

use async_nats::jetstream::{
    self,
    consumer::{AckPolicy, DeliverPolicy, pull},
};
use futures::{Stream, StreamExt};
use rapport_domain::Limits;
use rapport_envelope::decode_envelope;
use rapport_store::{GENESIS_HASH, StoreError, StoredEvent};
use tracing::{error, warn};

use crate::log::{BATCH_LEFT, Node};
use crate::stream::account_of_subject;

/// How long a consumer waits before it is made again after a failure.
pub(crate) const RETRY_AFTER: Duration = Duration::from_millis(250);

/// How often the servers tell an idle consumer they are there; two missed, and it is made again.
const HEARTBEAT: Duration = Duration::from_secs(1);

/// Times the same sequence may be found missing before the stream is taken to have a hole (a
/// consumer's delivery can drop a message; a stream that denies deletes cannot).
const GAPS_BEFORE_BROKEN: u32 = 3;

/// Reads the stream into `node` until the stream holds what no Rapport log can.
pub(crate) async fn follow(node: Arc<Node>) {
    // The sequence last found missing, and how many times in a row.
    let mut gaps = (0, 0);
    loop {
        match read(&node).await {
            Ok(()) => warn!(stream = %node.stream, "the NATS consumer ended; reading on"),
            Err(Stop::Retry(why)) => warn!(stream = %node.stream, %why, "the NATS consumer failed; reading on"),
            Err(Stop::Gap(missing)) if gaps.0 != missing || gaps.1 + 1 < GAPS_BEFORE_BROKEN => {
                gaps = (missing, if gaps.0 == missing { gaps.1 + 1 } else { 1 });
                warn!(stream = %node.stream, missing, "the NATS consumer skipped a sequence; reading on from it");
            }
            Err(Stop::Gap(missing)) => {
                let broken = StoreError::Corrupt(format!("the stream has no message at sequence {missing}"));
                error!(stream = %node.stream, error = %broken, "the NATS stream holds what a Rapport log cannot; this node stopped reading it");
                *node.broken.lock().unwrap_or_else(PoisonError::into_inner) = Some(broken);
                node.read_up_to.send_modify(|_| ());
                return;
            }
            Err(Stop::Broken(broken)) => {
                error!(stream = %node.stream, error = %broken, "the NATS stream holds what a Rapport log cannot; this node stopped reading it");
                *node.broken.lock().unwrap_or_else(PoisonError::into_inner) = Some(broken);
                node.read_up_to.send_modify(|_| ());
                return;
            }
        }
        tokio::time::sleep(RETRY_AFTER).await;
    }
}

enum Stop {
    /// The consumer failed; make it again.
    Retry(String),
    /// The consumer skipped this sequence; make it again from there.
    Gap(u64),
    /// An event does not hold together: stop reading.
    Broken(StoreError),
}

/// Reads from the position after the node's last, until the consumer fails.
async fn read(node: &Node) -> Result<(), Stop> {
    let from = node.events().last_position() + 1;
    let retry = |e: &dyn std::fmt::Display| Stop::Retry(e.to_string());
    let mut messages = ordered(&node.js, &node.stream, from).await.map_err(Stop::Retry)?;
    let limits = Limits::for_recorded_events();
    // The events of an atomic batch read so far, shown once the batch is whole.
    let mut batch: Vec<StoredEvent> = Vec::new();
    while let Some(message) = messages.next().await {
        let message = message.map_err(Stop::Retry)?;
        let sequence = message.info().map_err(|e| retry(&e))?.stream_sequence;
        let corrupt =
            |what: String| Stop::Broken(StoreError::Corrupt(format!("the message at sequence {sequence} {what}")));
        let expected = node.events().last_position() + batch.len() as u64 + 1;
        if sequence != expected {
            // What was read of an unfinished batch is read again with the rest of it.
            return Err(Stop::Gap(expected));
        }
        let event = decode_envelope(sequence, message.payload.clone()).map_err(Stop::Broken)?;
        if account_of_subject(&node.stream, &message.subject, &limits).as_ref() != Some(&event.account_id) {
            return Err(corrupt(format!(
                "is on subject {} but is an event of \"{}\"",
                message.subject, event.account_id
            )));
        }
        let left: u64 = match message.headers.as_ref().and_then(|h| h.get(BATCH_LEFT)) {
            None => 0,
            Some(value) => value.as_str().parse().map_err(|_| corrupt(format!("has {BATCH_LEFT}: {value}")))?,
        };
        batch.push(event);
        if left == 0 {
            add(node, std::mem::take(&mut batch)).map_err(Stop::Broken)?;
        }
    }
    Ok(())
}

/// The messages of `stream` from sequence `from` on, in order: an ephemeral pull consumer
/// without acknowledgements, on the stream's leader, with idle heartbeats every [`HEARTBEAT`].
/// It ends with an error when it fails, when two heartbeats go missing (a dead leader) or when
/// its own delivery sequence skips (a message dropped on the way), and the caller makes it
/// again from where it stopped. (The client's ordered consumer does the same, but notices a
/// dead leader only after 30 s.)
pub(crate) async fn ordered(
    js: &jetstream::Context,
    stream: &str,
    from: u64,
) -> Result<impl Stream<Item = Result<jetstream::Message, String>> + Unpin, String> {
    let stream = js.get_stream_no_info(stream).await.map_err(|e| e.to_string())?;
    let consumer = stream
        .create_consumer(pull::Config {
            deliver_policy: DeliverPolicy::ByStartSequence { start_sequence: from },
            ack_policy: AckPolicy::None,
            // Gone by itself soon after this node stops asking (a replacement, a node stopped).
            inactive_threshold: Duration::from_secs(30),
            num_replicas: 1,
            memory_storage: true,
            ..pull::Config::default()
        })
        .await
        .map_err(|e| e.to_string())?;
    let messages = consumer
        .stream()
        .max_messages_per_batch(512)
        .heartbeat(HEARTBEAT)
        .expires(HEARTBEAT * 10)
        .messages()
        .await
        .map_err(|e| e.to_string())?;
    let mut delivered = 0;
    Ok(messages.map(move |message| {
        let message = message.map_err(|e| e.to_string())?;
        let sequence = message.info().map_err(|e| e.to_string())?.consumer_sequence;
        if sequence != delivered + 1 {
            return Err(format!("the consumer skipped from delivery {delivered} to {sequence}"));
        }
        delivered = sequence;
        Ok(message)
    }))
}

/// Adds a whole batch to what the node has read, after checking each event's chain: its hash
/// is its own, and it links to the previous event of its stream. Nothing of a batch that fails
/// is added.
fn add(node: &Node, batch: Vec<StoredEvent>) -> Result<(), StoreError> {
    let last = {
        let mut events = node.events.write().unwrap_or_else(PoisonError::into_inner);
        let mut previous: Option<&StoredEvent> = None;
        for event in &batch {
            let prev_hash = match previous {
                Some(previous) if previous.account_id == event.account_id => previous.hash,
                _ => events.head(&event.account_id)?.map_or(GENESIS_HASH, |h| h.hash),
            };
            if event.prev_hash != prev_hash || event.hash != event.computed_hash() {
                return Err(StoreError::Corrupt(format!(
                    "the event at position {} (version {} of \"{}\") breaks its stream's hash chain",
                    event.position, event.version, event.account_id
                )));
            }
            previous = Some(event);
        }
        let last = batch.last().map_or(events.last_position(), |e| e.position);
        for event in batch {
            events.push(event)?;
        }
        last
    };
    node.read_up_to.send_replace(last);
    for notify in node.watchers.lock().unwrap_or_else(PoisonError::into_inner).iter() {
        notify();
    }
    Ok(())
}
