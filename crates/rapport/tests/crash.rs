//! Crash safety: the real `rapport serve` killed with SIGKILL at random moments while clients
//! append (single events and batches, several accounts, retries with the same event ids), then
//! restarted and checked after every cycle:
//! - every acknowledged event is present exactly once, at its acknowledged version and position;
//! - every request is whole or absent (all were acknowledged once retried, so: whole);
//! - positions are gap-free and every hash chain verifies;
//! - the served projection equals a fresh rebuild from the log.
//!
//! And erasures: `ForgetContact` calls under the same load, the server killed among them; after
//! each restart every contact is wholly forgotten (their erasure recorded, nothing of theirs
//! readable) or wholly readable (no erasure, everything readable), and every acknowledged
//! erasure is forgotten.
//!
//! It runs once per log engine (`--log-engine segments` and `sled`). CI runs
//! `RAPPORT_CRASH_CYCLES` cycles (default 3) of each; a soak runs more:
//! `RAPPORT_CRASH_CYCLES=200 cargo test --release -p rapport --test crash -- --nocapture`.

// A test: a failed unwrap is a failure with its message, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::Server;
use common::checks::{Acknowledged, channel, check, next, record};
use rapport_proto::v1 as pb;
use tokio::sync::Mutex;

const NOW: i64 = 1_767_225_600;
const CLIENTS: u64 = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_nothing_acknowledged_and_writes_nothing_twice_on_segments() {
    sigkill_loses_nothing_acknowledged_and_writes_nothing_twice("segments").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_nothing_acknowledged_and_writes_nothing_twice_on_sled() {
    sigkill_loses_nothing_acknowledged_and_writes_nothing_twice("sled").await;
}

async fn sigkill_loses_nothing_acknowledged_and_writes_nothing_twice(engine: &str) {
    let cycles: u64 = std::env::var("RAPPORT_CRASH_CYCLES").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let acknowledged = Arc::new(Mutex::new(Acknowledged::new()));
    // Each client's workload lives across cycles, so its accounts keep growing.
    let workloads: Vec<Arc<Mutex<rapport_demo::Workload>>> = (0..CLIENTS)
        .map(|c| Arc::new(Mutex::new(rapport_demo::Workload::new(c + 1, 10, NOW, &format!("crash{c}")))))
        .collect();
    let mut random = 0x9E37_79B9_7F4A_7C15_u64;
    let mut total_killed_in_flight = 0;

    for cycle in 0..cycles {
        let mut server = Server::start_on(&data, engine);
        let stop = Arc::new(AtomicBool::new(false));
        let mut clients = Vec::new();
        for (c, workload) in workloads.iter().enumerate() {
            let mut ledger = pb::ledger_client::LedgerClient::new(channel(&server).await);
            let (workload, acknowledged, stop) = (Arc::clone(workload), Arc::clone(&acknowledged), Arc::clone(&stop));
            let batch = if c % 2 == 0 { 1 } else { 20 };
            clients.push(tokio::spawn(async move {
                // Returns the request in flight when the server died: its outcome is unknown.
                while !stop.load(Ordering::Relaxed) {
                    let request = workload.lock().await.next_request(batch);
                    match ledger.append(request.clone()).await {
                        Ok(reply) => record(&mut *acknowledged.lock().await, &request, reply.get_ref()),
                        Err(_) => return Some(request),
                    }
                }
                None
            }));
        }
        tokio::time::sleep(Duration::from_millis(100 + next(&mut random) % 500)).await;
        server.child.kill().expect("SIGKILL");
        server.child.wait().expect("the killed server is reaped");
        stop.store(true, Ordering::Relaxed);
        let mut in_flight = Vec::new();
        for client in clients {
            in_flight.extend(client.await.expect("a client joins"));
        }
        total_killed_in_flight += in_flight.len();

        // Restart; every request whose outcome was unknown is retried with the same ids.
        let server = Server::start_on(&data, engine);
        let mut ledger = pb::ledger_client::LedgerClient::new(channel(&server).await);
        for request in &in_flight {
            let reply = ledger.append(request.clone()).await.expect("a retry after the restart is accepted");
            record(&mut *acknowledged.lock().await, request, reply.get_ref());
        }
        check(&server, &acknowledged.lock().await.clone(), cycle).await;
        drop(server);
    }
    let layout = std::fs::read_to_string(data.join("layout.toml")).unwrap();
    assert!(layout.contains(&format!("engine = \"{engine}\"")), "the log ran on {engine}: {layout}");
    println!("{engine}: {cycles} crash cycles, {total_killed_in_flight} requests in flight at a kill, all retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_erasures_leaves_each_contact_wholly_forgotten_or_wholly_readable_on_segments() {
    sigkill_during_erasures_leaves_each_contact_wholly_forgotten_or_wholly_readable("segments").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_erasures_leaves_each_contact_wholly_forgotten_or_wholly_readable_on_sled() {
    sigkill_during_erasures_leaves_each_contact_wholly_forgotten_or_wholly_readable("sled").await;
}

/// Contacts of the erasure account, each with its own marker in its name and a signal's evidence.
const PEOPLE: usize = 60;

fn marker(person: usize) -> String {
    format!("Marker-{person:03}-zq")
}

fn people() -> pb::AppendRequest {
    use pb::event::Body;
    let mut events = Vec::new();
    let mut number = 0u32;
    let mut event = |body: Body| {
        number += 1;
        pb::Event {
            event_id: format!("00000000-0000-4000-8000-{number:012}"),
            occurred_at: Some(rapport_proto::wkt::Timestamp { seconds: NOW - 86_400, nanos: 0 }),
            actor: "li.wei".into(),
            source: "crm".into(),
            body: Some(body),
            sealed: None,
        }
    };
    events.push(event(Body::AccountOpened(pb::AccountOpened {
        name: "Privacy Corp".into(),
        industry: String::new(),
        owner: "li.wei".into(),
    })));
    for person in 0..PEOPLE {
        events.push(event(Body::ContactAdded(pb::ContactAdded {
            contact_id: format!("p-{person}"),
            name: marker(person),
            title: String::new(),
            department: "IT".into(),
            role: pb::ContactRole::User as i32,
            key: false,
        })));
        events.push(event(Body::SupportSignal(pb::SupportSignal {
            contact_id: format!("p-{person}"),
            support: 1,
            intimacy: 2,
            evidence: format!("said so: {}", marker(person)),
        })));
    }
    pb::AppendRequest { account_id: "privacy".into(), expected: None, events }
}

async fn sigkill_during_erasures_leaves_each_contact_wholly_forgotten_or_wholly_readable(engine: &str) {
    let cycles: u64 = std::env::var("RAPPORT_CRASH_CYCLES").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start_on(&data, engine);
    pb::ledger_client::LedgerClient::new(channel(&server).await).append(people()).await.unwrap();
    drop(server);
    let mut acknowledged = std::collections::BTreeSet::new();
    let mut next_person = 0;
    let mut random = 0xD1B5_4A32_D192_ED03_u64;
    for cycle in 0..cycles {
        let mut server = Server::start_on(&data, engine);
        let stop = Arc::new(AtomicBool::new(false));
        // Load beside the erasures: appends to other accounts.
        let mut ledger = pb::ledger_client::LedgerClient::new(channel(&server).await);
        let load_stop = Arc::clone(&stop);
        let load = tokio::spawn(async move {
            let mut workload = rapport_demo::Workload::new(cycle + 7, 5, NOW, &format!("load{cycle}"));
            while !load_stop.load(Ordering::Relaxed) {
                if ledger.append(workload.next_request(5)).await.is_err() {
                    return;
                }
            }
        });
        let mut privacy = pb::privacy_client::PrivacyClient::new(channel(&server).await);
        let asked = Arc::new(Mutex::new(Vec::new()));
        let (eraser_asked, eraser_stop) = (Arc::clone(&asked), Arc::clone(&stop));
        let start = next_person;
        let eraser = tokio::spawn(async move {
            let mut person = start;
            while person < PEOPLE && !eraser_stop.load(Ordering::Relaxed) {
                let request = pb::ForgetContactRequest {
                    account_id: "privacy".into(),
                    contact_id: format!("p-{person}"),
                    reason: format!("DSR-{person}"),
                    requested_by: "dpo".into(),
                };
                let answered = privacy.forget_contact(request).await.is_ok();
                eraser_asked.lock().await.push((person, answered));
                person += 1;
                if !answered {
                    break;
                }
            }
        });
        tokio::time::sleep(Duration::from_millis(30 + next(&mut random) % 150)).await;
        server.child.kill().expect("SIGKILL");
        server.child.wait().expect("the killed server is reaped");
        stop.store(true, Ordering::Relaxed);
        let _ = tokio::join!(load, eraser);
        for &(person, answered) in asked.lock().await.iter() {
            next_person = next_person.max(person + 1);
            if answered {
                acknowledged.insert(person);
            }
        }

        let server = Server::start_on(&data, engine);
        let (forgotten, readable) = erasure_states(&server, cycle).await;
        for person in &acknowledged {
            assert!(forgotten.contains(person), "cycle {cycle}: the acknowledged erasure of p-{person} did not hold");
        }
        assert_eq!(forgotten.len() + readable.len(), PEOPLE, "cycle {cycle}: every contact is one or the other");
        println!(
            "{engine} cycle {}: {} forgotten ({} acknowledged), {} readable",
            cycle + 1,
            forgotten.len(),
            acknowledged.len(),
            readable.len()
        );
        drop(server);
    }
}

/// Which contacts are wholly forgotten and which wholly readable; panics on any contact that
/// is neither (half forgotten).
async fn erasure_states(
    server: &Server,
    cycle: u64,
) -> (std::collections::BTreeSet<usize>, std::collections::BTreeSet<usize>) {
    let channel = channel(server).await;
    let mut ledger = pb::ledger_client::LedgerClient::new(channel.clone());
    let mut stream = ledger
        .read_stream(pb::ReadStreamRequest { account_id: "privacy".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    let mut events = Vec::new();
    while let Some(event) = stream.message().await.unwrap() {
        events.push(event);
    }
    let verified = ledger.verify(pb::VerifyRequest::default()).await.unwrap().into_inner();
    assert!(verified.intact, "cycle {cycle}: {:?}", verified.first_break);
    let view = pb::accounts_client::AccountsClient::new(channel)
        .get_account(pb::GetAccountRequest { account_id: "privacy".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    let shown = format!("{events:?}{view:?}");
    let (mut forgotten, mut readable) = (std::collections::BTreeSet::new(), std::collections::BTreeSet::new());
    for person in 0..PEOPLE {
        let id = format!("p-{person}");
        let erased = events.iter().any(|e| {
            matches!(e.event.as_ref().and_then(|e| e.body.as_ref()),
                Some(pb::event::Body::ContactForgotten(f)) if f.contact_id == id)
        });
        let contact = view.contacts.iter().find(|c| c.contact_id == id).expect("every contact is in the view");
        let visible = shown.matches(&marker(person)).count();
        if erased && contact.forgotten && visible == 0 {
            forgotten.insert(person);
        } else if !erased && !contact.forgotten && visible >= 3 {
            // Their name in the view, their added event and their signal's evidence.
            readable.insert(person);
        } else {
            panic!(
                "cycle {cycle}: {id} is half forgotten: erasure recorded {erased}, shown forgotten {}, marker seen \
                 {visible} times",
                contact.forgotten
            );
        }
    }
    (forgotten, readable)
}
