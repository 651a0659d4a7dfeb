//! Several servers over one log, as the nodes of a replicated log are (`SharedLog`: a shared
//! `MemoryLog`, which tells every server of every write): each folds what the others append,
//! reads wait for a `min_position`, races between the servers are settled by the log and the
//! loser is decided again, and retries through another server find the original.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rapport_proto::v1 as pb;
use tonic::Code;
use tonic_types::StatusExt;

use crate::support::*;

/// The account as `node` shows it once it has read the log up to `min_position`.
async fn account_at(node: &TestServer, account_id: &str, min_position: u64) -> Result<pb::AccountView, tonic::Status> {
    let request = pb::GetAccountRequest { account_id: account_id.into(), min_position, ..Default::default() };
    node.accounts().get_account(request).await.map(|r| r.into_inner())
}

/// The whole log as `node` shows it once it has read it up to `min_position`.
async fn log_at(node: &TestServer, min_position: u64) -> Vec<pb::RecordedEvent> {
    let request = pb::ReadAllRequest { min_position, ..Default::default() };
    let mut stream = node.ledger().read_all(request).await.expect("ReadAll starts").into_inner();
    let mut events = Vec::new();
    while let Some(event) = stream.message().await.expect("ReadAll streams") {
        events.push(event);
    }
    events
}

/// Fails naming an event id the log holds twice.
fn assert_each_id_once(log: &[pb::RecordedEvent]) {
    let mut ids = BTreeSet::new();
    for event in log {
        let id = &event.event.as_ref().unwrap().event_id;
        assert!(ids.insert(id), "event {id} is in the log twice (again at position {})", event.position);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_through_one_node_is_read_through_the_other_from_its_position_on() {
    let shared = SharedLog::new();
    let a = shared.node().await;
    let b = shared
        .node_with(rapport_server::ServerConfig { max_read_wait: Duration::from_millis(300), ..shared.config() })
        .await;
    let mut ledger = a.ledger();
    open_account(&mut ledger, "acme", "li.wei").await; // positions 1..=3
    let visit = meeting(&["li.wei"], &["c1"]);
    let events = vec![signal("c1", 2, 3), visit.clone()];
    ledger.append(request("acme", Expected::Exact(3), events)).await.unwrap(); // 4, 5
    let retraction = request("acme", Expected::Exact(5), vec![retracted(&visit.event_id)]);
    let last = ledger.append(retraction).await.unwrap().into_inner().last_position;
    assert_eq!(last, 6);

    // B shows the account exactly as A does: the retraction's replay included.
    let through_b = account_at(&b, "acme", last).await.expect("B reads up to position 6");
    assert_eq!((through_b.version, through_b.retracted_events), (6, 1), "{through_b:?}");
    assert_eq!(through_b, account_at(&a, "acme", 0).await.unwrap(), "both nodes fold the log alike");
    let stream = read_stream_with(
        &mut b.ledger(),
        pb::ReadStreamRequest { account_id: "acme".into(), min_position: last, ..Default::default() },
    )
    .await
    .unwrap();
    let marks: Vec<(u64, u64)> = stream.iter().map(|e| (e.version, e.retracted_by)).collect();
    assert_eq!(marks, [(1, 0), (2, 0), (3, 0), (4, 0), (5, 6), (6, 0)]);

    // A position beyond the log: B waits its longest wait, then says how far it has read.
    let status = account_at(&b, "acme", last + 10).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("up to position 6, 10 short of position 16"), "{}", status.message());

    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_exact_version_through_two_nodes_lets_exactly_one_append_through() {
    let shared = SharedLog::new();
    let a = shared.node().await;
    let (b, hooked) = shared.hooked_node().await;
    open_account(&mut a.ledger(), "acme", "li.wei").await; // versions 1..=3

    // B decides its append against version 3 and is held before it writes; A appends at
    // version 3 meanwhile. The log refuses B's batch, and B, decided again against the log
    // as it now stands, refuses the request as any stale expectation is refused.
    hooked.fault.store(fault::HELD_APPEND, Ordering::SeqCst);
    let mut held = hooked.appends_held.subscribe();
    let mut b_ledger = b.ledger();
    let through_b =
        tokio::spawn(
            async move { b_ledger.append(request("acme", Expected::Exact(3), vec![signal("c2", -1, 1)])).await },
        );
    held.wait_for(|appends| *appends >= 1).await.unwrap();
    let a_signal = signal("c1", 1, 2);
    let through_a = a.ledger().append(request("acme", Expected::Exact(3), vec![a_signal.clone()])).await.unwrap();
    let through_a = through_a.into_inner();
    assert_eq!((through_a.first_version, through_a.first_position), (4, 4));
    hooked.release();
    let status = through_b.await.unwrap().unwrap_err();
    hooked.fault.store(fault::NONE, Ordering::SeqCst);
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(status.message().contains("is at version 4, but the request expected version 3"), "{}", status.message());
    let info = status.get_details_error_info().expect("ErrorInfo details");
    assert_eq!(info.metadata.get("current_version").map(String::as_str), Some("4"));
    assert_eq!(*hooked.writes.lock().unwrap(), [1], "B wrote once, and the log refused it");

    // Unordered races, many: each time exactly one of the two appends goes through.
    let mut version = 4;
    for race in 0..20 {
        let (mut to_a, mut to_b) = (a.ledger(), b.ledger());
        let (from_a, from_b) = tokio::join!(
            to_a.append(request("acme", Expected::Exact(version), vec![signal("c1", 1, 1)])),
            to_b.append(request("acme", Expected::Exact(version), vec![signal("c2", 1, 1)])),
        );
        let (won, lost) = match (from_a, from_b) {
            (Ok(won), Err(lost)) | (Err(lost), Ok(won)) => (won.into_inner(), lost),
            outcomes => panic!("race {race} at version {version}: not exactly one success: {outcomes:?}"),
        };
        assert_eq!(won.first_version, version + 1, "race {race}");
        assert_eq!(lost.code(), Code::FailedPrecondition, "race {race}: {lost:?}");
        assert!(lost.message().contains(&format!("is at version {}", version + 1)), "{}", lost.message());
        version += 1;
    }

    // Nothing was written twice, and both nodes show the same log.
    let through_a = log_at(&a, version).await;
    assert_eq!(through_a.len() as u64, version);
    assert_eq!(through_a.iter().map(|e| e.version).collect::<Vec<_>>(), (1..=version).collect::<Vec<_>>());
    assert_eq!(through_a[3].event.as_ref().unwrap().event_id, a_signal.event_id, "A's append won the first race");
    assert_each_id_once(&through_a);
    assert_eq!(log_at(&b, version).await, through_a);
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn appends_without_an_exact_version_through_two_nodes_all_go_through_without_gaps() {
    const CLIENTS_PER_NODE: usize = 2;
    const APPENDS_PER_CLIENT: usize = 40;
    let shared = SharedLog::new();
    let a = shared.node().await;
    let (b, hooked) = shared.hooked_node().await;
    open_account(&mut a.ledger(), "shared", "li.wei").await; // versions 1..=3

    // B decides an append against version 3 and is held before it writes; A appends meanwhile.
    // The log refuses B's batch (it was for version 3), and B decides it again, against version
    // 4, and writes it.
    hooked.fault.store(fault::HELD_APPEND, Ordering::SeqCst);
    let mut held = hooked.appends_held.subscribe();
    let mut b_ledger = b.ledger();
    let through_b =
        tokio::spawn(async move { b_ledger.append(request("shared", Expected::Any, vec![signal("c2", 1, 1)])).await });
    held.wait_for(|appends| *appends >= 1).await.unwrap();
    let through_a = a.ledger().append(request("shared", Expected::Any, vec![signal("c1", 1, 1)])).await.unwrap();
    assert_eq!((through_a.get_ref().first_version, through_a.get_ref().first_position), (4, 4));
    hooked.release();
    let through_b = through_b.await.unwrap().expect("B's append goes through").into_inner();
    hooked.fault.store(fault::NONE, Ordering::SeqCst);
    assert_eq!((through_b.first_version, through_b.first_position, through_b.duplicate), (5, 5, false));
    assert_eq!(*hooked.writes.lock().unwrap(), [1, 1], "B wrote twice: refused, then decided again");

    // Then both at once, many times, with several clients each.
    let nodes = [a, b];
    let mut clients = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        for client in 0..CLIENTS_PER_NODE {
            let mut ledger = node.ledger();
            clients.push(tokio::spawn(async move {
                let mut acknowledged = Vec::new(); // (first position, first version, event ids)
                for i in 0..APPENDS_PER_CLIENT {
                    let events: Vec<_> = (0..1 + i % 2).map(|_| signal("c1", 1, 2)).collect();
                    let ids: Vec<String> = events.iter().map(|e| e.event_id.clone()).collect();
                    // Half with `any`, half with no expectation at all (which means `any`).
                    let mut append = request("shared", Expected::Any, events);
                    if (n + client + i) % 2 == 0 {
                        append.expected = None;
                    }
                    let reply = ledger.append(append).await.unwrap_or_else(|status| {
                        panic!("node {n}, client {client}, append {i}: {status:?}");
                    });
                    let reply = reply.into_inner();
                    assert_eq!(reply.last_position - reply.first_position + 1, ids.len() as u64);
                    assert!(!reply.duplicate);
                    acknowledged.push((reply.first_position, reply.first_version, ids));
                }
                acknowledged
            }));
        }
    }
    let mut acknowledged = Vec::new();
    for client in clients {
        acknowledged.extend(client.await.unwrap());
    }
    let appended: usize = acknowledged.iter().map(|(_, _, ids)| ids.len()).sum();
    let end = 5 + appended as u64;

    for node in &nodes {
        let log = log_at(node, end).await;
        assert_eq!(log.iter().map(|e| e.position).collect::<Vec<_>>(), (1..=end).collect::<Vec<_>>());
        assert_eq!(log.iter().map(|e| e.version).collect::<Vec<_>>(), (1..=end).collect::<Vec<_>>());
        assert_each_id_once(&log);
        for (first_position, first_version, ids) in &acknowledged {
            for (offset, id) in ids.iter().enumerate() {
                let event = &log[(first_position - 1) as usize + offset];
                assert_eq!(event.event.as_ref().unwrap().event_id, *id, "acknowledged at {first_position}");
                assert_eq!(event.version, first_version + offset as u64);
            }
        }
        assert_eq!(account_at(node, "shared", end).await.unwrap().version, end);
    }
    // Each node's projection holds the other's appends as its own: the same digest.
    let mut digests = Vec::new();
    for node in &nodes {
        let listed = node.projections().list_rule_sets(pb::ListRuleSetsRequest {}).await.unwrap().into_inner();
        let active = listed.rule_sets.into_iter().find(|r| r.active).expect("an active rule set");
        digests.push((active.position, active.digest));
    }
    assert_eq!(digests[0], digests[1]);
    assert_eq!(digests[0].0, end);
    for node in nodes {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_through_another_node_gets_the_original_outcome() {
    let shared = SharedLog::new();
    let a = shared.node().await;
    let (b, hooked) = shared.hooked_node().await;
    open_account(&mut a.ledger(), "acme", "li.wei").await; // positions 1..=3

    // Recorded through A, retried through B later.
    let first = request("acme", Expected::Exact(3), vec![signal("c1", 2, 3), meeting(&["li.wei"], &["c1"])]);
    let original = a.ledger().append(first.clone()).await.unwrap().into_inner();
    assert_eq!((original.first_version, original.first_position, original.duplicate), (4, 4, false));
    let retry = b.ledger().append(first).await.unwrap().into_inner();
    assert_eq!(retry, pb::AppendResponse { duplicate: true, ..original }, "the original outcome");

    // Retried through B while A records it: B decided it before A's copy was in the log, the log
    // refuses B's batch, and B, decided again, finds A's copy.
    let second = request("acme", Expected::Any, vec![signal("c2", 1, 1)]);
    hooked.fault.store(fault::HELD_APPEND, Ordering::SeqCst);
    let mut held = hooked.appends_held.subscribe();
    let mut b_ledger = b.ledger();
    let retried = second.clone();
    let through_b = tokio::spawn(async move { b_ledger.append(retried).await });
    held.wait_for(|appends| *appends >= 1).await.unwrap();
    let original = a.ledger().append(second).await.unwrap().into_inner();
    assert_eq!((original.first_version, original.first_position), (6, 6));
    hooked.release();
    let retry = through_b.await.unwrap().expect("the retry succeeds").into_inner();
    hooked.fault.store(fault::NONE, Ordering::SeqCst);
    assert_eq!(retry, pb::AppendResponse { duplicate: true, ..original });

    let log = log_at(&b, 6).await;
    assert_eq!(log.len(), 6, "nothing written twice");
    assert_each_id_once(&log);
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_nodes_appends_reach_subscribers_and_reads_with_no_request_to_this_nodes_writer() {
    let shared = SharedLog::new();
    let a = shared.node().await;
    let b = shared.node().await;
    let mut subscription = b
        .ledger_on_own_connection()
        .await
        .subscribe(pb::SubscribeRequest { from_position: 1, ..Default::default() })
        .await
        .unwrap()
        .into_inner();

    // Appends through A only: B learns of them from the log's notification alone.
    let mut ledger = a.ledger();
    open_account(&mut ledger, "acme", "li.wei").await;
    open_account(&mut ledger, "globex", "anna.berg").await;
    ledger.append(request("acme", Expected::Exact(3), vec![signal("c1", 2, 4)])).await.unwrap();
    let expected = log_at(&a, 0).await;
    assert_eq!(expected.len(), 7);

    let mut received = Vec::new();
    while received.len() < expected.len() {
        let message = tokio::time::timeout(Duration::from_secs(30), subscription.message())
            .await
            .expect("B's subscription delivers A's events")
            .unwrap()
            .expect("the subscription goes on");
        if let Some(pb::subscribe_response::Kind::Event(event)) = message.kind {
            received.push(event);
        }
    }
    assert_eq!(received, expected, "B's subscribers get A's events, as A shows them");
    // Everything B sent is durable on B and folded: reads without a min_position show it.
    assert_eq!(log_at(&b, 0).await, expected);
    assert_eq!(get_account(&mut b.accounts(), "acme").await, get_account(&mut a.accounts(), "acme").await);
    let verified = b.ledger().verify(pb::VerifyRequest::default()).await.unwrap().into_inner();
    assert!(verified.intact && verified.events_checked == 7, "{verified:?}");
    let digest = |node: &TestServer| {
        let mut ledger = node.ledger();
        async move { ledger.digest(pb::DigestRequest::default()).await.unwrap().into_inner() }
    };
    assert_eq!(digest(&b).await, digest(&a).await);
    a.stop().await;
    b.stop().await;
}
