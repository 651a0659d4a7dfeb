//! State survives a restart of the server on the same data directory.

use crate::support::*;

#[tokio::test]
async fn the_log_and_the_accounts_survive_a_restart_and_appends_continue() {
    let server = TestServer::start().await;
    let mut ledger = server.ledger();
    open_account(&mut ledger, "acme", "li.wei").await;
    open_account(&mut ledger, "globex", "anna.berg").await;
    ledger
        .append(request("acme", Expected::Exact(3), vec![signal("c1", 2, 3), owner_changed("li.wei", "sam.lee")]))
        .await
        .unwrap();
    let log_before = read_all(&mut ledger).await;
    let acme_before = get_account(&mut server.accounts(), "acme").await;
    let retry = request("globex", Expected::Exact(3), vec![meeting(&["anna.berg"], &["c2"])]);
    let original = ledger.append(retry.clone()).await.unwrap().into_inner();

    let server = server.restart().await;
    let mut ledger = server.ledger();
    let log_after = read_all(&mut ledger).await;
    assert_eq!(log_after.len(), 9);
    assert_eq!(log_after[..8], log_before[..], "every recorded event is back, byte for byte");
    assert_eq!(get_account(&mut server.accounts(), "acme").await, acme_before);

    // A retry after the restart is still recognised.
    let again = ledger.append(retry).await.unwrap().into_inner();
    assert!(again.duplicate);
    assert_eq!((again.first_position, again.first_version), (original.first_position, original.first_version));

    // New appends continue the versions, the positions and the hash chain.
    let next = ledger.append(request("acme", Expected::Exact(5), vec![signal("c2", 1, 1)])).await.unwrap().into_inner();
    assert_eq!((next.first_version, next.first_position), (6, 10));
    let acme = read_stream(&mut ledger, "acme").await;
    assert_eq!(acme[5].prev_hash, acme[4].hash);
    assert_eq!(get_account(&mut server.accounts(), "acme").await.owner, "sam.lee");

    // And a second restart sees all of it.
    let server = server.restart().await;
    assert_eq!(read_all(&mut server.ledger()).await.len(), 10);
    server.stop().await;
}
