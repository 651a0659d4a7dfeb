//! Many clients appending at once, to shared and to their own accounts.

use std::collections::{BTreeMap, HashMap};

use tonic::Code;

use crate::support::*;

const CLIENTS: usize = 16;
const APPENDS_PER_CLIENT: usize = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_are_gap_free_ordered_and_all_present() {
    let server = TestServer::start().await;
    let mut ledger = server.ledger();
    for shared in ["shared-0", "shared-1"] {
        open_account(&mut ledger, shared, "li.wei").await;
    }

    let mut clients = Vec::new();
    for client in 0..CLIENTS {
        let mut ledger = server.ledger();
        let mut accounts = server.accounts();
        clients.push(tokio::spawn(async move {
            let own = format!("own-{client}");
            open_account(&mut ledger, &own, "li.wei").await;
            let mut acknowledged = Vec::new(); // (account, first position, event ids)
            let mut conflicts = 0;
            for i in 0..APPENDS_PER_CLIENT {
                let account = match i % 3 {
                    0 => own.clone(),
                    1 => "shared-0".to_owned(),
                    _ => "shared-1".to_owned(),
                };
                let events: Vec<_> = (0..1 + i % 4).map(|_| signal("c1", 1, 2)).collect();
                let ids: Vec<String> = events.iter().map(|e| e.event_id.clone()).collect();
                // Optimistic concurrency on the shared accounts: read the version, expect it, retry on conflict.
                loop {
                    let expected = if account == own {
                        Expected::Any
                    } else {
                        Expected::Exact(get_account(&mut accounts, &account).await.version)
                    };
                    match ledger.append(request(&account, expected, events.clone())).await {
                        Ok(response) => {
                            let response = response.into_inner();
                            assert_eq!(response.last_position - response.first_position + 1, ids.len() as u64);
                            acknowledged.push((account.clone(), response.first_position, ids));
                            break;
                        }
                        Err(status) if status.code() == Code::FailedPrecondition => conflicts += 1,
                        Err(status) => panic!("append failed: {status:?}"),
                    }
                }
            }
            (acknowledged, conflicts)
        }));
    }
    let mut acknowledged = Vec::new();
    for client in clients {
        acknowledged.extend(client.await.unwrap().0);
    }

    let all = read_all(&mut ledger).await;
    let positions: Vec<u64> = all.iter().map(|e| e.position).collect();
    assert_eq!(positions, (1..=all.len() as u64).collect::<Vec<_>>(), "positions are gap-free");
    let mut versions: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for event in &all {
        versions.entry(&event.account_id).or_default().push(event.version);
    }
    assert_eq!(versions.len(), CLIENTS + 2);
    for (account, versions) in &versions {
        assert_eq!(*versions, (1..=versions.len() as u64).collect::<Vec<_>>(), "versions of {account} are 1..n");
    }
    let by_position: HashMap<u64, (&str, &str)> = all
        .iter()
        .map(|e| (e.position, (e.account_id.as_str(), e.event.as_ref().unwrap().event_id.as_str())))
        .collect();
    for (account, first_position, ids) in &acknowledged {
        for (offset, id) in ids.iter().enumerate() {
            let found = by_position.get(&(first_position + offset as u64));
            assert_eq!(
                found,
                Some(&(account.as_str(), id.as_str())),
                "acknowledged event {id} is where it was acknowledged"
            );
        }
    }
    let events: usize = acknowledged.iter().map(|(_, _, ids)| ids.len()).sum();
    assert_eq!(all.len(), 6 + CLIENTS * 3 + events, "nothing more, nothing less");
}

/// Requests that arrive while a sync runs form one group (ordered by hooks, not by time: each
/// is known to be in the writer's queue before the next is sent): each is decided against the
/// accounts as the ones before it leave them, they are written to the log together, a retry
/// or a retraction of a request of the same group sees it, and every outcome is the one the
/// requests would get one at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_group_decides_its_requests_in_order_and_writes_them_together() {
    use std::sync::Arc;
    use std::sync::atomic::Ordering;

    use rapport_proto::v1 as pb;

    // Every append that joins the writer's queue is counted, in queue order.
    let (queued, mut joined) = tokio::sync::watch::channel(0usize);
    let hook = Arc::new(queued);
    let config = rapport_server::ServerConfig {
        on_append_queued: Some(Arc::new(move || hook.send_modify(|n| *n += 1))),
        ..test_config()
    };
    let dir = tempfile::tempdir().unwrap();
    let server = HookedServer::start_with(dir.path(), config).await;
    let (hooked, channel) = (Arc::clone(&server.hooked), server.channel.clone());
    let mut ledger = pb::ledger_client::LedgerClient::new(channel.clone());
    open_account(&mut ledger, "acme", "li.wei").await; // versions 1..=3

    // A held sync keeps the writer busy while the requests below queue up behind it.
    hooked.fault.store(fault::HELD_SYNC, Ordering::SeqCst);
    let first = signal("c1", 1, 1);
    let second = signal("c2", 2, 3);
    let requests = vec![
        ("blocker", request("acme", Expected::Exact(3), vec![signal("c1", 0, 1)])), // v4, alone
        ("after the blocker", request("acme", Expected::Exact(4), vec![first.clone()])), // v5
        ("after a staged one", request("acme", Expected::Exact(5), vec![second.clone()])), // v6
        ("retry of a staged one", request("acme", Expected::Exact(4), vec![first.clone()])), // duplicate v5
        ("retraction of a staged one", request("acme", Expected::Any, vec![retracted(&second.event_id)])), // v7
        ("another account", request("globex", Expected::NoStream, vec![opened("Globex", "anna.berg")])), // v1
        ("a stale expectation", request("acme", Expected::Exact(5), vec![signal("c2", 0, 0)])), // refused
    ];
    let already = *joined.borrow();
    let mut held = hooked.syncs_held.subscribe();
    let mut sent = Vec::new();
    for (n, (name, request)) in requests.into_iter().enumerate() {
        let mut client = pb::ledger_client::LedgerClient::new(channel.clone());
        sent.push((name, tokio::spawn(async move { client.append(request).await })));
        // In this order: each request is in the queue before the next is sent.
        joined.wait_for(|count| *count > already + n).await.unwrap();
        if name == "blocker" {
            // The blocker is the writer's group of one, held in its sync: the rest queue behind it.
            held.wait_for(|syncs| *syncs >= 1).await.unwrap();
        }
    }
    hooked.release();
    let mut outcomes = BTreeMap::new();
    for (name, task) in sent {
        outcomes.insert(name, task.await.unwrap().map(|r| r.into_inner()));
    }
    hooked.fault.store(fault::NONE, Ordering::SeqCst);
    let at = |name: &str| outcomes[name].as_ref().map(|r| (r.first_version, r.first_position, r.duplicate)).ok();
    assert_eq!(at("blocker"), Some((4, 4, false)));
    assert_eq!(at("after the blocker"), Some((5, 5, false)));
    assert_eq!(at("after a staged one"), Some((6, 6, false)), "decided against the staged request before it");
    assert_eq!(at("retry of a staged one"), Some((5, 5, true)), "the retry finds the staged request written");
    assert_eq!(at("retraction of a staged one"), Some((7, 7, false)), "the retraction finds its target");
    assert_eq!(at("another account"), Some((1, 8, false)));
    let stale = outcomes["a stale expectation"].as_ref().unwrap_err();
    assert_eq!(stale.code(), Code::FailedPrecondition);
    assert!(stale.message().contains("is at version 7"), "{}", stale.message());
    // Several requests went to the log in one write.
    let writes = hooked.writes.lock().unwrap().clone();
    assert!(writes.iter().any(|&batches| batches >= 2), "append_all calls: {writes:?}");

    let log = read_all(&mut ledger).await;
    assert_eq!(log.iter().map(|e| e.position).collect::<Vec<_>>(), (1..=8).collect::<Vec<_>>());
    let verified = ledger.verify(pb::VerifyRequest::default()).await.unwrap().into_inner();
    assert!(verified.intact && verified.events_checked == 8, "{verified:?}");
    let acme = get_account(&mut pb::accounts_client::AccountsClient::new(channel.clone()), "acme").await;
    assert_eq!((acme.version, acme.retracted_events), (7, 1));
    drop((ledger, channel));
    server.stop().await;
}
