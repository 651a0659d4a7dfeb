//! The practice over gRPC: plans, cadence, coordination, the iron triangle and the competition
//! in `GetAccount`, the portfolio's new filters, and `ListPlans`, `Cadence`, `Contributions` and
//! `Playbook`, on a hand-built account scored at the test servers' "now" (day 365).

use pb::event::Body;
use rapport_proto::v1 as pb;
use tonic::Code;

use crate::support::*;

fn planned(plan_id: &str, contact_id: &str, support: i32, intimacy: u32, due_day: i64) -> pb::Event {
    event(Body::RelationshipPlanned(pb::RelationshipPlanned {
        plan_id: plan_id.into(),
        contact_id: contact_id.into(),
        target_support: support,
        target_intimacy: intimacy,
        due_at: Some(day(due_day)),
        owner: "alice".into(),
        actions: "monthly steering reviews".into(),
        goal: "the 2026 renewal".into(),
        goal_reference: "crm:opp-7".into(),
    }))
}

fn joined_unit(member: &str, role: pb::TeamRole, unit: &str) -> pb::Event {
    event(Body::TeamMemberJoined(pb::TeamMemberJoined {
        member: member.into(),
        role: role as i32,
        business_unit: unit.into(),
    }))
}

fn assigned(staff: &str, unit: &str) -> pb::Event {
    event(Body::StaffAssigned(pb::StaffAssigned { staff: staff.into(), business_unit: unit.into() }))
}

fn competitor(name: &str, contact_id: &str, stance: i32) -> pb::Event {
    event(Body::CompetitorSignal(pb::CompetitorSignal {
        competitor: name.into(),
        contact_id: contact_id.into(),
        stance,
        evidence: "prefers their roadmap".into(),
    }))
}

/// "acme" (tier A, owner alice): plan p1 for k1 achieved by a coach signal on day 340, before
/// its date (400); plan p2 for k2 due on day 330 and overdue; k2 last touched on day 320, so
/// 15 days past the 30-day cadence of tier A on day 365; zoe (Energy, not on the team) met k1
/// on day 330; sam (Cloud) is the solution member, so delivery is missing; Globex stands at
/// +2 with k2, whom we never assessed. "calm" (owner bob) has no contact and no touch.
async fn accounts_with_a_practice(ledger: &mut Ledger) {
    let events = vec![
        on(300, opened("Acme", "alice")),
        on(300, tier(pb::Tier::A)),
        on(300, contact("k1", "Finance", true)),
        on(300, contact("k2", "IT", true)),
        on(301, joined_unit("sam", pb::TeamRole::Solution, "Cloud")),
        on(301, assigned("zoe", "Energy")),
        on(305, planned("p2", "k2", 1, 2, 330)),
        on(310, signal("k1", -1, 1)),
        on(311, planned("p1", "k1", 2, 3, 400)),
        on(320, meeting(&["alice"], &["k1"])),
        on(320, meeting(&["sam"], &["k2"])),
        on(330, meeting(&["zoe"], &["k1"])),
        on(340, signal("k1", 2, 3)),
        on(350, meeting(&["alice"], &["k1"])),
        on(360, competitor("Globex", "k2", 2)),
    ];
    ledger.append(request("acme", Expected::NoStream, events)).await.unwrap();
    ledger.append(request("calm", Expected::NoStream, vec![on(360, opened("Calm", "bob"))])).await.unwrap();
}

#[tokio::test]
async fn get_account_shows_plans_cadence_coordination_the_triangle_and_the_competition() {
    let server = TestServer::start().await;
    accounts_with_a_practice(&mut server.ledger()).await;
    let view = get_account(&mut server.accounts(), "acme").await;
    let practice = view.practice.expect("the view carries the practice");

    let status = |id: &str| practice.plans.iter().find(|p| p.plan_id == id).map(|p| p.status);
    assert_eq!(status("p1"), Some(pb::PlanStatus::Achieved as i32));
    assert_eq!(status("p2"), Some(pb::PlanStatus::Overdue as i32));
    let p1 = practice.plans.iter().find(|p| p.plan_id == "p1").unwrap();
    assert_eq!((p1.progress, p1.achieved_at.as_ref().map(|t| t.seconds)), (1.0, Some(day(340).seconds)));
    // p1 is done (1.0), p2 never moved (0.0): attainment 50.
    assert_eq!(practice.plan_attainment, Some(50.0));

    let cadence = practice.cadence.unwrap();
    assert_eq!(cadence.key_contact_days, 30.0);
    let overdue: Vec<(&str, i64, &str)> =
        cadence.overdue.iter().map(|o| (o.contact_id.as_str(), o.days_overdue, o.name.as_str())).collect();
    assert_eq!(overdue, [("k2", 365 - 320 - 30, "Person k2")]);

    let coordination = practice.coordination.unwrap();
    assert_eq!((coordination.touches, coordination.team_touches, coordination.flagged), (4, 3, true));
    let bypass = &coordination.bypassing[0];
    assert_eq!(
        (bypass.staff.as_str(), bypass.business_unit.as_str(), bypass.contact_id.as_str()),
        ("zoe", "Energy", "k1")
    );
    let triangle = practice.iron_triangle.unwrap();
    assert_eq!(triangle.missing, [pb::TeamRole::Delivery as i32]);

    let k2 = practice.competition.iter().find(|c| c.contact_id == "k2").unwrap();
    assert!(k2.behind && k2.strongest_competitor == "Globex" && k2.theirs > 1.9, "{k2:?}");
    let scores = view.scores.unwrap();
    let competition = scores.key_relationship.unwrap().factors.into_iter().find(|f| f.key == "competition").unwrap();
    // One of two key contacts behind: half of the 10 competition points.
    assert_eq!(competition.points, -5.0);
    server.stop().await;
}

#[tokio::test]
async fn the_portfolio_filters_and_the_practice_rpcs_answer_from_the_build() {
    let server = TestServer::start().await;
    accounts_with_a_practice(&mut server.ledger()).await;
    let mut accounts = server.accounts();
    let listed = |request: pb::ListAccountsRequest| {
        let mut accounts = accounts.clone();
        async move {
            let page = accounts.list_accounts(request).await.unwrap().into_inner();
            page.accounts.into_iter().map(|a| a.account_id).collect::<Vec<_>>()
        }
    };
    assert_eq!(listed(pb::ListAccountsRequest { overdue: true, ..Default::default() }).await, ["acme"]);
    assert_eq!(listed(pb::ListAccountsRequest { uncoordinated: true, ..Default::default() }).await, ["acme"]);
    let mut without_solution =
        listed(pb::ListAccountsRequest { missing_role: pb::TeamRole::Solution as i32, ..Default::default() }).await;
    without_solution.sort();
    assert_eq!(without_solution, ["calm"], "acme has sam for solution");
    let refused = accounts
        .list_accounts(pb::ListAccountsRequest { missing_role: pb::TeamRole::Service as i32, ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(refused.message().contains("missing_role"), "{}", refused.message());

    let plans = accounts
        .list_plans(pb::ListPlansRequest {
            owner: "alice".into(),
            status: pb::PlanStatus::Overdue as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(plans.plans.iter().map(|p| p.plan_id.as_str()).collect::<Vec<_>>(), ["p2"]);
    let refused = accounts.list_plans(pb::ListPlansRequest { status: 99, ..Default::default() }).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);

    let cadence = accounts
        .cadence(pb::CadenceRequest { owner: "alice".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        cadence.overdue.iter().map(|o| (o.account_id.as_str(), o.contact_id.as_str())).collect::<Vec<_>>(),
        [("acme", "k2")]
    );
    let by_bob = accounts.cadence(pb::CadenceRequest { owner: "bob".into(), ..Default::default() }).await.unwrap();
    assert!(by_bob.into_inner().overdue.is_empty());

    let credit = accounts
        .contributions(pb::ContributionsRequest {
            account_id: "acme".into(),
            from: Some(day(300)),
            to: Some(day(365)),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    // k1 went from skeptic and acquaintance to coach and trusted: 3 + 2 steps.
    assert_eq!(credit.progress, 5);
    let alice = credit.people.iter().find(|p| p.staff == "alice").unwrap();
    assert_eq!((alice.touches, alice.plans_achieved, alice.improvements), (2, 1, 1));
    let zoe = credit.people.iter().find(|p| p.staff == "zoe").unwrap();
    assert_eq!(zoe.improvements, 1, "zoe met k1 ten days before the improvement");
    let shares: f64 = credit.people.iter().map(|p| p.share).sum();
    assert!((shares - 1.0).abs() < 0.001, "shares add up to one: {shares}");
    let refused = accounts
        .contributions(pb::ContributionsRequest { from: Some(day(365)), to: Some(day(300)), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(refused.message().contains("to"), "{}", refused.message());

    let playbook = server.projections().playbook(pb::PlaybookRequest::default()).await.unwrap().into_inner();
    // Four contacts met at visits; k1's improvement on day 340 followed the visits of days 320
    // and 330 within 30 days: 2 of 4, which is also the base rate.
    let all_visits = playbook
        .rows
        .iter()
        .find(|r| r.tier.is_empty() && r.kind == pb::MeetingKind::Visit as i32 && !r.executive)
        .unwrap();
    assert_eq!((all_visits.touches, all_visits.improved, all_visits.rate, all_visits.lift), (4, 2, 0.5, Some(1.0)));
    assert!(playbook.rows.iter().any(|r| r.tier == "A"), "broken down by tier");
    server.stop().await;
}

/// The practice's figures are computed the same way live, by a rebuild, after a restart and by
/// start-up's own rebuild: the demo story (plans, competitor signals, the staff directory,
/// business units), the hand-built accounts, and a plan revised and then closed, fold to one
/// digest (which hashes the practice's figures) whichever way they were folded, and an
/// account's practice reads the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_practice_folds_to_one_digest_live_rebuilt_and_restarted() {
    let server = TestServer::start().await;
    let mut ledger = server.ledger();
    for request in rapport_demo::sample(7, NOW_SECONDS) {
        ledger.append(request).await.unwrap();
    }
    accounts_with_a_practice(&mut ledger).await;
    let revised = event(Body::PlanRevised(pb::PlanRevised {
        plan_id: "q1".into(),
        target_support: Some(1),
        target_intimacy: None,
        due_at: Some(day(380)),
        reason: "the board meets later".into(),
    }));
    let closed = event(Body::PlanClosed(pb::PlanClosed {
        plan_id: "q1".into(),
        outcome: pb::PlanOutcome::Abandoned as i32,
        reason: "the project was cancelled".into(),
    }));
    let events = vec![
        on(300, opened("Quill", "carol")),
        on(300, contact("q", "Legal", true)),
        on(301, planned("q1", "q", 2, 3, 350)),
        on(320, revised),
        on(340, closed),
    ];
    ledger.append(request("quill", Expected::NoStream, events)).await.unwrap();

    let digest_of = |infos: Vec<pb::RuleSetInfo>, id: &str| {
        infos.into_iter().find(|i| i.id == id).map(|i| (i.position, i.digest)).expect("the rule set is built")
    };
    let rule_sets = |server: &TestServer| {
        let mut projections = server.projections();
        async move { projections.list_rule_sets(pb::ListRuleSetsRequest {}).await.unwrap().into_inner().rule_sets }
    };
    let live = digest_of(rule_sets(&server).await, "default@1");
    let practice_of = |view: pb::AccountView| (view.practice, view.scores);
    let helios = practice_of(get_account(&mut server.accounts(), "helios-energy").await);

    let mut projections = server.projections();
    let built = rebuild(&mut projections, &rules_variant(2, 0.6), false).await.pop().unwrap();
    let again = rebuild(&mut projections, &rules_variant(2, 0.6), true).await.pop().unwrap();
    assert_eq!((again.events_done, &again.digest), (built.events_done, &built.digest), "a rebuild from scratch");
    drop(projections);

    let dir = server.stop().await;
    let server = TestServer::start_in(dir, test_config()).await;
    let restarted = rule_sets(&server).await;
    assert_eq!(digest_of(restarted.clone(), "default@1"), live, "the live build after a restart");
    assert_eq!(digest_of(restarted, "default@2"), (built.events_done, built.digest.clone()));
    assert_eq!(practice_of(get_account(&mut server.accounts(), "helios-energy").await), helios);

    // Throw the live build away: start-up builds it again from the log.
    let dir = server.stop().await;
    let (log, stored) = open_store(dir.path());
    rapport_store::ProjectionStore::drop_namespace(stored.as_ref(), "default@1").unwrap();
    drop((log, stored));
    let server = TestServer::start_in(dir, test_config()).await;
    assert_eq!(digest_of(rule_sets(&server).await, "default@1"), live, "the writer's fold and a rebuild agree");
    assert_eq!(practice_of(get_account(&mut server.accounts(), "helios-energy").await), helios);
    server.stop().await;
}
