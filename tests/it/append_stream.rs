//! `Ledger.AppendStream`: many appends over one stream, each answered once durable, with what
//! unary `Append` would have answered; retries, refusals in the middle, and flow control.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use prost::Message;
use rapport_proto::v1 as pb;
use rapport_server::ServerConfig;
use tonic::Code;

use crate::support::*;

use pb::append_stream_response::Outcome;

fn numbered(requests: Vec<pb::AppendRequest>) -> Vec<pb::AppendStreamRequest> {
    requests
        .into_iter()
        .zip(1..)
        .map(|(request, correlation_id)| pb::AppendStreamRequest { correlation_id, request: Some(request) })
        .collect()
}

/// Sends `requests` over one stream and gathers every answer by correlation id, with the
/// order the answers came in.
async fn stream_all(ledger: &mut Ledger, requests: Vec<pb::AppendStreamRequest>) -> (BTreeMap<u64, Outcome>, Vec<u64>) {
    let sent = requests.len();
    let mut answers = ledger.append_stream(futures::stream::iter(requests)).await.unwrap().into_inner();
    let (mut outcomes, mut order) = (BTreeMap::new(), Vec::new());
    while let Some(answer) = answers.next().await {
        let answer = answer.expect("the stream itself does not fail");
        order.push(answer.correlation_id);
        let outcome = answer.outcome.expect("every answer says what became of its request");
        assert!(outcomes.insert(answer.correlation_id, outcome).is_none(), "one answer per request");
    }
    assert_eq!(outcomes.len(), sent, "every request is answered");
    (outcomes, order)
}

fn appended(outcome: &Outcome) -> &pb::AppendResponse {
    match outcome {
        Outcome::Appended(response) => response,
        Outcome::Error(status) => panic!("refused: {:?} {}", Code::from_i32(status.code), status.message),
    }
}

fn refused(outcome: &Outcome) -> &rapport_proto::rpc::Status {
    match outcome {
        Outcome::Error(status) => status,
        Outcome::Appended(response) => panic!("appended, not refused: {response:?}"),
    }
}

/// What a status says, its details decoded (so that maps compare as maps, in any order).
#[derive(Debug, PartialEq)]
struct Said {
    code: Code,
    message: String,
    details: Vec<Detail>,
}

#[derive(Debug, PartialEq)]
enum Detail {
    Info(tonic_types::pb::ErrorInfo),
    BadRequest(tonic_types::pb::BadRequest),
    Other(String),
}

fn said(status: &rapport_proto::rpc::Status) -> Said {
    let details = status
        .details
        .iter()
        .map(|any| match any.type_url.as_str() {
            "type.googleapis.com/google.rpc.ErrorInfo" => Detail::Info(Message::decode(&any.value[..]).unwrap()),
            "type.googleapis.com/google.rpc.BadRequest" => Detail::BadRequest(Message::decode(&any.value[..]).unwrap()),
            other => Detail::Other(other.to_owned()),
        })
        .collect();
    Said { code: Code::from_i32(status.code), message: status.message.clone(), details }
}

/// A unary status as the `google.rpc.Status` its details trailer carries.
fn said_unary(status: &tonic::Status) -> Said {
    let mut whole = rapport_proto::rpc::Status::decode(status.details()).unwrap_or_default();
    (whole.code, whole.message) = (status.code() as i32, status.message().to_owned());
    said(&whole)
}

#[tokio::test]
async fn requests_are_decided_in_the_order_sent_and_each_is_answered_once() {
    let server = TestServer::start().await;
    let mut ledger = server.ledger();
    // Each request expects exactly the version the one before leaves: a stream decided out of
    // order would refuse some of them. Two accounts interleave.
    let mut requests = vec![
        request("acme", Expected::NoStream, vec![opened("Acme", "li.wei"), contact("c1", "IT", true)]),
        request("globex", Expected::NoStream, vec![opened("Globex", "anna.berg"), contact("c1", "IT", true)]),
    ];
    for n in 0..60u64 {
        let account = if n % 2 == 0 { "acme" } else { "globex" };
        requests.push(request(account, Expected::Exact(2 + n / 2), vec![meeting(&["li.wei"], &["c1"])]));
    }
    let (outcomes, order) = stream_all(&mut ledger, numbered(requests.clone())).await;

    let mut order_sorted = order.clone();
    order_sorted.sort_unstable();
    assert_eq!(order_sorted, (1..=62).collect::<Vec<_>>(), "each correlation id once: {order:?}");
    let mut next_position = 1;
    let mut next_version: BTreeMap<&str, u64> = BTreeMap::new();
    for (id, sent) in (1..).zip(&requests) {
        let answer = appended(&outcomes[&id]);
        let events = sent.events.len() as u64;
        let version = next_version.entry(&sent.account_id).or_insert(1);
        assert_eq!((answer.first_version, answer.last_version), (*version, *version + events - 1), "request {id}");
        assert_eq!((answer.first_position, answer.last_position), (next_position, next_position + events - 1));
        assert!(!answer.duplicate);
        *version += events;
        next_position += events;
    }
    assert_eq!(read_all(&mut ledger).await.len() as u64, next_position - 1);
    assert_eq!(get_account(&mut server.accounts(), "acme").await.version, 32);
}

#[tokio::test]
async fn a_refused_request_in_the_middle_gets_appends_status_and_the_others_go_through() {
    let mut bodiless = meeting(&["li.wei"], &["c1"]);
    bodiless.body = None;
    let good = |day: i64| request("acme", Expected::Any, vec![on(day, meeting(&["li.wei"], &["c1"]))]);
    let opening = vec![opened("Acme", "li.wei"), contact("c1", "IT", true), contact("c2", "Finance", true)];
    let mut reused = meeting(&["li.wei"], &["c2"]);
    reused.event_id = opening[0].event_id.clone();
    let requests = vec![
        request("acme", Expected::NoStream, opening),
        good(10),
        request("acme", Expected::Any, vec![bodiless]),
        request("acme", Expected::Exact(1), vec![meeting(&["li.wei"], &["c1"])]),
        request("acme", Expected::Any, vec![reused]),
        good(11),
    ];
    let server = TestServer::start().await;
    let mut requests_with_ids = numbered(requests.clone());
    requests_with_ids.push(pb::AppendStreamRequest { correlation_id: 99, request: None });
    let (outcomes, _) = stream_all(&mut server.ledger(), requests_with_ids).await;

    // The same requests, one by one over unary Append, on a server of their own: each answer
    // over the stream is the one Append gives, refusals with their code, message and details.
    let unary_server = TestServer::start().await;
    let mut unary = unary_server.ledger();
    for (id, request) in (1..).zip(requests) {
        match (unary.append(request).await, &outcomes[&id]) {
            (Ok(expected), outcome) => assert_eq!(appended(outcome), &expected.into_inner(), "request {id}"),
            (Err(expected), outcome) => {
                let streamed = said(refused(outcome));
                assert_eq!(streamed, said_unary(&expected), "request {id}");
                assert!(!streamed.details.is_empty(), "request {id} carries its details");
            }
        }
    }
    let codes: Vec<Option<Code>> = (1..=6)
        .map(|id| match &outcomes[&id] {
            Outcome::Error(status) => Some(Code::from_i32(status.code)),
            Outcome::Appended(_) => None,
        })
        .collect();
    let refusals = [Some(Code::InvalidArgument), Some(Code::FailedPrecondition), Some(Code::AlreadyExists)];
    assert_eq!(codes, [&[None, None][..], &refusals, &[None]].concat());
    assert_eq!(appended(&outcomes[&6]).first_version, 5, "the requests after the refused ones are recorded");
    let missing = said(refused(&outcomes[&99]));
    assert_eq!(missing.code, Code::InvalidArgument);
    assert!(missing.message.contains("request"), "{}", missing.message);
    assert_eq!(read_stream(&mut server.ledger(), "acme").await.len(), 5, "the refused requests wrote nothing");
}

#[tokio::test]
async fn a_retry_over_a_new_stream_finds_what_the_first_recorded() {
    let server = TestServer::start().await;
    let mut ledger = server.ledger();
    let requests = numbered(vec![
        request("acme", Expected::NoStream, vec![opened("Acme", "li.wei"), contact("c1", "IT", true)]),
        request("acme", Expected::Exact(2), vec![meeting(&["li.wei"], &["c1"])]),
        request("globex", Expected::NoStream, vec![opened("Globex", "anna.berg")]),
    ]);
    let (first, _) = stream_all(&mut ledger, requests.clone()).await;
    // The client did not see the answers (say, the connection broke) and sends it all again
    // on a new stream, over a new connection.
    let mut again = server.ledger_on_own_connection().await;
    let (second, _) = stream_all(&mut again, requests).await;
    for id in 1..=3 {
        let (before, retried) = (appended(&first[&id]), appended(&second[&id]));
        assert!(retried.duplicate, "request {id} is found recorded");
        assert_eq!(
            (retried.first_version, retried.last_version, retried.first_position, retried.last_position),
            (before.first_version, before.last_version, before.first_position, before.last_position),
            "request {id}: the original versions and positions"
        );
    }
    assert_eq!(read_all(&mut ledger).await.len(), 4, "nothing written twice");
}

#[tokio::test]
async fn a_client_that_stops_reading_is_held_back_by_flow_control() {
    let window = 8;
    let server = TestServer::start_with(ServerConfig { append_stream_window: window, ..test_config() }).await;
    let mut ledger = server.ledger();
    open_account(&mut ledger, "acme", "li.wei").await;

    // An endless supply of requests, counted as the client's transport takes them; large
    // ones (12 KiB of notes each), so that the transport's windows fill with few of them.
    let long_meeting = || {
        let mut event = meeting(&["li.wei"], &["c1"]);
        if let Some(pb::event::Body::MeetingHeld(held)) = &mut event.body {
            held.notes = "Went through the roadmap line by line. ".repeat(12 * 1024 / 39);
        }
        event
    };
    // Endless until `last` says where it ends.
    let (taken, last) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(usize::MAX)));
    let (counter, end) = (Arc::clone(&taken), Arc::clone(&last));
    let supply = futures::stream::iter(1usize..)
        .take_while(move |n| std::future::ready(*n <= end.load(Ordering::Acquire)))
        .map(move |correlation_id| {
            counter.fetch_add(1, Ordering::AcqRel);
            let request = request("acme", Expected::Any, vec![long_meeting()]);
            pb::AppendStreamRequest { correlation_id: correlation_id as u64, request: Some(request) }
        });
    // On a connection of its own (the answers it leaves unread fill the connection's window
    // too, which would hold back every other call on it), with small receive windows, so
    // that the server soon has to hold its answers.
    let mut streaming = server.ledger_with_receive_window(4 * 1024).await;
    let mut answers = streaming.append_stream(supply).await.unwrap().into_inner();

    // Not reading: the sends stall once the windows on the way are full.
    let mut seen = taken.load(Ordering::Acquire);
    let stalled = loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = taken.load(Ordering::Acquire);
        if now == seen {
            break now;
        }
        assert!(now < 5_000, "the client was never held back: {now} requests taken");
        seen = now;
    };
    assert!(stalled > window, "the server read its window and more was buffered: {stalled}");
    let written = read_all(&mut server.ledger()).await.len();

    assert!(written - 3 <= stalled, "no more recorded than sent: {written}");

    // Reading again: sending resumes, 100 more requests go, and every request is answered and
    // recorded.
    last.store(stalled + 100, Ordering::Release);
    let mut answered = 0;
    while let Some(answer) = answers.next().await {
        appended(&answer.unwrap().outcome.unwrap());
        answered += 1;
    }
    let sent = taken.load(Ordering::Acquire);
    assert_eq!(sent, stalled + 100, "sending resumed once answers were read");
    assert_eq!(answered, sent);
    assert_eq!(read_all(&mut ledger).await.len(), 3 + sent);
}
