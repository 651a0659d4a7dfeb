//! An append as the writer takes it, and where its events ended up.

use bytes::Bytes;
use rapport_domain::{AccountId, Event, ExpectedVersion, Limits, Violation};
use rapport_keys::KeysWritten;
use rapport_proto::v1 as pb;

use crate::error::AppendError;
use crate::privacy::PersonalData;

/// An append the handler has parsed and validated field by field.
#[derive(Debug)]
pub(crate) struct Append {
    /// The stream.
    pub account_id: AccountId,
    /// The client's belief about the stream.
    pub expected: ExpectedVersion,
    /// The events, in order.
    pub events: Vec<Event>,
    /// Each event's canonical encoding, its personal fields sealed, as the log stores it (same
    /// order as `events`).
    pub payloads: Vec<Bytes>,
    /// The authenticated identity appending them; empty without authentication.
    pub recorded_by: String,
    /// The new data keys the events are sealed under, which must be durable before the events
    /// are written.
    pub keys_written: KeysWritten,
}

impl Append {
    /// Parses an append request, every field through `rapport-wire` (its text becomes the
    /// events' without being copied), and seals its personal fields; the writer then judges it
    /// against the account. `recorded_by` is the authenticated identity making the request.
    pub async fn from_wire(
        request: pb::AppendRequest,
        recorded_by: String,
        limits: &Limits,
        personal: &PersonalData,
    ) -> Result<Append, AppendError> {
        let pb::AppendRequest { account_id, expected, events } = request;
        let parse = || -> Result<_, Violation> {
            let account_id = rapport_wire::requests::account_id(&account_id, "account_id", limits)?;
            Ok((account_id, rapport_wire::requests::append_events(events, limits)?))
        };
        let (account_id, mut events) = parse().map_err(AppendError::Invalid)?;
        let keys_written = personal.seal(&account_id, &mut events).await?;
        let payloads = events.iter().map(rapport_wire::encode_event).collect();
        let expected = rapport_wire::requests::expected_version(expected.as_ref());
        Ok(Append { account_id, expected, events, payloads, recorded_by, keys_written })
    }
}

/// Where an append's events are, whether just written or found from an earlier try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AppendOutcome {
    /// Version of the first event.
    pub first_version: u64,
    /// Position of the first event; the others follow without gaps.
    pub first_position: u64,
    /// How many events the append holds.
    pub events: u64,
    /// The events were already recorded by an earlier try of the same request.
    pub duplicate: bool,
}

impl AppendOutcome {
    /// The reply to the client.
    pub fn to_wire(self) -> pb::AppendResponse {
        rapport_wire::replies::append_response(self.first_version, self.first_position, self.events, self.duplicate)
    }
}
