//! Projections through the API: scores of hand-built accounts, the portfolio, handover and
//! gift register, rule sets built beside the live one while appends continue, activation,
//! comparison, determinism of digests, and resuming from checkpoints.
//!
//! Expected scores are worked out here from the default rule set's numbers
//! (`rules/default.toml`): health weights 0.35 / 0.25 / 0.2 / 0.2, stance 0.6 and closeness 0.4,
//! coverage 0.6 and breadth 0.4 with a target of 5 people, a visit worth 1 point. The test
//! server's clock stands at 2026-01-01, which is `day(365)`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use rapport_demo::Workload;
use rapport_proto::v1 as pb;
use tonic::Code;

use crate::support::*;

const TODAY: i64 = 365;

fn visit(day_number: i64, staff: &[&str], contacts: &[&str]) -> pb::Event {
    on(day_number, meeting(staff, contacts))
}

fn four_key_contacts() -> Vec<pb::Event> {
    [("k1", "Finance"), ("k2", "IT"), ("k3", "Operations"), ("k4", "Legal")]
        .into_iter()
        .map(|(id, department)| on(300, contact(id, department, true)))
        .collect()
}

async fn append(ledger: &mut Ledger, account_id: &str, events: Vec<pb::Event>) -> pb::AppendResponse {
    ledger.append(request(account_id, Expected::Any, events)).await.expect("the append is accepted").into_inner()
}

async fn scores_of(accounts: &mut Accounts, account_id: &str) -> pb::Scores {
    get_account(accounts, account_id).await.scores.expect("the view carries scores")
}

fn value(score: &Option<pb::Score>) -> f64 {
    score.as_ref().expect("the score is present").value
}

fn close(actual: f64, expected: f64) {
    assert!((actual - expected).abs() < 0.005 + 1e-9, "{actual} is not {expected} to the hundredth");
}

/// Opens "solo" (every key contact met by its owner alone) and "team" (five people across
/// four departments, every key contact in touch with two or more of them).
async fn solo_and_team(ledger: &mut Ledger) {
    let mut solo = vec![on(300, opened("Solo", "alice"))];
    solo.extend(four_key_contacts());
    for (day_number, contact_id) in [(350, "k1"), (351, "k2"), (352, "k3"), (353, "k4")] {
        solo.push(visit(day_number, &["alice"], &[contact_id]));
    }
    append(ledger, "solo", solo).await;

    let mut team = vec![on(300, opened("Team", "alice"))];
    team.extend(four_key_contacts());
    team.push(visit(350, &["alice", "bob"], &["k1", "k2"]));
    team.push(visit(351, &["carol", "dan"], &["k3", "k4"]));
    team.push(visit(352, &["erin", "alice"], &["k2", "k3"]));
    append(ledger, "team", team).await;
}

#[tokio::test]
async fn scores_of_hand_built_accounts() {
    let server = TestServer::start().await;
    let (mut ledger, mut accounts) = (server.ledger(), server.accounts());
    solo_and_team(&mut ledger).await;

    let solo = scores_of(&mut accounts, "solo").await;
    assert_eq!(value(&solo.personalisation_risk), 100.0, "every key contact hangs on alice");
    close(value(&solo.general_relationship), 100.0 * (0.6 * 4.0 / 4.0 + 0.4 * 1.0 / 5.0));
    assert_eq!(value(&solo.key_relationship), 100.0 * 0.6 * 0.5, "never assessed: neutral strangers");
    // Rule format 2 adds a third of the 10 iron-triangle points (the owner covers sales), and a
    // coordination score of 100 (every touch is the owner's) weighted 0.1 in health.
    close(value(&solo.organisational_relationship), 4.0 + 10.0 / 3.0);
    assert_eq!(value(&solo.coordination), 100.0);
    close(value(&solo.health), (0.35 * 30.0 + 0.25 * 68.0 + 0.2 * 7.33 + 0.2 * 0.0 + 0.1 * 100.0) / 1.1);
    assert_eq!(solo.at_risk.len(), 1, "{:?}", solo.at_risk);

    let team = scores_of(&mut accounts, "team").await;
    assert_eq!(value(&team.personalisation_risk), 0.0);
    assert_eq!(value(&team.general_relationship), 100.0);
    // Of the twelve touches (two of ours by two contacts a meeting) four are the owner's; the
    // others bypass the team: coordination 0.6 × 4/12 + 0.4 × 1 (no business unit known).
    close(value(&team.coordination), 100.0 * (0.6 * 4.0 / 12.0 + 0.4));
    close(value(&team.health), (0.35 * 30.0 + 0.25 * 100.0 + 0.2 * 6.33 + 0.2 * 100.0 + 0.1 * 60.0) / 1.1);
    assert!(team.at_risk.is_empty());
    let risk = team.personalisation_risk.as_ref().unwrap();
    let k3 = risk.factors.iter().find(|f| f.key == "contact:k3").expect("a factor per key contact");
    assert!(k3.detail.contains("alice") && k3.detail.contains("carol"), "{}", k3.detail);

    // A key contact turning from opponent to coach, then the correction of that signal.
    append(&mut ledger, "turn", vec![on(300, opened("Turn", "alice")), on(300, contact("k", "Board", true))]).await;
    append(&mut ledger, "turn", vec![on(TODAY, signal("k", -2, 1))]).await;
    assert_eq!(value(&scores_of(&mut accounts, "turn").await.key_relationship), 100.0 * (0.6 * 0.0 + 0.4 * 0.25));
    let coach = on(TODAY, signal("k", 2, 3));
    let coach_id = coach.event_id.clone();
    append(&mut ledger, "turn", vec![coach]).await;
    assert_eq!(value(&scores_of(&mut accounts, "turn").await.key_relationship), 100.0 * (0.6 * 1.0 + 0.4 * 0.75));
    append(&mut ledger, "turn", vec![on(TODAY, retracted(&coach_id))]).await;
    assert_eq!(
        value(&scores_of(&mut accounts, "turn").await.key_relationship),
        10.0,
        "the coach signal no longer counts"
    );
    let view = get_account(&mut accounts, "turn").await;
    assert_eq!(view.retracted_events, 1);
    assert_eq!(view.contacts[0].assessments.len(), 1, "the retracted signal is gone from the picture");
    assert_eq!(read_stream(&mut ledger, "turn").await.len(), 5, "but not from the history");
    server.stop().await;
}

#[tokio::test]
async fn portfolio_handover_and_gift_register() {
    let server = TestServer::start().await;
    let (mut ledger, mut accounts) = (server.ledger(), server.accounts());
    solo_and_team(&mut ledger).await;

    // Riskiest first; the at-risk filter keeps only solo; a range on general keeps only team.
    let list = |request: pb::ListAccountsRequest| {
        let mut accounts = accounts.clone();
        async move { accounts.list_accounts(request).await.expect("the portfolio lists").into_inner() }
    };
    let by_risk =
        list(pb::ListAccountsRequest { sort_by: pb::ScoreKind::PersonalisationRisk as i32, ..Default::default() })
            .await;
    let ids: Vec<&str> = by_risk.accounts.iter().map(|a| a.account_id.as_str()).collect();
    assert_eq!(ids, ["solo", "team"]);
    assert_eq!(by_risk.rule_set, "default@1");
    let at_risk = list(pb::ListAccountsRequest { at_risk: true, ..Default::default() }).await;
    assert_eq!(at_risk.accounts.iter().map(|a| a.account_id.as_str()).collect::<Vec<_>>(), ["solo"]);
    let broad = list(pb::ListAccountsRequest {
        ranges: vec![pb::ScoreRange { score: pb::ScoreKind::GeneralRelationship as i32, min: 90.0, max: 100.0 }],
        ..Default::default()
    })
    .await;
    assert_eq!(broad.accounts.iter().map(|a| a.account_id.as_str()).collect::<Vec<_>>(), ["team"]);
    // Pages of one: the token carries on from where the first page ended.
    let first = list(pb::ListAccountsRequest { page_size: 1, ..Default::default() }).await;
    assert_eq!((first.accounts.len(), first.total), (1, 2));
    let second =
        list(pb::ListAccountsRequest { page_size: 1, page_token: first.next_page_token.clone(), ..Default::default() })
            .await;
    assert_eq!(second.accounts.len(), 1);
    assert_ne!(first.accounts[0].account_id, second.accounts[0].account_id);
    assert!(second.next_page_token.is_empty());
    let bad =
        accounts.list_accounts(pb::ListAccountsRequest { tier: "Z".into(), ..Default::default() }).await.unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().contains("tier"), "{}", bad.message());

    // Handover: if alice leaves solo, all four key relationships go with her.
    let report = accounts
        .handover(pb::HandoverRequest { account_id: "solo".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(report.owner, "alice");
    assert_eq!(report.risk_if_owner_leaves, 100.0);
    assert!(report.contacts.iter().all(|c| c.only_through_owner && c.held_by[0].by == "alice"));
    // After the owner change the report is the new owner's at once: the risk stays (each
    // contact still hangs on one person), but it no longer hangs on the owner.
    append(&mut ledger, "solo", vec![on(360, owner_changed("alice", "bob"))]).await;
    let report = accounts
        .handover(pb::HandoverRequest { account_id: "solo".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(report.owner, "bob");
    assert_eq!(report.previous.as_ref().map(|t| t.owner.as_str()), Some("alice"));
    assert_eq!(report.handover_note, "Key contacts introduced in person");
    assert_eq!(report.risk_if_owner_leaves, 0.0);
    assert_eq!(report.personalisation_risk.as_ref().map(|r| r.value), Some(100.0));

    // Gift register: 150.00 EUR is above the 100.00 EUR threshold; one gift lacks approval.
    let mut unapproved = on(362, gift("bob", "k2", 4_000, "EUR"));
    if let Some(pb::event::Body::GiftGiven(g)) = unapproved.body.as_mut() {
        g.approval_ref.clear();
    }
    append(&mut ledger, "solo", vec![on(361, gift("alice", "k1", 15_000, "EUR")), unapproved]).await;
    let register = accounts
        .gift_register(pb::GiftRegisterRequest { account_id: "solo".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(register.gifts.len(), 2);
    assert_eq!(register.totals, vec![pb::Money { minor: 19_000, currency: "EUR".into() }]);
    assert_eq!((register.gifts[0].above_threshold, register.gifts[0].no_approval), (10_000, false));
    assert_eq!((register.gifts[1].above_threshold, register.gifts[1].no_approval), (0, true));
    let k2 = accounts
        .gift_register(pb::GiftRegisterRequest {
            account_id: "solo".into(),
            contact_id: "k2".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(k2.gifts.len(), 1);
    server.stop().await;
}

async fn rule_sets(projections: &mut Projections) -> Vec<pb::RuleSetInfo> {
    projections.list_rule_sets(pb::ListRuleSetsRequest {}).await.expect("rule sets list").into_inner().rule_sets
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_set_is_built_beside_the_live_one_and_activated_while_appends_continue() {
    let server = TestServer::start().await;
    generate(&server, "warm", 2, 40, 2_000, 10).await;
    open_account(&mut server.ledger(), "watched", "alice").await;

    // Appends and reads of the live projection keep going through the rebuild and the switch.
    let stop = Arc::new(AtomicBool::new(false));
    let appended = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (mut ledger, stop, appended) = (server.ledger(), Arc::clone(&stop), Arc::clone(&appended));
            let mut workload = Workload::new(99 + w, 30, NOW_SECONDS, &format!("live{w}"));
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let request = workload.next_request(5);
                    let n = request.events.len() as u64;
                    ledger.append(request).await.expect("appends continue");
                    appended.fetch_add(n, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let reader = {
        let (mut accounts, stop) = (server.accounts(), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut reads = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let view = accounts
                    .get_account(pb::GetAccountRequest { account_id: "watched".into(), ..Default::default() })
                    .await
                    .expect("reads never fail, not even during the switch");
                assert!(view.get_ref().scores.is_some());
                reads += 1;
            }
            reads
        })
    };

    let mut projections = server.projections();
    let steps = rebuild(&mut projections, &rules_variant(2, 0.9), false).await;
    assert!(steps.iter().all(|s| s.rule_set == "default@2" && s.events_done <= s.events_total), "{steps:?}");
    let activated = projections
        .activate(pb::ActivateRequest { rule_set: "default@2".into() })
        .await
        .expect("a caught-up build activates")
        .into_inner();
    assert_eq!((activated.rule_set.as_str(), activated.previous.as_str()), ("default@2", "default@1"));
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.await.expect("a writer task joins");
    }
    let reads = reader.await.expect("the reader task joins");
    assert!(reads > 0 && appended.load(Ordering::Relaxed) > 0);

    // Both builds end at the log's position: the active one at once, the other once it follows.
    let mut infos = rule_sets(&mut projections).await;
    for _ in 0..100 {
        if infos.iter().all(|i| i.position == i.log_position) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        infos = rule_sets(&mut projections).await;
    }
    assert_eq!(infos.len(), 2);
    assert!(infos.iter().all(|i| i.position == i.log_position), "{infos:?}");
    assert_eq!(infos.iter().find(|i| i.active).map(|i| i.id.as_str()), Some("default@2"));

    // No event missed or counted twice: every account's version under both builds is the
    // version of its stream's last event, and the pictures agree outside the scores.
    let (mut ledger, mut accounts) = (server.ledger(), server.accounts());
    let all = read_all(&mut ledger).await;
    let mut heads = std::collections::BTreeMap::new();
    for event in &all {
        heads.insert(event.account_id.clone(), event.version);
    }
    for (account_id, version) in &heads {
        let get = |rule_set: &str| pb::GetAccountRequest {
            account_id: account_id.clone(),
            rule_set: rule_set.into(),
            ..Default::default()
        };
        let old = accounts.get_account(get("default@1")).await.unwrap().into_inner();
        let new = accounts.get_account(get("")).await.unwrap().into_inner();
        assert_eq!((old.version, new.version), (*version, *version), "{account_id}");
        assert_eq!(new.rule_set, "default@2");
        assert_eq!(
            (&old.contacts, &old.owner_history, old.position),
            (&new.contacts, &new.owner_history, new.position)
        );
    }

    // The comparison names what moved: heavier stance weight moves key relationship scores.
    let compared = projections
        .compare(pb::CompareRequest { rule_set_a: "default@1".into(), rule_set_b: "default@2".into(), limit: 5 })
        .await
        .unwrap()
        .into_inner();
    assert!(!compared.accounts.is_empty());
    let top = &compared.accounts[0];
    assert!(top.largest_change > 0.0);
    assert!(top.factors.iter().any(|f| f.score == "key_relationship"), "{:?}", top.factors);
    let changes: Vec<f64> = compared.accounts.iter().map(|a| a.largest_change).collect();
    assert!(changes.windows(2).all(|w| w[0] >= w[1]), "largest change first: {changes:?}");
    server.stop().await;
}

#[tokio::test]
async fn rule_set_mistakes_and_unknown_builds_are_refused() {
    let server = TestServer::start().await;
    let mut projections = server.projections();
    let bad = projections
        .rebuild(pb::RebuildRequest {
            rule_set: rules_variant(2, 0.6).replace("breadth_target = 5", ""),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().contains("breadth_target"), "{}", bad.message());

    rebuild(&mut projections, &rules_variant(2, 0.7), false).await;
    let changed = projections
        .rebuild(pb::RebuildRequest { rule_set: rules_variant(2, 0.8), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(changed.code(), Code::AlreadyExists);
    assert!(changed.message().contains("new version"), "{}", changed.message());

    let unknown = projections.activate(pb::ActivateRequest { rule_set: "default@9".into() }).await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    assert!(
        unknown.message().contains("default@1") && unknown.message().contains("default@2"),
        "{}",
        unknown.message()
    );
    let read = server
        .accounts()
        .get_account(pb::GetAccountRequest { account_id: "x".into(), rule_set: "other@1".into(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(read.code(), Code::NotFound);
    server.stop().await;
}
