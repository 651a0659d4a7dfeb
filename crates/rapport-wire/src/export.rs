//! The export's line: one recorded event as a line of JSON, with stable field names (see the
//! README), written by `rapport export` and the console's export download and read back by
//! `rapport verify --file` and `rapport import`.
//!
//! `event` is the event in the proto3 JSON mapping as readers see it (personal fields opened,
//! or shown forgotten). The hash covers the canonical protobuf encoding of `stored` where there
//! is one (the event as the log stores it, personal fields sealed) and of `event` where not (an
//! event stored in clear), so a line whose stored event was altered no longer matches its hash.

use prost::Message;
use rapport_proto::v1 as pb;
use rapport_store::{HashScheme, hex};
use serde::{Deserialize, Serialize};

/// One line of an export.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportLine {
    /// The event's place in the whole log.
    pub position: u64,
    /// Its account.
    pub account_id: String,
    /// Its place in the account's stream.
    pub version: u64,
    /// RFC 3339, nanosecond precision, UTC.
    pub recorded_at: String,
    /// The client's id of the event.
    pub event_id: String,
    /// The token identity that appended the event; absent when it was appended without one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub recorded_by: String,
    /// The event as readers see it.
    pub event: pb::Event,
    /// The event as the log stores it, when that is not `event`: its personal fields sealed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored: Option<pb::Event>,
    /// A contact the event's personal fields concern was forgotten: they show as forgotten.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forgotten: bool,
    /// The hash of the stream's previous event, lower-case hex SHA-256.
    pub prev_hash: String,
    /// The event's hash, lower-case hex SHA-256.
    pub hash: String,
    /// How `hash` is made (see ARCHITECTURE.md); absent for scheme 1, with the position.
    #[serde(default, skip_serializing_if = "is_first_scheme")]
    pub hash_scheme: u32,
}

fn is_first_scheme(scheme: &u32) -> bool {
    HashScheme::from_number(*scheme) == Some(HashScheme::Positioned)
}

/// A recorded event the server sent that cannot be written as a line.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Its recording time is not a time.
    #[error("event at position {position} has a recording time that is not a time")]
    RecordedAt {
        /// Where in the log.
        position: u64,
    },
    /// Its stored bytes do not decode as an event.
    #[error("event at position {position}: the server sent a stored event that does not decode: {source}")]
    StoredEvent {
        /// Where in the log.
        position: u64,
        /// What decoding said.
        source: prost::DecodeError,
    },
}

impl ExportLine {
    /// The line of a recorded event as the server sends it.
    pub fn from_recorded(recorded: pb::RecordedEvent) -> Result<ExportLine, ExportError> {
        let position = recorded.position;
        let at = recorded.recorded_at.unwrap_or_default();
        let recorded_at =
            jiff::Timestamp::new(at.seconds, at.nanos).map_err(|_| ExportError::RecordedAt { position })?;
        Ok(ExportLine {
            position,
            account_id: recorded.account_id,
            version: recorded.version,
            recorded_at: format!("{recorded_at:.9}"),
            event_id: recorded.event.as_ref().map(|e| e.event_id.clone()).unwrap_or_default(),
            recorded_by: recorded.recorded_by,
            event: recorded.event.unwrap_or_default(),
            stored: (!recorded.stored_event.is_empty())
                .then(|| pb::Event::decode(recorded.stored_event.as_slice()))
                .transpose()
                .map_err(|source| ExportError::StoredEvent { position, source })?,
            forgotten: recorded.forgotten,
            prev_hash: hex(&hash_bytes(&recorded.prev_hash)),
            hash: hex(&hash_bytes(&recorded.hash)),
            hash_scheme: recorded.hash_scheme,
        })
    }
}

fn hash_bytes(bytes: &[u8]) -> [u8; 32] {
    <[u8; 32]>::try_from(bytes).unwrap_or([0; 32])
}
