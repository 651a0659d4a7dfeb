//! The stored form of an event: the bytes the log keeps and hashes are the event's canonical
//! `rapport.v1.Event` encoding, its personal fields sealed (payload format 2; in payload format 1
//! they were in clear). A recorded event is shown to clients with those fields opened, or shown
//! forgotten, and with the stored bytes beside it so that its hash can be checked.

use bytes::Bytes;
use prost::Message;
use rapport_domain as domain;
use rapport_domain::Limits;
use rapport_proto::v1 as pb;
use rapport_store::StoredEvent;

use crate::events::{event_from_wire, event_to_reader, event_to_wire};
use crate::sealing::{Keys, open_event};
use crate::timestamp_to_wire;

/// The bytes the log stores for an event: its canonical wire encoding (equal events encode to
/// equal bytes, which idempotent retries compare).
pub fn encode_event(event: &domain::Event) -> Bytes {
    Bytes::from(event_to_wire(event).encode_to_vec())
}

/// Stored bytes that are no event: the protobuf does not decode, or a value breaks its
/// domain type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UndecodableEvent(String);

/// Parses an event's stored bytes into the domain event. Stored events passed validation when
/// they were appended; they are parsed here without the request limits (which an operator may
/// have tightened since), so history always folds.
pub fn event_from_bytes(payload: &[u8]) -> Result<domain::Event, UndecodableEvent> {
    let wire = pb::Event::decode(payload).map_err(|e| UndecodableEvent(e.to_string()))?;
    event_from_wire(wire, "event", &Limits::for_recorded_events()).map_err(|v| UndecodableEvent(v.to_string()))
}

/// A recorded event whose stored bytes do not decode: the log is damaged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the event at position {position} (account \"{account_id}\", version {version}) does not decode: {why}")]
pub struct CorruptEvent {
    /// Where it is.
    pub position: u64,
    /// Its stream.
    pub account_id: String,
    /// Its version.
    pub version: u64,
    /// What does not decode.
    pub why: String,
}

impl CorruptEvent {
    fn of(record: &StoredEvent, why: String) -> CorruptEvent {
        CorruptEvent {
            position: record.position,
            account_id: record.account_id.to_string(),
            version: record.version,
            why,
        }
    }
}

/// Decodes a recorded event's payload into the domain event.
pub fn decode_event(record: &StoredEvent) -> Result<domain::Event, CorruptEvent> {
    event_from_bytes(&record.payload).map_err(|e| CorruptEvent::of(record, e.0))
}

/// The wire form of a recorded event as a reader sees it: an event stored in clear as it was
/// stored, a sealed one with its personal fields opened with `keys` (or shown forgotten) and
/// its stored bytes in `stored_event`. `retracted_by` is the version of the retraction that
/// names it (0: not retracted).
pub fn recorded_to_wire(
    record: &StoredEvent,
    retracted_by: u64,
    keys: &dyn Keys,
) -> Result<pb::RecordedEvent, CorruptEvent> {
    let stored = pb::Event::decode(record.payload.as_ref()).map_err(|e| CorruptEvent::of(record, e.to_string()))?;
    let (event, forgotten, stored_event) = if stored.sealed.is_some() {
        let mut event = decode_event(record)?;
        open_event(&mut event, &record.account_id, keys);
        let (shown, forgotten) = event_to_reader(&event);
        (shown, forgotten, record.payload.to_vec())
    } else {
        // Clear text, or no personal text at all: shown as stored. A format-1 event of a
        // forgotten contact cannot exist: erasure refuses contacts with text in clear.
        (stored, false, Vec::new())
    };
    Ok(pb::RecordedEvent {
        forgotten,
        stored_event,
        account_id: record.account_id.to_string(),
        version: record.version,
        position: record.position,
        recorded_at: Some(timestamp_to_wire(record.recorded_at)),
        event: Some(event),
        hash: record.hash.to_vec(),
        prev_hash: record.prev_hash.to_vec(),
        retracted_by,
        recorded_by: record.recorded_by.clone(),
        hash_scheme: record.scheme.number(),
    })
}
