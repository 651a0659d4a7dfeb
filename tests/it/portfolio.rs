//! The portfolio as `ListAccounts` serves it from its index: scored at the server's time
//! rounded down to the listing quantum, kept current as accounts change, moved on to the next
//! instant in the background, and pages of an instant it has left still answered at theirs.
//!
//! What each listing should say is worked out from `GetAccount` (which scores one account at
//! the server's exact time) with the clock set to the listing's instant.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use rapport_domain::Timestamp;
use rapport_proto::v1 as pb;
use rapport_server::ServerConfig;

use crate::support::*;

const SECOND: i64 = 1_000_000_000;
const MINUTE: i64 = 60 * SECOND;
/// A whole minute: the fixed clock's instant.
const T0: i64 = NOW_SECONDS * SECOND;

/// The server's clock, moved by the test.
struct Clock(Arc<AtomicI64>);

impl Clock {
    fn set(&self, nanos: i64) {
        self.0.store(nanos, Ordering::SeqCst);
    }
}

async fn server_with_clock() -> (TestServer, Clock) {
    let now = Arc::new(AtomicI64::new(T0));
    let read = Arc::clone(&now);
    let clock: rapport_server::Clock = Arc::new(move || Timestamp::from_unix_nanos(read.load(Ordering::SeqCst)));
    let config = ServerConfig { clock, listing_quantum: Duration::from_secs(60), ..test_config() };
    (TestServer::start_with(config).await, Clock(now))
}

/// Account `i` has `i % 4` key contacts who are coaches, and every third is tier A.
async fn open_accounts(ledger: &mut Ledger, count: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..count {
        let id = format!("a{i:02}");
        let mut events = vec![on(10, opened(&format!("Firm {i}"), "li.wei"))];
        for c in 0..i % 4 {
            let contact_id = format!("k{c}");
            events.push(on(20, contact(&contact_id, ["IT", "Finance", "Plant"][c], true)));
            events.push(on(30 + c as i64, signal(&contact_id, 2, 3)));
        }
        if i % 3 == 0 {
            events.push(on(40, tier(pb::Tier::A)));
        }
        ledger.append(request(&id, Expected::NoStream, events)).await.expect("the account opens");
        ids.push(id);
    }
    ids
}

/// The accounts' ids and health, healthiest first and ties by id, as `GetAccount` scores them
/// with the clock at `at`; `keep` filters by the view.
async fn expected(
    accounts: &mut Accounts,
    clock: &Clock,
    ids: &[String],
    at: i64,
    keep: impl Fn(&pb::AccountView) -> bool,
) -> Vec<(String, f64)> {
    let now = clock.0.load(Ordering::SeqCst);
    clock.set(at);
    let mut listed = Vec::new();
    for id in ids {
        let view = get_account(accounts, id).await;
        if keep(&view) {
            let health = view.scores.as_ref().and_then(|s| s.health.as_ref()).expect("a health score").value;
            listed.push((id.clone(), health));
        }
    }
    clock.set(now);
    listed.sort_by(|(a, x), (b, y)| y.total_cmp(x).then_with(|| a.cmp(b)));
    listed
}

async fn list(accounts: &mut Accounts, request: pb::ListAccountsRequest) -> pb::ListAccountsResponse {
    accounts.list_accounts(request).await.expect("the portfolio lists").into_inner()
}

fn rows(page: &pb::ListAccountsResponse) -> Vec<(String, f64)> {
    page.accounts.iter().map(|a| (a.account_id.clone(), a.health)).collect()
}

fn instant(page: &pb::ListAccountsResponse) -> i64 {
    let at = page.as_of.as_ref().expect("the page says its instant");
    at.seconds * SECOND + i64::from(at.nanos)
}

fn everyone(_: &pb::AccountView) -> bool {
    true
}

#[tokio::test]
async fn listings_are_scored_at_the_quantised_instant_and_follow_appends() {
    let (server, clock) = server_with_clock().await;
    let (mut ledger, mut accounts) = (server.ledger(), server.accounts());
    let ids = open_accounts(&mut ledger, 12).await;
    let all = pb::ListAccountsRequest { page_size: 5, ..Default::default() };

    // 25 s into the minute, the listing is scored at the minute.
    clock.set(T0 + 25 * SECOND);
    let first = list(&mut accounts, all.clone()).await;
    assert_eq!(instant(&first), T0);
    let at_t0 = expected(&mut accounts, &clock, &ids, T0, everyone).await;
    assert_eq!(rows(&first), at_t0[..5]);
    assert_eq!(first.total, 12);
    let tier_a = list(&mut accounts, pb::ListAccountsRequest { tier: "A".into(), ..all.clone() }).await;
    let expected_a = expected(&mut accounts, &clock, &ids, T0, |v| v.tier == "A").await;
    assert_eq!(rows(&tier_a), expected_a[..4]);
    assert_eq!(tier_a.total, 4, "a00, a03, a06, a09");

    // An append moves the account at once: a00, with no contacts, gains three coaches.
    let coaches: Vec<pb::Event> = (0..3)
        .flat_map(|c| {
            let contact_id = format!("k{c}");
            [on(50, contact(&contact_id, "IT", true)), on(51, signal(&contact_id, 2, 4))]
        })
        .collect();
    ledger.append(request("a00", Expected::Any, coaches)).await.expect("the append is accepted");
    let moved = list(&mut accounts, pb::ListAccountsRequest { page_size: 20, ..Default::default() }).await;
    assert_eq!(instant(&moved), T0);
    let after_append = expected(&mut accounts, &clock, &ids, T0, everyone).await;
    assert_ne!(after_append, at_t0, "a00's health changed");
    assert_eq!(rows(&moved), after_append);

    // Into the next minute: the first listing there is still answered at T0 while the
    // portfolio is scored anew, and the listings after it reach T0 + 1 min.
    let t1 = T0 + MINUTE;
    clock.set(t1 + 5 * SECOND);
    let at_rollover = list(&mut accounts, all.clone()).await;
    assert_eq!(instant(&at_rollover), T0);
    assert_eq!(rows(&at_rollover), after_append[..5]);
    // An append while the portfolio is scored anew reaches the new index too.
    ledger
        .append(request("a01", Expected::Any, vec![on(60, tier(pb::Tier::S))]))
        .await
        .expect("the append is accepted");
    let mut waited = Duration::ZERO;
    let moved_on = loop {
        let page = list(&mut accounts, all.clone()).await;
        if instant(&page) == t1 {
            break page;
        }
        assert!(waited < Duration::from_secs(10), "the listing reaches the next minute");
        tokio::time::sleep(Duration::from_millis(20)).await;
        waited += Duration::from_millis(20);
    };
    let at_t1 = expected(&mut accounts, &clock, &ids, t1, everyone).await;
    assert_eq!(rows(&moved_on), at_t1[..5]);
    let tier_s = list(&mut accounts, pb::ListAccountsRequest { tier: "S".into(), ..all.clone() }).await;
    assert_eq!(
        (instant(&tier_s), rows(&tier_s)),
        (t1, expected(&mut accounts, &clock, &ids, t1, |v| v.tier == "S").await)
    );

    // Three minutes on, with nobody listing meanwhile: the first listing is scored there at
    // once, rather than answered from scores two minutes old.
    let t3 = T0 + 3 * MINUTE;
    clock.set(t3 + SECOND);
    let later = list(&mut accounts, all.clone()).await;
    assert_eq!(instant(&later), t3);
    assert_eq!(rows(&later), expected(&mut accounts, &clock, &ids, t3, everyone).await[..5]);

    // The second page of the listing begun at T0 + 1 min is still scored at that instant,
    // though the index has moved on: the pages of one listing agree.
    let second = list(&mut accounts, pb::ListAccountsRequest { page_token: moved_on.next_page_token, ..all }).await;
    assert_eq!(instant(&second), t1);
    assert_eq!(rows(&second), at_t1[5..10]);
    server.stop().await;
}
