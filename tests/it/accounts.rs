//! `Accounts.GetAccount`: the fold of the stream, as a view.

use rapport_proto::{v1 as pb, wkt};
use tonic::Code;

use crate::support::*;

#[tokio::test]
async fn get_account_after_owner_changes_shows_the_whole_owner_history() {
    let server = TestServer::start().await;
    let mut ledger = server.ledger();
    let events = vec![
        on(0, opened("Acme Steel", "li.wei")),
        on(1, tier(pb::Tier::S)),
        on(2, contact("c1", "IT", true)),
        on(3, contact("c2", "Finance", false)),
        on(4, contact("c3", "Procurement", true)),
        on(5, joined("sam.lee", pb::TeamRole::Solution)),
        on(6, joined("ola.nord", pb::TeamRole::Delivery)),
        on(10, signal("c1", -1, 1)),
        on(20, meeting(&["sam.lee", "li.wei"], &["c1", "c2"])),
        on(30, signal("c1", 1, 2)),
        on(40, gift("li.wei", "c2", 4_500, "EUR")),
        on(50, owner_changed("li.wei", "anna.berg")),
        on(60, left_team("ola.nord")),
        on(70, contact_left("c3")),
        on(80, owner_changed("anna.berg", "sam.lee")),
    ];
    ledger.append(request("acme", Expected::NoStream, events)).await.unwrap();

    let view = get_account(&mut server.accounts(), "acme").await;
    assert_eq!(
        (view.account_id.as_str(), view.name.as_str(), view.industry.as_str()),
        ("acme", "Acme Steel", "Manufacturing")
    );
    assert_eq!((view.owner.as_str(), view.tier.as_str(), view.version, view.position), ("sam.lee", "S", 15, 15));
    assert_eq!(view.opened_at, Some(day(0)));
    assert_eq!(view.last_activity_at, Some(day(80)));
    let history: Vec<(&str, Option<wkt::Timestamp>, Option<wkt::Timestamp>, &str)> =
        view.owner_history.iter().map(|t| (t.owner.as_str(), t.from, t.to, t.reason.as_str())).collect();
    assert_eq!(
        history,
        vec![
            ("li.wei", Some(day(0)), Some(day(50)), "account opened"),
            ("anna.berg", Some(day(50)), Some(day(80)), "rotation"),
            ("sam.lee", Some(day(80)), None, "rotation"),
        ]
    );
    assert_eq!(view.team, vec!["sam.lee".to_owned()]);
    assert_eq!(view.team_members.len(), 1);
    assert_eq!(view.team_members[0].role, pb::TeamRole::Solution as i32);

    let contacts: Vec<&str> = view.contacts.iter().map(|c| c.contact_id.as_str()).collect();
    assert_eq!(contacts, vec!["c1", "c2"]);
    let c1 = &view.contacts[0];
    assert_eq!((c1.department.as_str(), c1.key, c1.support, c1.intimacy), ("IT", true, 1, 2));
    assert_eq!(c1.assessed_at, Some(day(30)));
    assert_eq!((c1.last_touched_at, c1.last_touched_by.as_str()), (Some(day(20)), "sam.lee"));
    let c2 = &view.contacts[1];
    assert_eq!(
        (c2.last_touched_at, c2.last_touched_by.as_str(), c2.last_touch_kind.as_str()),
        (Some(day(40)), "li.wei", "gift_given")
    );
    assert_eq!(c2.assessed_at, None, "no signal about c2 yet");
    assert_eq!(view.former_contacts.len(), 1);
    assert_eq!((view.former_contacts[0].contact_id.as_str(), view.former_contacts[0].left_at), ("c3", Some(day(70))));
}

#[tokio::test]
async fn the_latest_signal_by_business_time_wins_even_when_it_arrives_first() {
    let server = TestServer::start().await;
    let mut ledger = server.ledger();
    open_account(&mut ledger, "acme", "li.wei").await;
    ledger.append(request("acme", Expected::Any, vec![on(200, signal("c1", 2, 4))])).await.unwrap();
    // An older observation synced late from a calendar system.
    ledger.append(request("acme", Expected::Any, vec![on(100, signal("c1", -1, 1))])).await.unwrap();
    let view = get_account(&mut server.accounts(), "acme").await;
    assert_eq!((view.contacts[0].support, view.contacts[0].intimacy), (2, 4));
    assert_eq!(view.version, 5);
}

#[tokio::test]
async fn an_unknown_account_is_not_found() {
    let server = TestServer::start().await;
    let status = server
        .accounts()
        .get_account(pb::GetAccountRequest { account_id: "nobody".into(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert!(status.message().contains("account_opened"), "says how to create it: {}", status.message());
}
