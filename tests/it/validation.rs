//! Every validation rule of `Append`, as a table: the request, the status code, the field the
//! error names; and bytes that are no request at all. Each case also checks that nothing was
//! written.

use rapport_proto::{v1 as pb, wkt};
use tonic::Code;
use tonic_types::StatusExt;

use crate::support::*;

use pb::event::Body;

/// One invalid request and the error it must get.
struct Case {
    name: &'static str,
    request: pb::AppendRequest,
    code: Code,
    /// The field path the error names (`BadRequest.field_violations[0].field`), if INVALID_ARGUMENT.
    field: &'static str,
}

fn invalid(name: &'static str, field: &'static str, request: pb::AppendRequest) -> Case {
    Case { name, request, code: Code::InvalidArgument, field }
}

/// `acme` (owner li.wei) with current contacts c1, c2, former contact c3, team member sam.lee.
fn acme(events: Vec<pb::Event>) -> pb::AppendRequest {
    request("acme", Expected::Any, events)
}

fn with(mut event: pb::Event, change: impl FnOnce(&mut pb::Event)) -> pb::Event {
    change(&mut event);
    event
}

fn body(event: pb::Event, change: impl FnOnce(&mut Body)) -> pb::Event {
    with(event, |e| change(e.body.as_mut().unwrap()))
}

fn cases(opened_event_id: &str, other_account_event_id: &str, retraction_id: &str) -> Vec<Case> {
    let long = "x".repeat(129);
    let hour = 3_600;
    vec![
        // The request.
        invalid("account id missing", "account_id", request("", Expected::Any, vec![signal("c1", 1, 1)])),
        invalid("account id with a space", "account_id", request("ac me", Expected::Any, vec![signal("c1", 1, 1)])),
        invalid("account id with a control character", "account_id", request("acme\u{7}", Expected::Any, vec![])),
        invalid("account id too long", "account_id", request(&long, Expected::Any, vec![signal("c1", 1, 1)])),
        invalid("no events", "events", acme(vec![])),
        invalid("too many events", "events", acme((0..1_001).map(|_| signal("c1", 1, 1)).collect())),
        // The envelope of an event.
        invalid("event id missing", "events[0].event_id", acme(vec![with(signal("c1", 1, 1), |e| e.event_id.clear())])),
        invalid(
            "event id not a UUID",
            "events[0].event_id",
            acme(vec![with(signal("c1", 1, 1), |e| e.event_id = "evt-1".into())]),
        ),
        invalid(
            "event id repeated in the batch",
            "events[1].event_id",
            acme({
                let first = signal("c1", 1, 1);
                let second = with(signal("c2", 1, 1), |e| e.event_id = first.event_id.clone());
                vec![first, second]
            }),
        ),
        invalid(
            "occurred_at missing",
            "events[0].occurred_at",
            acme(vec![with(signal("c1", 1, 1), |e| e.occurred_at = None)]),
        ),
        invalid(
            "occurred_at more than a day ahead of the server",
            "events[0].occurred_at",
            acme(vec![with(signal("c1", 1, 1), |e| {
                e.occurred_at = Some(wkt::Timestamp { seconds: NOW_SECONDS + 25 * hour, nanos: 0 })
            })]),
        ),
        invalid(
            "occurred_at before 1970",
            "events[0].occurred_at",
            acme(vec![with(signal("c1", 1, 1), |e| {
                e.occurred_at = Some(wkt::Timestamp { seconds: -86_400, nanos: 0 })
            })]),
        ),
        invalid(
            "occurred_at nanos out of range",
            "events[0].occurred_at",
            acme(vec![with(signal("c1", 1, 1), |e| e.occurred_at = Some(wkt::Timestamp { seconds: 0, nanos: -1 }))]),
        ),
        invalid("actor missing", "events[0].actor", acme(vec![with(signal("c1", 1, 1), |e| e.actor.clear())])),
        invalid(
            "source with a newline",
            "events[0].source",
            acme(vec![with(signal("c1", 1, 1), |e| e.source = "crm\nevil".into())]),
        ),
        invalid("body missing", "events[0].body", acme(vec![with(signal("c1", 1, 1), |e| e.body = None)])),
        // Values.
        invalid("support above coach", "events[0].support_signal.support", acme(vec![signal("c1", 3, 1)])),
        invalid("support below opponent", "events[0].support_signal.support", acme(vec![signal("c1", -3, 1)])),
        invalid("intimacy above trusted advisor", "events[0].support_signal.intimacy", acme(vec![signal("c1", 0, 5)])),
        invalid("negative gift value", "events[0].gift_given.value_minor", acme(vec![gift("li.wei", "c1", -1, "EUR")])),
        invalid("unknown currency", "events[0].gift_given.currency", acme(vec![gift("li.wei", "c1", 100, "EUX")])),
        invalid("lowercase currency", "events[0].gift_given.currency", acme(vec![gift("li.wei", "c1", 100, "eur")])),
        invalid(
            "meeting kind unset",
            "events[0].meeting_held.kind",
            acme(vec![body(meeting(&["li.wei"], &["c1"]), |b| {
                if let Body::MeetingHeld(m) = b {
                    m.kind = 0
                }
            })]),
        ),
        invalid(
            "meeting kind unknown",
            "events[0].meeting_held.kind",
            acme(vec![body(meeting(&["li.wei"], &["c1"]), |b| {
                if let Body::MeetingHeld(m) = b {
                    m.kind = 99
                }
            })]),
        ),
        invalid(
            "contact role unknown",
            "events[0].contact_added.role",
            acme(vec![body(contact("c9", "IT", false), |b| {
                if let Body::ContactAdded(c) = b {
                    c.role = 42
                }
            })]),
        ),
        invalid("tier unset", "events[0].tier_assigned.tier", acme(vec![tier(pb::Tier::Unspecified)])),
        invalid(
            "contact name too long",
            "events[0].contact_added.name",
            acme(vec![body(contact("c9", "IT", false), |b| {
                if let Body::ContactAdded(c) = b {
                    c.name = "n".repeat(257)
                }
            })]),
        ),
        invalid(
            "meeting notes over 16 KiB",
            "events[0].meeting_held.notes",
            acme(vec![body(meeting(&["li.wei"], &["c1"]), |b| {
                if let Body::MeetingHeld(m) = b {
                    m.notes = "n".repeat(16 * 1024 + 1)
                }
            })]),
        ),
        invalid("meeting without our staff", "events[0].meeting_held.staff", acme(vec![meeting(&[], &["c1"])])),
        invalid(
            "meeting with a contact listed twice",
            "events[0].meeting_held.contact_ids[1]",
            acme(vec![meeting(&["li.wei"], &["c1", "c1"])]),
        ),
        invalid(
            "contact update that changes nothing",
            "events[0].contact_updated",
            acme(vec![event(Body::ContactUpdated(pb::ContactUpdated {
                contact_id: "c1".into(),
                ..Default::default()
            }))]),
        ),
        invalid(
            "owner handed to themselves",
            "events[0].owner_changed.to_owner",
            acme(vec![owner_changed("li.wei", "li.wei")]),
        ),
        // Rules against the account.
        invalid(
            "a new stream that does not start with account_opened",
            "events[0].support_signal",
            request("newco", Expected::Any, vec![signal("c1", 1, 1)]),
        ),
        invalid("account opened twice", "events[0].account_opened", acme(vec![opened("Acme again", "li.wei")])),
        invalid(
            "account opened twice in one new stream",
            "events[1].account_opened",
            request("newco", Expected::NoStream, vec![opened("Newco", "li.wei"), opened("Newco", "li.wei")]),
        ),
        invalid(
            "signal about an unknown contact",
            "events[0].support_signal.contact_id",
            acme(vec![signal("c9", 1, 1)]),
        ),
        invalid(
            "signal about a contact who left",
            "events[0].support_signal.contact_id",
            acme(vec![signal("c3", 1, 1)]),
        ),
        invalid(
            "meeting with an unknown contact",
            "events[0].meeting_held.contact_ids[1]",
            acme(vec![meeting(&["li.wei"], &["c1", "c9"])]),
        ),
        invalid(
            "gift to an unknown contact",
            "events[0].gift_given.recipient_contact_id",
            acme(vec![gift("li.wei", "c9", 100, "EUR")]),
        ),
        invalid("contact added twice", "events[0].contact_added.contact_id", acme(vec![contact("c1", "IT", true)])),
        invalid(
            "contact referred to after leaving in the same batch",
            "events[1].support_signal.contact_id",
            acme(vec![contact_left("c2"), signal("c2", 1, 1)]),
        ),
        invalid("a contact who left leaves again", "events[0].contact_left.contact_id", acme(vec![contact_left("c3")])),
        invalid(
            "update of a contact who left",
            "events[0].contact_updated.contact_id",
            acme(vec![event(Body::ContactUpdated(pb::ContactUpdated {
                contact_id: "c3".into(),
                key: Some(true),
                ..Default::default()
            }))]),
        ),
        invalid(
            "owner change from someone who is not the owner",
            "events[0].owner_changed.from_owner",
            acme(vec![owner_changed("anna.berg", "sam.lee")]),
        ),
        invalid(
            "team member joins twice",
            "events[0].team_member_joined.member",
            acme(vec![joined("sam.lee", pb::TeamRole::Delivery)]),
        ),
        invalid(
            "someone not on the team leaves it",
            "events[0].team_member_left.member",
            acme(vec![left_team("ola.nord")]),
        ),
        invalid(
            "retraction of an unknown event",
            "events[0].event_retracted.event_id",
            acme(vec![retracted("00000000-0000-4000-8000-000000000000")]),
        ),
        invalid(
            "retraction of the account's opening",
            "events[0].event_retracted.event_id",
            acme(vec![retracted(opened_event_id)]),
        ),
        invalid(
            "retraction of another account's event",
            "events[0].event_retracted.event_id",
            acme(vec![retracted(other_account_event_id)]),
        ),
        invalid(
            "retraction of a retraction",
            "events[0].event_retracted.event_id",
            acme(vec![retracted(retraction_id)]),
        ),
        invalid(
            "retraction mixed with other events",
            "events[1]",
            acme(vec![retracted(other_account_event_id), signal("c1", 1, 1)]),
        ),
        invalid(
            "retraction id not a UUID",
            "events[0].event_retracted.event_id",
            acme(vec![retracted("yesterday's signal")]),
        ),
    ]
}

#[tokio::test]
async fn every_invalid_request_is_refused_naming_the_field_and_writes_nothing() {
    let server = TestServer::start().await;
    let mut ledger = server.ledger();
    let opening = opened("Acme", "li.wei");
    let retracted_signal = signal("c1", 1, 1);
    let setup = vec![
        opening.clone(),
        contact("c1", "IT", true),
        contact("c2", "Finance", true),
        contact("c3", "Operations", false),
        contact_left("c3"),
        joined("sam.lee", pb::TeamRole::Solution),
        retracted_signal.clone(),
    ];
    ledger.append(request("acme", Expected::NoStream, setup)).await.unwrap();
    let retraction = retracted(&retracted_signal.event_id);
    ledger.append(request("acme", Expected::Any, vec![retraction.clone()])).await.unwrap();
    let other = open_account(&mut ledger, "globex", "anna.berg").await;
    let other_event = read_all_with(&mut ledger, other.first_position, 1).await.remove(0).event.unwrap().event_id;
    let before = read_all(&mut ledger).await;
    let view_before = get_account(&mut server.accounts(), "acme").await;

    let cases = cases(&opening.event_id, &other_event, &retraction.event_id);
    assert!(cases.len() >= 50, "the table covers every rule ({} cases)", cases.len());
    let mut failures = Vec::new();
    for case in cases {
        let status = match ledger.append(case.request).await {
            Ok(response) => {
                failures.push(format!("{}: accepted ({:?})", case.name, response.into_inner()));
                continue;
            }
            Err(status) => status,
        };
        if status.code() != case.code {
            failures.push(format!(
                "{}: {:?} instead of {:?}: {}",
                case.name,
                status.code(),
                case.code,
                status.message()
            ));
            continue;
        }
        let field = status.get_details_bad_request().and_then(|b| b.field_violations.first().map(|v| v.field.clone()));
        if field.as_deref() != Some(case.field) || !status.message().starts_with(case.field) {
            failures.push(format!("{}: names {field:?} instead of {}: {}", case.name, case.field, status.message()));
        }
    }
    assert!(failures.is_empty(), "{} case(s) failed:\n{}", failures.len(), failures.join("\n"));
    assert_eq!(read_all(&mut ledger).await, before, "refused requests wrote nothing");
    assert_eq!(get_account(&mut server.accounts(), "acme").await, view_before);
    let newco =
        server.accounts().get_account(pb::GetAccountRequest { account_id: "newco".into(), ..Default::default() }).await;
    assert_eq!(newco.unwrap_err().code(), Code::NotFound);
}

#[tokio::test]
async fn a_request_over_the_size_limit_is_refused_before_decoding() {
    let config = rapport_server::ServerConfig { max_request_bytes: 64 * 1024, ..test_config() };
    let server = TestServer::start_with(config).await;
    let mut ledger = server.ledger();
    open_account(&mut ledger, "acme", "li.wei").await;
    let big: Vec<pb::Event> = (0..10)
        .map(|_| {
            body(meeting(&["li.wei"], &["c1"]), |b| {
                if let Body::MeetingHeld(m) = b {
                    m.notes = "n".repeat(10_000)
                }
            })
        })
        .collect();
    let status = ledger.append(acme(big)).await.unwrap_err();
    // tonic refuses an oversized message with OUT_OF_RANGE, naming the limit.
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    assert!(status.message().contains("65536"), "{}", status.message());
    assert_eq!(read_all(&mut ledger).await.len(), 3);
}

/// Bytes that are not an `AppendRequest` at all: the codec refuses them before any handler
/// runs, with INVALID_ARGUMENT (the sender's fault), not INTERNAL.
#[tokio::test]
async fn bytes_that_do_not_decode_are_invalid_argument_and_write_nothing() {
    use prost::Message;
    let server = TestServer::start().await;
    let mut ledger = server.ledger();
    open_account(&mut ledger, "acme", "li.wei").await;
    let before = read_all(&mut ledger).await;

    let valid = acme(vec![signal("c1", 1, 1)]).encode_to_vec();
    // An event whose actor is six bytes that are not UTF-8, in an otherwise valid request.
    let bad_actor = {
        let mut event = signal("c1", 1, 1);
        event.actor = "ACTORX".into();
        let mut bytes = acme(vec![event]).encode_to_vec();
        let at = bytes.windows(6).position(|w| w == b"ACTORX").expect("the actor's bytes");
        bytes[at..at + 6].copy_from_slice(&[0xff, 0xfe, 0xc3, 0x28, 0xa0, 0xa1]);
        bytes
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("random garbage", vec![0xde, 0xad, 0xbe, 0xef, 0x13, 0x37, 0xca, 0xfe, 0x00, 0xff]),
        ("a varint that never ends", vec![0x10; 1].into_iter().chain([0xff; 11]).collect()),
        ("a valid request cut short", valid[..valid.len() - 3].to_vec()),
        ("a length beyond the end of the message", vec![0x0a, 0x7f, b'a', b'c', b'm', b'e']),
        ("account_id (a string) sent as a varint", vec![0x08, 0x01]),
        ("account_id (a string) sent as a group", vec![0x0b, 0x0c]),
        ("account_id that is not UTF-8", vec![0x0a, 0x04, b'a', 0xc3, 0x28, b'e']),
        ("an event's actor that is not UTF-8", bad_actor),
        ("a field number 0", vec![0x02, 0x01, b'x']),
    ];
    let mut failures = Vec::new();
    for (name, bytes) in &cases {
        match raw_call(server.channel(), "/rapport.v1.Ledger/Append", false, bytes.clone(), None).await {
            Ok(_) => failures.push(format!("{name}: accepted")),
            Err(status) if status.code() != Code::InvalidArgument => {
                failures.push(format!("{name}: {:?} instead of InvalidArgument: {}", status.code(), status.message()))
            }
            Err(status) if !status.message().contains("not a valid protobuf encoding of AppendRequest") => {
                failures.push(format!("{name}: the message does not say what is wrong: {}", status.message()))
            }
            Err(_) => {}
        }
    }
    assert!(failures.is_empty(), "{} case(s) failed:\n{}", failures.len(), failures.join("\n"));
    // The untouched request decodes and is appended: the cases fail for their bytes alone.
    raw_call(server.channel(), "/rapport.v1.Ledger/Append", false, valid, None).await.unwrap();
    assert_eq!(read_all(&mut ledger).await.len(), before.len() + 1, "only the valid request wrote");
}

/// `Subscribe` is served on a route of its own (its events framed once for every subscriber);
/// its request is refused as every other method's is: bytes that are not a `SubscribeRequest`
/// are INVALID_ARGUMENT, and a valid one is answered.
#[tokio::test]
async fn a_subscribe_request_that_does_not_decode_is_invalid_argument() {
    use prost::Message;
    let server = TestServer::start().await;
    let path = "/rapport.v1.Ledger/Subscribe";
    for garbage in [vec![0xde, 0xad, 0xbe, 0xef, 0x13, 0x37], vec![0x08], vec![0x12, 0x7f, 0x01]] {
        let status = raw_call(server.channel(), path, true, garbage, None).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(status.message().contains("not a valid protobuf encoding of SubscribeRequest"), "{}", status.message());
    }
    let valid = pb::SubscribeRequest { from_position: 1, ..Default::default() }.encode_to_vec();
    raw_call(server.channel(), path, true, valid, None).await.expect("a valid request starts a subscription");
    server.stop().await;
}
