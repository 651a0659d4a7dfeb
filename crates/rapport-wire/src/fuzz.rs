//! Fuzzing the boundary where untrusted bytes become domain events: whatever arrives, parsing
//! never panics, and what it accepts re-encodes to bytes that decode to the same event (the
//! canonical form the log hashes). `PROPTEST_CASES=100000 cargo test -p rapport-wire --lib
//! fuzz` runs a long campaign; CI runs the default 256 cases per property.

use bytes::Bytes;
use proptest::prelude::*;
use prost::Message;
use rapport_domain::Limits;
use rapport_proto::{v1 as pb, wkt};

use rapport_domain::{EventId, Timestamp};
use rapport_store::StoredEvent;

use crate::payload::{decode_event, encode_event};
use crate::requests::append_events;

/// Text that is mostly valid, so that most requests get deep into parsing, and sometimes
/// not at all: control characters, long runs, any Unicode.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        40 => "[a-z][a-z0-9._-]{0,19}",
        1 => Just(String::new()),
        1 => "\\PC{0,40}",
        1 => any::<String>(),
        1 => "[a-z]{1,8}".prop_map(|s| s.repeat(400)),
    ]
}

fn timestamp() -> impl Strategy<Value = Option<wkt::Timestamp>> {
    prop_oneof![
        30 => (1_700_000_000i64..1_767_225_600, 0i32..1_000_000_000)
            .prop_map(|(seconds, nanos)| Some(wkt::Timestamp { seconds, nanos })),
        1 => Just(None),
        1 => (any::<i64>(), any::<i32>()).prop_map(|(seconds, nanos)| Some(wkt::Timestamp { seconds, nanos })),
    ]
}

fn uuid() -> impl Strategy<Value = String> {
    prop_oneof![30 => any::<u128>().prop_map(|n| uuid::Uuid::from_u128(n).to_string()), 1 => text()]
}

/// Enum values: mostly known, sometimes unspecified or unknown.
fn enumeration() -> impl Strategy<Value = i32> {
    prop_oneof![30 => 1i32..6, 1 => Just(0), 1 => any::<i32>()]
}

fn currency() -> impl Strategy<Value = String> {
    prop_oneof![30 => prop::sample::select(vec!["EUR", "USD", "JPY", "CHF"]).prop_map(String::from), 1 => text()]
}

fn body() -> impl Strategy<Value = Option<pb::event::Body>> {
    use pb::event::Body as B;
    prop_oneof![
        Just(None),
        (text(), text(), text()).prop_map(|(name, industry, owner)| Some(B::AccountOpened(pb::AccountOpened {
            name,
            industry,
            owner
        }))),
        (enumeration(), text()).prop_map(|(tier, reason)| Some(B::TierAssigned(pb::TierAssigned { tier, reason }))),
        (text(), text(), text(), text(), enumeration(), any::<bool>()).prop_map(
            |(contact_id, name, title, department, role, key)| {
                Some(B::ContactAdded(pb::ContactAdded { contact_id, name, title, department, role, key }))
            }
        ),
        (prop::collection::vec(text(), 0..4), prop::collection::vec(text(), 0..4), enumeration(), text(), text())
            .prop_map(|(staff, contact_ids, kind, topic, notes)| Some(B::MeetingHeld(pb::MeetingHeld {
                staff,
                contact_ids,
                kind,
                topic,
                notes
            }))),
        (text(), text(), text(), prop_oneof![30 => 0i64..1_000_000, 1 => any::<i64>()], currency(), text()).prop_map(
            |(giver, recipient_contact_id, description, value_minor, currency, approval_ref)| {
                Some(B::GiftGiven(pb::GiftGiven {
                    giver,
                    recipient_contact_id,
                    description,
                    value_minor,
                    currency,
                    approval_ref,
                }))
            }
        ),
        (
            text(),
            prop_oneof![30 => -2i32..=2, 1 => any::<i32>()],
            prop_oneof![30 => 0u32..=4, 1 => any::<u32>()],
            text()
        )
            .prop_map(|(contact_id, support, intimacy, evidence)| {
                Some(B::SupportSignal(pb::SupportSignal { contact_id, support, intimacy, evidence }))
            }),
        (text(), prop_oneof![30 => 0u32..=10, 1 => any::<u32>()], text()).prop_map(|(contact_id, score, text)| {
            Some(B::FeedbackReceived(pb::FeedbackReceived { contact_id, score, text }))
        }),
        (enumeration(), text(), prop_oneof![30 => 0i64..1_000_000, 1 => any::<i64>()], currency(), text()).prop_map(
            |(kind, title, value_minor, currency, reference)| {
                Some(B::OutcomeRecorded(pb::OutcomeRecorded { kind, title, value_minor, currency, reference }))
            }
        ),
        (uuid(), text())
            .prop_map(|(event_id, reason)| Some(B::EventRetracted(pb::EventRetracted { event_id, reason }))),
    ]
}

fn event() -> impl Strategy<Value = pb::Event> {
    (uuid(), timestamp(), text(), text(), body()).prop_map(|(event_id, occurred_at, actor, source, body)| pb::Event {
        event_id,
        occurred_at,
        actor,
        source,
        body,
        sealed: None,
    })
}

fn stored(payload: Bytes) -> StoredEvent {
    StoredEvent {
        account_id: rapport_domain::AccountId::parse("acme", &Limits::default()).unwrap(),
        version: 1,
        position: 1,
        recorded_at: Timestamp::EPOCH,
        event_id: EventId::from_bytes([0; 16]),
        recorded_by: String::new(),
        payload,
        prev_hash: rapport_store::GENESIS_HASH,
        hash: rapport_store::GENESIS_HASH,
        scheme: rapport_store::HashScheme::Positioned,
    }
}

proptest! {
    #[test]
    fn structured_requests_never_panic_and_round_trip(account_id in text(), events in prop::collection::vec(event(), 1..4)) {
        let request = pb::AppendRequest { account_id, expected: None, events };
        if let Ok(events) = append_events(request.events, &Limits::default()) {
            for event in &events {
                let payload = encode_event(event);
                let decoded = decode_event(&stored(payload.clone())).expect("an accepted event decodes");
                prop_assert_eq!(&decoded, event);
                prop_assert_eq!(&encode_event(&decoded), &payload, "the encoding is canonical");
            }
        }
    }

    #[test]
    fn raw_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(request) = pb::AppendRequest::decode(bytes.as_slice()) {
            let _ = append_events(request.events, &Limits::default());
        }
        let _ = decode_event(&stored(Bytes::from(bytes)));
    }
}
