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
