//! Subscriptions: catch-up then live with no gap and no duplicate, from any position, across a
//! disconnect and resume; filters with checkpoints that still come when nothing matches;
//! heartbeats; what later subscribers are shown of an event retracted after others were sent
//! it; and the reasons the server gives when it ends a subscription.

use std::time::Duration;

use rapport_demo::Workload;
use rapport_proto::v1 as pb;
use tonic::{Code, Streaming};

use crate::support::*;

type Subscription = Streaming<pb::SubscribeResponse>;

async fn subscribe(server: &TestServer, request: pb::SubscribeRequest) -> Subscription {
    let mut ledger = server.ledger_on_own_connection().await;
    ledger.subscribe(request).await.expect("the subscription starts").into_inner()
}

fn from(position: u64) -> pb::SubscribeRequest {
    pb::SubscribeRequest { from_position: position, checkpoint_interval_ms: 50, ..Default::default() }
}

/// What a subscriber received, until it saw the event at `last` or `give_up` passed.
#[derive(Default)]
struct Received {
    events: Vec<pb::RecordedEvent>,
    checkpoints: Vec<pb::SubscriptionCheckpoint>,
    heartbeats: usize,
}

async fn receive_until(subscription: &mut Subscription, received: &mut Received, done: impl Fn(&Received) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while !done(received) {
        let message = tokio::time::timeout_at(deadline, subscription.message())
            .await
            .expect("the subscription keeps delivering")
            .expect("the subscription does not fail")
            .expect("the subscription does not end");
        match message.kind.expect("every message has a kind") {
            pb::subscribe_response::Kind::Event(event) => received.events.push(event),
            pb::subscribe_response::Kind::Checkpoint(checkpoint) => received.checkpoints.push(checkpoint),
            pb::subscribe_response::Kind::Heartbeat(_) => received.heartbeats += 1,
        }
    }
}

fn positions(events: &[pb::RecordedEvent]) -> Vec<u64> {
    events.iter().map(|e| e.position).collect()
}

async fn durable_end(server: &TestServer) -> u64 {
    server.ledger().digest(pb::DigestRequest::default()).await.unwrap().into_inner().position
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_from_any_position_get_exactly_the_log_after_it() {
    let server = TestServer::start().await;
    let mut from_start = subscribe(&server, from(0)).await;
    let mut resuming = subscribe(&server, from(0)).await;

    // Several writers, 20k+ events in all.
    let writers: Vec<_> = (0..4u64)
        .map(|w| {
            let mut ledger = server.ledger();
            let mut workload = Workload::new(w + 1, 25, NOW_SECONDS, &format!("sub{w}"));
            tokio::spawn(async move {
                let mut sent = 0;
                while sent < 5_100 {
                    let request = workload.next_request(20);
                    sent += request.events.len();
                    ledger.append(request).await.expect("appends succeed");
                }
            })
        })
        .collect();

    // A subscriber from the middle, one from the end, started while the writers run.
    let mut received = Received::default();
    receive_until(&mut from_start, &mut received, |r| r.events.len() >= 8_000).await;
    let middle = received.events.len() as u64 / 2;
    let mut from_middle = subscribe(&server, from(middle)).await;
    let end = durable_end(&server).await + 1;
    let mut from_end = subscribe(&server, from(end)).await;

    // One subscriber goes away after a while and resumes from its last checkpoint: what it
    // committed is what the checkpoint covers.
    let mut first_try = Received::default();
    receive_until(&mut resuming, &mut first_try, |r| r.events.len() >= 3_000 && !r.checkpoints.is_empty()).await;
    drop(resuming);
    let committed_to = first_try.checkpoints.last().unwrap().position;
    let mut committed: Vec<pb::RecordedEvent> =
        first_try.events.into_iter().filter(|e| e.position <= committed_to).collect();
    let mut resumed = subscribe(&server, from(committed_to + 1)).await;

    for writer in writers {
        writer.await.expect("a writer joins");
    }
    let last = durable_end(&server).await;
    assert!(last >= 20_000, "{last} events");
    let reached = |r: &Received| r.events.last().is_some_and(|e| e.position >= last);
    receive_until(&mut from_start, &mut received, reached).await;
    let mut middle_received = Received::default();
    receive_until(&mut from_middle, &mut middle_received, reached).await;
    let mut end_received = Received::default();
    receive_until(&mut from_end, &mut end_received, reached).await;
    let mut resumed_received = Received::default();
    receive_until(&mut resumed, &mut resumed_received, reached).await;
    committed.extend(resumed_received.events);

    let all = read_all(&mut server.ledger()).await;
    assert_eq!(positions(&all), (1..=last).collect::<Vec<_>>());
    assert_eq!(received.events, all, "from 0: every event, in order, byte for byte");
    assert_eq!(positions(&middle_received.events), (middle..=last).collect::<Vec<_>>());
    assert_eq!(positions(&end_received.events), (end..=last).collect::<Vec<_>>());
    assert_eq!(positions(&committed), (1..=last).collect::<Vec<_>>(), "resumed: no gap, no duplicate");
    // Checkpoints never run ahead of what was delivered, and carry the head for the lag.
    for checkpoint in &received.checkpoints {
        assert!(checkpoint.position <= checkpoint.head && checkpoint.head <= last, "{checkpoint:?}");
    }
    server.stop().await;
}

#[tokio::test]
async fn filters_checkpoints_and_heartbeats() {
    let server = TestServer::start().await;
    let mut ledger = server.ledger();
    let only = |filter: pb::SubscribeFilter| pb::SubscribeRequest {
        filter: Some(filter),
        checkpoint_interval_ms: 20,
        heartbeat_interval_ms: 100,
        ..Default::default()
    };
    let mut gifts_of_acme = subscribe(
        &server,
        only(pb::SubscribeFilter {
            event_types: vec!["gift_given".into()],
            account_id_prefix: "acme".into(),
            ..Default::default()
        }),
    )
    .await;
    let mut nothing =
        subscribe(&server, only(pb::SubscribeFilter { account_ids: vec!["nobody".into()], ..Default::default() }))
            .await;

    open_account(&mut ledger, "acme", "alice").await;
    open_account(&mut ledger, "acme-uk", "bob").await;
    open_account(&mut ledger, "globex", "carol").await;
    let gift_events = [("acme", "c1"), ("globex", "c1"), ("acme-uk", "c2")];
    for (account, contact) in gift_events {
        let events = vec![gift("alice", contact, 5_000, "EUR"), meeting(&["alice"], &[contact])];
        ledger.append(request(account, Expected::Any, events)).await.unwrap();
    }
    let last = durable_end(&server).await;

    let mut gifts = Received::default();
    receive_until(&mut gifts_of_acme, &mut gifts, |r| r.checkpoints.last().is_some_and(|c| c.position >= last)).await;
    let seen: Vec<(String, String)> = gifts
        .events
        .iter()
        .map(|e| (e.account_id.clone(), e.event.as_ref().map(kind_name).unwrap_or_default()))
        .collect();
    assert_eq!(
        seen,
        vec![("acme".to_owned(), "gift_given".to_owned()), ("acme-uk".to_owned(), "gift_given".to_owned())]
    );

    // Nothing matches, yet checkpoints move with the log, and heartbeats come when it is idle.
    let mut idle = Received::default();
    receive_until(&mut nothing, &mut idle, |r| {
        r.checkpoints.last().is_some_and(|c| c.position >= last) && r.heartbeats >= 2
    })
    .await;
    assert!(idle.events.is_empty());

    let bad = server
        .ledger()
        .subscribe(only(pb::SubscribeFilter { event_types: vec!["meeting".into()], ..Default::default() }))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(
        bad.message().contains("filter.event_types[0]") && bad.message().contains("meeting_held"),
        "{}",
        bad.message()
    );
    server.stop().await;
}

/// Subscriptions share the events they send, rendered once; a retraction after they were
/// rendered must still reach what later subscribers are shown of the event it retracts.
#[tokio::test]
async fn a_later_subscriber_sees_a_retraction_made_after_others_were_sent_the_event() {
    let server = TestServer::start().await;
    let mut ledger = server.ledger();
    let mut live = subscribe(&server, from(1)).await;
    open_account(&mut ledger, "acme", "alice").await;
    let visit = meeting(&["alice"], &["c1"]);
    let visit_id = visit.event_id.clone();
    ledger.append(request("acme", Expected::Any, vec![visit])).await.unwrap();
    let visit_at = durable_end(&server).await;
    let mut before = Received::default();
    receive_until(&mut live, &mut before, |r| r.events.last().is_some_and(|e| e.position == visit_at)).await;
    assert_eq!(before.events.last().map(|e| e.retracted_by), Some(0), "not retracted yet");

    let correction = ledger.append(request("acme", Expected::Any, vec![retracted(&visit_id)])).await.unwrap();
    let correction_version = correction.into_inner().last_version;
    let stream = read_stream(&mut ledger, "acme").await;
    let in_stream = stream.iter().find(|e| e.position == visit_at).map(|e| e.retracted_by);
    assert_eq!(in_stream, Some(correction_version), "ReadStream shows the correction's version");

    // Two subscribers from the start, one after the other: both are shown the retraction.
    for _ in 0..2 {
        let mut later = subscribe(&server, from(1)).await;
        let mut seen = Received::default();
        receive_until(&mut later, &mut seen, |r| r.events.iter().any(|e| e.position == visit_at)).await;
        let shown = seen.events.iter().find(|e| e.position == visit_at).map(|e| e.retracted_by);
        assert_eq!(shown, Some(correction_version));
    }
    // The live subscriber goes on with the correction itself.
    let mut after = Received::default();
    receive_until(&mut live, &mut after, |r| !r.events.is_empty()).await;
    assert_eq!(after.events[0].position, visit_at + 1);
    server.stop().await;
}

fn kind_name(event: &pb::Event) -> String {
    match event.body {
        Some(pb::event::Body::GiftGiven(_)) => "gift_given".into(),
        Some(pb::event::Body::MeetingHeld(_)) => "meeting_held".into(),
        _ => "other".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_subscriber_blocks_nobody_and_is_told_why_it_was_ended() {
    let stall = Duration::from_secs(1);
    let config = rapport_server::ServerConfig { subscriber_stall_timeout: stall, ..test_config() };
    let server = TestServer::start_with(config).await;
    // One subscriber subscribes and then does not read; another reads all along.
    let mut stalled = subscribe(&server, from(0)).await;
    let mut reader = subscribe(&server, from(0)).await;
    let reading = tokio::spawn(async move {
        let mut received = Received::default();
        receive_until(&mut reader, &mut received, |r| r.events.len() >= 6_000).await;
        (reader, received)
    });
    generate(&server, "slow", 2, 20, 6_000, 50).await;
    let last = durable_end(&server).await;
    let (mut reader, mut received) = reading.await.expect("the reader joins");
    receive_until(&mut reader, &mut received, |r| r.events.last().is_some_and(|e| e.position >= last)).await;
    assert_eq!(positions(&received.events), (1..=last).collect::<Vec<_>>(), "the other subscriber is not held up");

    tokio::time::sleep(stall * 2).await;
    let mut delivered = 0u64;
    let ended = loop {
        match stalled.message().await {
            Ok(Some(message)) => {
                if let Some(pb::subscribe_response::Kind::Event(event)) = message.kind {
                    delivered += 1;
                    assert_eq!(event.position, delivered, "what was buffered arrives in order");
                }
            }
            Ok(None) => panic!("the stream ended without saying why"),
            Err(status) => break status,
        }
    };
    assert_eq!(ended.code(), Code::ResourceExhausted);
    assert!(
        ended.message().contains("did not read") && ended.message().contains("subscribe again"),
        "{}",
        ended.message()
    );
    assert!(delivered < last, "it was ended before the end of the log");

    // Shutting down ends live subscriptions with a reason, instead of hanging the shutdown.
    let stop = tokio::spawn(server.stop());
    let ended = loop {
        match reader.message().await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the stream ended without saying why"),
            Err(status) => break status,
        }
    };
    assert_eq!(ended.code(), Code::Unavailable);
    assert!(ended.message().contains("shutting down"), "{}", ended.message());
    tokio::time::timeout(Duration::from_secs(10), stop).await.expect("the server stops").unwrap();
}
