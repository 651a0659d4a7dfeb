//! The practice figures of hand-built histories: plans, cadence, coordination, contribution
//! and the playbook, with the expected values worked out from the default rules' numbers.

use super::*;
use crate::scores::round4;

impl Stream {
    fn tier(&mut self, at: i64, tier: Tier) {
        self.push(at, EventBody::TierAssigned(TierAssigned { tier, reason: label("review") }));
    }

    fn contact(&mut self, id: &str, department: &str, key: bool) {
        self.push(
            0,
            EventBody::ContactAdded(ContactAdded {
                contact_id: contact_id(id),
                name: Personal::clear(id),
                title: Personal::clear("Manager"),
                department: label(department),
                role: ContactRole::Influencer,
                key,
            }),
        );
    }

    fn joined(&mut self, at: i64, member: &str, role: TeamRole, unit: &str) {
        self.push(
            at,
            EventBody::TeamMemberJoined(TeamMemberJoined { member: staff(member), role, business_unit: label(unit) }),
        );
    }

    fn plan(&mut self, at: i64, id: &str, contact: &str, support: i32, intimacy: u32, due: i64) {
        self.push(
            at,
            EventBody::RelationshipPlanned(RelationshipPlanned {
                plan_id: PlanId::parse(id, &limits()).unwrap(),
                contact_id: contact_id(contact),
                target: PlanTarget {
                    support: Support::new(support).unwrap(),
                    intimacy: Intimacy::new(intimacy).unwrap(),
                },
                due_at: day(due),
                owner: staff("alice"),
                actions: Personal::clear("quarterly reviews"),
                goal: label("the 2026 renewal"),
                goal_reference: label("crm:opp-7"),
            }),
        );
    }
}

#[test]
fn a_plan_is_achieved_by_a_coach_signal_before_its_due_date() {
    let rules = rules();
    assert_eq!(rules.plans.at_risk_margin, 0.25);
    let mut stream = Stream::opened("alice");
    stream.key_contact("k1", "Finance");
    stream.signal(10, "k1", -1, 1);
    // From skeptic and acquaintance to coach and trusted by day 80: 3 + 2 steps.
    stream.plan(20, "p1", "k1", 2, 3, 80);
    stream.signal(50, "k1", 1, 2);
    let halfway = stream.project(&rules);

    // On day 60: 2 + 1 of the 5 steps made (0.6) with 40 of its 60 days gone (0.67): within
    // the 0.25 it may trail by.
    let plan = &practice(&halfway, &rules, day(60)).plans[0];
    assert_eq!((plan.status, plan.progress), (PlanStatus::OnTrack, 0.6));
    assert_eq!(plan.start, Standing { support: Support::new(-1).unwrap(), intimacy: Intimacy::new(1).unwrap() });
    // On day 75, 55 of 60 days gone (0.92): 0.6 trails by more than 0.25.
    assert_eq!(practice(&halfway, &rules, day(75)).plans[0].status, PlanStatus::AtRisk);
    // On day 81, past its date.
    assert_eq!(practice(&halfway, &rules, day(81)).plans[0].status, PlanStatus::Overdue);

    stream.signal(70, "k1", 2, 3);
    let achieved = stream.project(&rules);
    let s = scores(&achieved, &rules, day(90));
    let plan = &s.practice.plans[0];
    assert_eq!((plan.status, plan.progress, plan.achieved_at), (PlanStatus::Achieved, 1.0, Some(day(70))));
    assert!(plan.detail.contains("10 days before it was due"), "{}", plan.detail);
    assert_eq!(s.practice.plan_attainment, Some(100.0));
    // With a plan, its attainment takes part in health with weight 0.1.
    let factor = s.health.factors.iter().find(|f| f.key == "plan_attainment").expect("a plan attainment factor");
    close(factor.points, 100.0 * 0.1 / (HEALTH_WEIGHTS + 0.1));
}

#[test]
fn a_key_contact_five_days_past_their_cadence() {
    let rules = rules();
    let mut stream = Stream::opened("alice");
    stream.tier(1, Tier::A);
    stream.key_contact("k1", "Finance");
    stream.meeting(10, &["alice"], &["k1"], MeetingKind::Visit);
    let projection = stream.project(&rules);
    // Tier A: a touch every 30 days, so the next was due on day 40.
    assert!(practice(&projection, &rules, day(40)).cadence.overdue.is_empty(), "due, not yet past");
    let s = scores(&projection, &rules, day(45));
    let overdue = &s.practice.cadence.overdue;
    assert_eq!(overdue.len(), 1);
    assert_eq!((overdue[0].due_at, overdue[0].days_overdue, overdue[0].last_touch), (day(40), 5, Some(day(10))));
    // The one key contact never assessed (0.6 × 0.5) less all 10 cadence points.
    assert_eq!(s.key_relationship.value, 30.0 - 10.0);
    let cadence = s.key_relationship.factors.iter().find(|f| f.key == "cadence").unwrap();
    assert_eq!(cadence.points, -10.0);
}

#[test]
fn a_touch_from_outside_the_team_is_flagged_and_one_from_inside_is_not() {
    let rules = rules();
    let mut stream = Stream::opened("alice");
    stream.key_contact("k1", "Finance");
    stream.joined(1, "sam", TeamRole::Solution, "Cloud");
    stream.push(1, EventBody::StaffAssigned(StaffAssigned { staff: staff("zoe"), business_unit: label("Energy") }));
    stream.meeting(10, &["sam"], &["k1"], MeetingKind::TechnicalExchange);
    let inside = practice(&stream.project(&rules), &rules, day(20)).coordination;
    assert_eq!((inside.touches, inside.team_touches, inside.flagged), (1, 1, false));
    assert!(inside.bypassing.is_empty());

    stream.meeting(11, &["zoe"], &["k1"], MeetingKind::Visit);
    let s = scores(&stream.project(&rules), &rules, day(20));
    let c = &s.practice.coordination;
    assert_eq!((c.touches, c.team_touches, c.flagged), (2, 1, true));
    assert_eq!(c.bypassing.len(), 1);
    assert_eq!(
        (c.bypassing[0].staff.as_str(), c.bypassing[0].unit.as_ref().map(Label::as_str)),
        ("zoe", Some("Energy"))
    );
    let units: Vec<(&str, bool)> = c.units.iter().map(|u| (u.unit.as_str(), u.on_team)).collect();
    assert_eq!(units, [("Cloud", true), ("Energy", false)]);
    // Half the touches through the team, half the units with someone on it.
    assert_eq!(s.coordination.value, 100.0 * (0.6 * 0.5 + 0.4 * 0.5));
    // The owner (sales) and sam (solution) leave delivery missing: two thirds of 10 points.
    assert_eq!(s.practice.iron_triangle.missing, [TeamRole::Delivery]);
}

#[test]
fn contribution_is_split_between_the_owner_and_a_solution_architect_by_the_rule() {
    let rules = rules();
    let w = &rules.contribution;
    assert_eq!(
        (w.touch, w.key_contact, w.department_opened, w.improvement, w.plan_achieved, w.gift, w.credit_days),
        (1.0, 2.0, 3.0, 3.0, 5.0, 0.5, 30.0)
    );
    let mut stream = Stream::opened("alice");
    stream.key_contact("k1", "Finance");
    stream.contact("c2", "IT", false);
    stream.joined(1, "sam", TeamRole::Solution, "Cloud");
    stream.meeting(10, &["alice"], &["k1"], MeetingKind::Visit); // alice opens Finance
    stream.meeting(12, &["sam"], &["c2"], MeetingKind::TechnicalExchange); // sam opens IT
    stream.signal(15, "k1", 0, 1);
    stream.meeting(20, &["alice", "sam"], &["k1"], MeetingKind::Workshop);
    stream.signal(30, "k1", 1, 2); // +1 stance, +1 closeness: both touched k1 in the 30 days before
    stream.gift(40, "alice", "k1", 5_000, "EUR", Some("AP-1"));
    let c = contributions(&stream.project(&rules), &rules, day(0), day(90));
    assert_eq!(c.progress, 2);
    // alice: 3 touches (two meetings, the gift), 1 key contact, 1 department, 1 improvement, 1 gift.
    let alice_points = 3.0 * 1.0 + 2.0 + 3.0 + 3.0 + 0.5;
    // sam: 2 touches, 1 key contact, 1 department, 1 improvement.
    let sam_points = 2.0 * 1.0 + 2.0 + 3.0 + 3.0;
    let (alice, sam) = (&c.people[0], &c.people[1]);
    assert_eq!((alice.staff.as_str(), alice.points), ("alice", alice_points));
    assert_eq!((sam.staff.as_str(), sam.points), ("sam", sam_points));
    assert_eq!(alice.share, round4(alice_points / (alice_points + sam_points)));
    assert_eq!(sam.share, round4(sam_points / (alice_points + sam_points)));
    assert_eq!((alice.progress, sam.progress), (alice.share * 2.0, sam.share * 2.0));
    let departments = alice.factors.iter().find(|f| f.key == "departments_opened").unwrap();
    assert_eq!((departments.points, departments.detail.as_str()), (3.0, "1 departments opened × 3.00"));

    // The portfolio adds accounts up: twice the same account doubles counts, keeps shares.
    let mut portfolio = Contributions::empty(day(0), day(90));
    portfolio.add(&c, &rules);
    portfolio.add(&c, &rules);
    assert_eq!((portfolio.progress, portfolio.people[0].touches, portfolio.people[0].share), (4, 6, alice.share));
}

#[test]
fn the_playbook_shows_the_lift_of_a_meeting_kind_that_precedes_improvements() {
    let rules = rules();
    assert_eq!(rules.playbook.follow_days, 30.0);
    let mut stream = Stream::opened("alice");
    stream.tier(1, Tier::B);
    for contact in ["k1", "k2", "k3", "k4"] {
        stream.key_contact(contact, "Finance");
        stream.signal(5, contact, 0, 1);
    }
    stream.meeting(10, &["alice"], &["k1"], MeetingKind::Dinner);
    stream.signal(15, "k1", 1, 1); // improved 5 days after the dinner
    stream.meeting(20, &["alice"], &["k2"], MeetingKind::Dinner);
    stream.signal(25, "k2", 0, 2);
    stream.meeting(30, &["alice"], &["k3"], MeetingKind::Call); // no signal after
    stream.meeting(31, &["alice"], &["k4"], MeetingKind::Call);
    stream.signal(100, "k4", 1, 1); // 69 days later: beyond the 30 follow days
    let projection = stream.project(&rules);
    let touches = playbook_touches(&projection, &rules, day(0), day(120));
    let mut playbook = Playbook::new(&rules, day(0), day(120));
    playbook.add(Some(Tier::B), &touches);
    let playbook = playbook.finish();
    // Two of four contacts met improved: a base rate of 0.5. Dinners: 2 of 2, lift 2; calls: 0.
    let row = |tier: Option<Tier>, kind| playbook.rows.iter().find(|r| r.tier == tier && r.kind == kind).unwrap();
    for tier in [None, Some(Tier::B)] {
        let dinner = row(tier, MeetingKind::Dinner);
        assert_eq!(
            (dinner.touches, dinner.improved, dinner.rate, dinner.base_rate, dinner.lift),
            (2, 2, 1.0, 0.5, Some(2.0))
        );
        let call = row(tier, MeetingKind::Call);
        assert_eq!((call.touches, call.improved, call.rate, call.lift), (2, 0, 0.0, Some(0.0)));
    }
    assert_eq!(playbook.rows.len(), 4, "all tiers and B, dinners and calls, none executive");
}
