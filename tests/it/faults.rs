//! Disk full and I/O errors, injected by a storage wrapper behind the `EventLog` trait
//! ([`Hooked`]): the
//! client gets `RESOURCE_EXHAUSTED` or `UNAVAILABLE`, nothing is acknowledged that is not
//! durable, nothing unsynced is shown, and the service recovers when the fault clears.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use rapport_proto::v1 as pb;
use tonic::Code;

use crate::support::*;

#[tokio::test]
async fn a_full_or_failing_disk_acknowledges_nothing_and_the_service_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let server = HookedServer::start(dir.path()).await;
    let (faulty, channel) = (Arc::clone(&server.hooked), server.channel.clone());
    let mut ledger = pb::ledger_client::LedgerClient::new(channel.clone());
    let mut accounts = pb::accounts_client::AccountsClient::new(channel);
    open_account(&mut ledger, "acme", "alice").await;

    // The disk fills up at the sync: the append is not acknowledged, and not shown.
    faulty.fault.store(fault::SYNC_FULL, Ordering::SeqCst);
    let retry = request("acme", Expected::Exact(3), vec![signal("c1", 2, 3)]);
    let full = ledger.append(retry.clone()).await.unwrap_err();
    assert_eq!(full.code(), Code::ResourceExhausted);
    assert!(full.message().contains("retry with the same event ids"), "{}", full.message());
    assert_eq!(get_account(&mut accounts, "acme").await.version, 3, "nothing unsynced is shown");
    assert_eq!(read_stream(&mut ledger, "acme").await.len(), 3);
    // Other appends fail the same way while the disk is full.
    let other = ledger.append(request("globex", Expected::NoStream, vec![opened("Globex", "bob")])).await;
    assert_eq!(other.unwrap_err().code(), Code::ResourceExhausted);

    // An I/O error is UNAVAILABLE.
    faulty.fault.store(fault::SYNC_IO, Ordering::SeqCst);
    let io = ledger.append(request("acme", Expected::Any, vec![signal("c2", 1, 1)])).await.unwrap_err();
    assert_eq!(io.code(), Code::Unavailable);

    // A full disk at the append itself: nothing is written.
    faulty.fault.store(fault::APPEND_FULL, Ordering::SeqCst);
    let refused = ledger.append(request("initech", Expected::NoStream, vec![opened("Initech", "carol")])).await;
    assert_eq!(refused.unwrap_err().code(), Code::ResourceExhausted);

    // Space returns: the retry with the same ids is acknowledged where the event already was,
    // and new appends go on after it.
    faulty.fault.store(fault::NONE, Ordering::SeqCst);
    let reply = ledger.append(retry).await.expect("the retry is accepted once space returns").into_inner();
    assert_eq!((reply.first_version, reply.duplicate), (4, true));
    let after = ledger
        .append(request("initech", Expected::NoStream, vec![opened("Initech", "carol")]))
        .await
        .expect("new appends are accepted")
        .into_inner();
    assert_eq!(after.first_version, 1);
    let all = read_all(&mut ledger).await;
    assert_eq!(all.iter().map(|e| e.position).collect::<Vec<_>>(), (1..=all.len() as u64).collect::<Vec<_>>());
    assert!(ledger.verify(pb::VerifyRequest::default()).await.unwrap().into_inner().intact);
    assert_eq!(get_account(&mut accounts, "acme").await.contacts[0].support, 2, "the retried signal counts");

    drop((ledger, accounts));
    server.stop().await;
}
