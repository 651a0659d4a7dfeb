//! The account as of an instant, both ways: what we knew then (recorded by then) and what was
//! true then (occurred by then, even if recorded later), and as of a version.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use rapport_domain::Timestamp;
use rapport_proto::{v1 as pb, wkt};
use tonic::Code;

use crate::support::*;

const SECOND: i64 = 1_000_000_000;

async fn as_of(accounts: &mut Accounts, request: pb::GetAccountRequest) -> Result<pb::AccountView, tonic::Status> {
    accounts.get_account(request).await.map(|r| r.into_inner())
}

fn support_of(view: &pb::AccountView) -> (i32, u32) {
    (view.contacts[0].support, view.contacts[0].intimacy)
}

#[tokio::test]
async fn what_we_knew_and_what_was_true() {
    // A clock the test moves: recording times are what "known" looks at.
    let now = Arc::new(AtomicI64::new(NOW_SECONDS * SECOND));
    let clock = Arc::clone(&now);
    let config = rapport_server::ServerConfig {
        clock: Arc::new(move || Timestamp::from_unix_nanos(clock.load(Ordering::SeqCst))),
        ..test_config()
    };
    let server = TestServer::start_with(config).await;
    let (mut ledger, mut accounts) = (server.ledger(), server.accounts());

    // Recorded at T1: opened on day 1, a contact, a skeptic signal on day 10.
    let t1 = NOW_SECONDS;
    let events = vec![on(1, opened("Acme", "alice")), on(1, contact("c1", "IT", true)), on(10, signal("c1", -1, 1))];
    ledger.append(request("acme", Expected::NoStream, events)).await.unwrap();
    // Recorded at T2 = T1 + 1 h: a supporter signal that occurred on day 11 (entered late),
    // and a coach signal on day 20.
    now.store((t1 + 3_600) * SECOND, Ordering::SeqCst);
    let events = vec![on(11, signal("c1", 1, 2)), on(20, signal("c1", 2, 3))];
    ledger.append(request("acme", Expected::Exact(3), events)).await.unwrap();

    let between = wkt::Timestamp { seconds: t1 + 60, nanos: 0 };
    let request = |as_of: Option<wkt::Timestamp>, kind: pb::AsOf, version: u64| pb::GetAccountRequest {
        account_id: "acme".into(),
        as_of,
        as_of_kind: kind as i32,
        as_of_version: version,
        ..Default::default()
    };
    // What we knew a minute after T1: only the skeptic signal.
    let known = as_of(&mut accounts, request(Some(between), pb::AsOf::Known, 0)).await.unwrap();
    assert_eq!((support_of(&known), known.version), ((-1, 1), 3));
    // What was true on day 12: the supporter signal of day 11, recorded later.
    let true_then = as_of(&mut accounts, request(Some(day(12)), pb::AsOf::Occurred, 0)).await.unwrap();
    assert_eq!(support_of(&true_then), (1, 2));
    assert_eq!(true_then.scores.as_ref().and_then(|s| s.as_of), Some(day(12)), "scored at that instant");
    // As of version 3: the first batch.
    let third = as_of(&mut accounts, request(None, pb::AsOf::Unspecified, 3)).await.unwrap();
    assert_eq!((support_of(&third), third.version), ((-1, 1), 3));
    // Now: the coach.
    let current = get_account(&mut accounts, "acme").await;
    assert_eq!((support_of(&current), current.version), ((2, 3), 5));

    // Before the account was opened it did not exist, either way.
    let before = as_of(&mut accounts, request(Some(day(0)), pb::AsOf::Occurred, 0)).await.unwrap_err();
    assert_eq!(before.code(), Code::NotFound);
    assert!(before.message().contains("not opened yet"), "{}", before.message());
    let both = as_of(&mut accounts, request(Some(day(12)), pb::AsOf::Known, 2)).await.unwrap_err();
    assert_eq!(both.code(), Code::InvalidArgument);
    assert!(both.message().contains("as_of_version"), "{}", both.message());
    server.stop().await;
}
