//! Scores of hand-built histories, with the expected values worked out here from the rules'
//! numbers (not read back from the code), and the rule file's errors, one per kind of mistake.

use rapport_domain::*;

use crate::*;

const DAY: i64 = 86_400 * 1_000_000_000;

fn day(n: i64) -> Timestamp {
    Timestamp::from_unix_nanos(1_767_225_600 * 1_000_000_000 + n * DAY)
}

fn limits() -> Limits {
    Limits::default()
}

fn staff(s: &str) -> StaffId {
    StaffId::parse(s, &limits()).unwrap()
}

fn contact_id(s: &str) -> ContactId {
    ContactId::parse(s, &limits()).unwrap()
}

fn label(s: &str) -> Label {
    Label::parse(s, &limits()).unwrap()
}

/// A stream under construction: events with versions, positions and recording times.
struct Stream {
    events: Vec<Event>,
}

impl Stream {
    fn opened(owner: &str) -> Stream {
        let mut stream = Stream { events: Vec::new() };
        stream.push(
            0,
            EventBody::AccountOpened(AccountOpened {
                name: label("Acme"),
                industry: label("Steel"),
                owner: staff(owner),
            }),
        );
        stream
    }

    fn push(&mut self, at: i64, body: EventBody) -> EventId {
        let n = self.events.len() as u8 + 1;
        let mut bytes = [0u8; 16];
        bytes[15] = n;
        bytes[6] = 0x40;
        let id = EventId::from_bytes(bytes);
        self.events.push(Event {
            id,
            occurred_at: day(at),
            actor: staff("li.wei"),
            source: SourceSystem::parse("crm", &limits()).unwrap(),
            body,
        });
        id
    }

    fn key_contact(&mut self, id: &str, department: &str) {
        self.push(
            0,
            EventBody::ContactAdded(ContactAdded {
                contact_id: contact_id(id),
                name: Personal::clear(id),
                title: Personal::clear("Director"),
                department: label(department),
                role: ContactRole::DecisionMaker,
                key: true,
            }),
        );
    }

    fn signal(&mut self, at: i64, contact: &str, support: i32, intimacy: u32) -> EventId {
        self.push(
            at,
            EventBody::SupportSignal(SupportSignal {
                contact_id: contact_id(contact),
                support: Support::new(support).unwrap(),
                intimacy: Intimacy::new(intimacy).unwrap(),
                evidence: Personal::clear("observed"),
            }),
        )
    }

    fn meeting(&mut self, at: i64, staff_ids: &[&str], contacts: &[&str], kind: MeetingKind) {
        self.push(
            at,
            EventBody::MeetingHeld(MeetingHeld {
                staff: staff_ids.iter().map(|s| staff(s)).collect(),
                contact_ids: contacts.iter().map(|c| contact_id(c)).collect(),
                kind,
                topic: Personal::clear("review"),
                notes: Personal::default(),
            }),
        );
    }

    fn gift(&mut self, at: i64, giver: &str, to: &str, minor: i64, currency: &str, approval: Option<&str>) {
        self.push(
            at,
            EventBody::GiftGiven(GiftGiven {
                giver: staff(giver),
                recipient: contact_id(to),
                description: Personal::clear("dinner"),
                value: Money::new(minor, Currency::parse(currency).unwrap()).unwrap(),
                approval_ref: approval.map(label),
            }),
        );
    }

    fn retract(&mut self, at: i64, target: EventId) {
        self.push(at, EventBody::EventRetracted(EventRetracted { target, reason: label("wrong contact") }));
    }

    fn folded(&self) -> Vec<Folded<'_>> {
        self.events
            .iter()
            .enumerate()
            .map(|(i, event)| Folded { event, version: i as u64 + 1, position: i as u64 + 1, recorded_at: day(1_000) })
            .collect()
    }

    /// Folds event by event, replaying at retractions as the projector does.
    fn project(&self, rules: &RuleSet) -> AccountProjection {
        self.project_as("acme", rules)
    }

    /// [`Stream::project`] for the account `id`.
    fn project_as(&self, id: &str, rules: &RuleSet) -> AccountProjection {
        let folded = self.folded();
        let id = AccountId::parse(id, &limits()).unwrap();
        let mut projection = AccountProjection::open(id.clone(), folded[0]).unwrap();
        for (i, f) in folded.iter().enumerate().skip(1) {
            if matches!(f.event.body, EventBody::EventRetracted(_)) {
                projection = AccountProjection::replay(id.clone(), &folded[..=i], rules).unwrap();
            } else {
                projection.apply(*f, rules);
            }
        }
        projection
    }
}

/// The default rule set, after checking the numbers the expectations below are worked from.
fn rules() -> RuleSet {
    let rules = RuleSet::default_rules();
    assert_eq!(
        (rules.key_relationship.support_weight, rules.key_relationship.intimacy_weight),
        (0.6, 0.4),
        "the expectations assume stance 0.6 and closeness 0.4"
    );
    assert_eq!(rules.key_relationship.half_life_days, 180.0);
    assert_eq!(
        (
            rules.general_relationship.coverage_weight,
            rules.general_relationship.breadth_weight,
            rules.general_relationship.breadth_target
        ),
        (0.6, 0.4, 5)
    );
    let h = &rules.health;
    assert_eq!(
        (h.key_relationship, h.general_relationship, h.organisational_relationship, h.personalisation_safety),
        (0.35, 0.25, 0.2, 0.2)
    );
    assert_eq!((h.coordination, h.plan_attainment), (0.1, 0.1));
    let o = &rules.organisational_relationship;
    assert_eq!((o.meeting_points.visit, o.iron_triangle_points, o.executive_cadence_points), (1.0, 10.0, 5.0));
    let k = &rules.key_relationship;
    assert_eq!((k.cadence_points, k.competition_points), (10.0, 10.0));
    let c = &rules.cadence;
    assert_eq!(
        (c.key_contact_days.S, c.key_contact_days.A, c.key_contact_days.B, c.key_contact_days.C),
        (14.0, 30.0, 60.0, 90.0)
    );
    assert_eq!((c.executive_days.S, c.executive_days.C), (90.0, 730.0));
    assert_eq!((rules.coordination.team_weight, rules.coordination.units_weight), (0.6, 0.4));
    rules
}

/// The iron triangle's points of a team of the owner alone (sales): a third of 10.
const OWNER_ONLY_TRIANGLE: f64 = 10.0 / 3.0;

/// Health's weights without plans: the six scores' weights, summed.
const HEALTH_WEIGHTS: f64 = 0.35 + 0.25 + 0.2 + 0.2 + 0.1;

fn close(actual: f64, expected: f64) {
    assert!((actual - expected).abs() < 0.005 + 1e-9, "{actual} is not {expected} (to the hundredth)");
}

#[test]
fn a_key_contact_turning_from_opponent_to_coach() {
    let rules = rules();
    let mut stream = Stream::opened("alice");
    stream.key_contact("k.li", "Finance");
    stream.signal(10, "k.li", -2, 1);
    let before = scores(&stream.project(&rules), &rules, day(10));
    // Opponent: stance (−2+2)/4 = 0; acquaintance: closeness 1/4; fresh, so no fade.
    close(before.key_relationship.value, 100.0 * (0.6 * 0.0 + 0.4 * 0.25));
    assert_eq!(before.key_relationship.value, 10.0);

    stream.signal(20, "k.li", 2, 3);
    let after = scores(&stream.project(&rules), &rules, day(20));
    // Coach: stance 1; trusted: closeness 3/4.
    assert_eq!(after.key_relationship.value, 100.0 * (0.6 * 1.0 + 0.4 * 0.75));
    assert_eq!(after.key_relationship.value, 90.0);
    let factor = &after.key_relationship.factors[0];
    assert_eq!(factor.key, "contact:k.li");
    assert!(factor.detail.contains("coach") && factor.detail.contains("trusted"), "{}", factor.detail);
}

#[test]
fn an_old_signal_counts_less() {
    let rules = rules();
    let mut stream = Stream::opened("alice");
    stream.key_contact("k.li", "Finance");
    stream.signal(20, "k.li", 2, 3);
    let projection = stream.project(&rules);
    // k.li was never met, so from day 90 (untiered: a 90-day cadence from being added) the
    // one key contact is past their cadence, which takes the whole 10 cadence points.
    let cadence = 10.0;
    // One half-life later: stance fades half-way to neutral (1 → 0.75), closeness to half.
    let one = scores(&projection, &rules, day(20 + 180));
    assert_eq!(one.key_relationship.value, 100.0 * (0.6 * 0.75 + 0.4 * 0.375) - cadence);
    assert_eq!(one.key_relationship.value, 50.0);
    assert_eq!(one.practice.cadence.overdue[0].days_overdue, 200 - 90);
    // Two half-lives: a quarter of the distance remains.
    let two = scores(&projection, &rules, day(20 + 360));
    assert_eq!(two.key_relationship.value, 100.0 * (0.6 * 0.625 + 0.4 * 0.1875) - cadence);
    assert_eq!(two.key_relationship.value, 35.0);
    // Years later the contact is a neutral stranger: 0.6 × 0.5.
    let old = scores(&projection, &rules, day(20 + 180 * 40));
    assert_eq!(old.key_relationship.value, 30.0 - cadence);
}

#[test]
fn a_retraction_removes_the_signal() {
    let rules = rules();
    let mut stream = Stream::opened("alice");
    stream.key_contact("k.li", "Finance");
    stream.signal(10, "k.li", -2, 1);
    let coach = stream.signal(20, "k.li", 2, 3);
    assert_eq!(scores(&stream.project(&rules), &rules, day(20)).key_relationship.value, 90.0);
    stream.retract(21, coach);
    let projection = stream.project(&rules);
    // Back to the opponent signal of day 10, eleven days old at day 21.
    let fade = (-11.0_f64 / 180.0).exp2();
    let expected = 100.0 * (0.6 * (0.5 + (0.0 - 0.5) * fade) + 0.4 * 0.25 * fade);
    close(scores(&projection, &rules, day(21)).key_relationship.value, expected);
    assert_eq!(projection.account.retracted.get(&coach), Some(&5), "retracted by the event at version 5");
    assert_eq!(projection.contacts[&contact_id("k.li")].assessments.len(), 1);
    assert_eq!(projection.account.version, 5, "the retracted signal is still a version of the stream");
}

fn four_key_contacts(stream: &mut Stream) {
    for (id, department) in [("k1", "Finance"), ("k2", "IT"), ("k3", "Operations"), ("k4", "Legal")] {
        stream.key_contact(id, department);
    }
}

#[test]
fn an_account_touched_only_by_its_owner_hangs_on_one_person() {
    let rules = rules();
    let mut stream = Stream::opened("alice");
    four_key_contacts(&mut stream);
    for (at, contact) in [(5, "k1"), (6, "k2"), (7, "k3"), (8, "k4")] {
        stream.meeting(at, &["alice"], &[contact], MeetingKind::Visit);
    }
    let s = scores(&stream.project(&rules), &rules, day(30));
    // Every key contact is held by alice alone.
    assert_eq!(s.personalisation_risk.value, 100.0);
    // All four departments touched (0.6 × 1), one of five people (0.4 × 1/5).
    assert_eq!(s.general_relationship.value, 100.0 * (0.6 * 1.0 + 0.4 * 0.2));
    // Four key contacts never assessed: each a neutral stranger, 0.6 × 0.5.
    assert_eq!(s.key_relationship.value, 30.0);
    // No tier; four visits at one point each, and the owner covers one role of three.
    close(s.organisational_relationship.value, 4.0 + OWNER_ONLY_TRIANGLE);
    // Every touch is the owner's: fully coordinated.
    assert_eq!(s.coordination.value, 100.0);
    close(
        s.health.value,
        (0.35 * 30.0 + 0.25 * 68.0 + 0.2 * 7.33 + 0.2 * (100.0 - 100.0) + 0.1 * 100.0) / HEALTH_WEIGHTS,
    );
    assert_eq!(s.at_risk.len(), 1, "risk 100 is above the threshold: {:?}", s.at_risk);

    let report = handover(&stream.project(&rules), &rules, day(30));
    assert_eq!(report.risk_if_owner_leaves, 100.0);
    assert!(report.contacts.iter().all(|c| c.only_through_owner));
}

#[test]
fn an_account_touched_by_five_people_across_four_departments_does_not() {
    let rules = rules();
    let mut stream = Stream::opened("alice");
    four_key_contacts(&mut stream);
    stream.meeting(5, &["alice", "bob"], &["k1", "k2"], MeetingKind::Visit);
    stream.meeting(6, &["carol", "dan"], &["k3", "k4"], MeetingKind::Visit);
    stream.meeting(7, &["erin", "alice"], &["k2", "k3"], MeetingKind::Visit);
    let s = scores(&stream.project(&rules), &rules, day(30));
    // Every key contact is in touch with at least two of our people.
    assert_eq!(s.personalisation_risk.value, 0.0);
    assert_eq!(s.general_relationship.value, 100.0);
    close(s.organisational_relationship.value, 3.0 + OWNER_ONLY_TRIANGLE);
    // Twelve reaches (two people × two contacts at each meeting), four of them alice's (the
    // owner's); bob, carol, dan and erin are not on the team. No business unit is known.
    assert_eq!((s.practice.coordination.touches, s.practice.coordination.team_touches), (12, 4));
    assert!(s.practice.coordination.flagged);
    close(s.coordination.value, 100.0 * (0.6 * 4.0 / 12.0 + 0.4 * 1.0));
    close(s.health.value, (0.35 * 30.0 + 0.25 * 100.0 + 0.2 * 6.33 + 0.2 * 100.0 + 0.1 * 60.0) / HEALTH_WEIGHTS);
    assert!(s.at_risk.is_empty(), "{:?}", s.at_risk);
    let report = handover(&stream.project(&rules), &rules, day(30));
    assert_eq!(report.risk_if_owner_leaves, 0.0);
}

#[test]
fn relationships_count_each_persons_touches_of_each_contact_in_the_risk_window() {
    let rules = rules();
    let mut stream = Stream::opened("alice");
    four_key_contacts(&mut stream);
    stream.meeting(5, &["alice", "bob"], &["k1", "k2"], MeetingKind::Visit);
    stream.meeting(9, &["alice"], &["k1"], MeetingKind::Visit);
    stream.gift(12, "bob", "k2", 5_000, "EUR", Some("GA-1"));
    let projection = stream.project(&rules);
    let held = |as_of| -> Vec<(String, String, u32, Timestamp)> {
        relationships(&projection, &rules, as_of)
            .into_iter()
            .map(|r| (r.staff.to_string(), r.contact.to_string(), r.touches, r.last))
            .collect()
    };
    // Two meetings with k1 for alice, one for bob; k2 met once by each, and bob's gift.
    assert_eq!(
        held(day(30)),
        [
            ("alice".into(), "k1".into(), 2, day(9)),
            ("alice".into(), "k2".into(), 1, day(5)),
            ("bob".into(), "k1".into(), 1, day(5)),
            ("bob".into(), "k2".into(), 2, day(12)),
        ]
    );
    // The 180-day window on day 188 keeps what happened from day 8 on: the second meeting
    // and the gift.
    assert_eq!(held(day(188)), [("alice".into(), "k1".into(), 1, day(9)), ("bob".into(), "k2".into(), 1, day(12))]);
    // Before anything happened, nothing is held.
    assert!(held(day(4)).is_empty());
}

#[test]
fn touches_leave_the_window() {
    let rules = rules();
    let mut stream = Stream::opened("alice");
    four_key_contacts(&mut stream);
    stream.meeting(5, &["alice"], &["k1"], MeetingKind::Visit);
    let projection = stream.project(&rules);
    // 180-day window: on day 185 the touch still counts, on day 186 it does not.
    let inside = scores(&projection, &rules, day(185));
    assert_eq!(inside.personalisation_risk.value, 25.0);
    close(inside.general_relationship.value, 100.0 * (0.6 * 0.25 + 0.4 * 0.2));
    let outside = scores(&projection, &rules, day(186));
    assert_eq!(outside.personalisation_risk.value, 0.0);
    assert_eq!(outside.general_relationship.value, 0.0);
    // Health fell by more than 10 points in 30 days only if it did: compare the two.
    let fallen = scores(&projection, &rules, day(200));
    assert!(fallen.health_before >= fallen.health.value);
}

#[test]
fn organisational_score_counts_tier_executive_meetings_and_outcomes_with_caps() {
    let rules = rules();
    let mut stream = Stream::opened("alice");
    stream.push(1, EventBody::TierAssigned(TierAssigned { tier: Tier::S, reason: label("strategic") }));
    for at in 10..14 {
        stream.meeting(at, &["ceo"], &[], MeetingKind::ExecutiveVisit);
    }
    stream.push(
        20,
        EventBody::OutcomeRecorded(OutcomeRecorded {
            kind: OutcomeKind::StrategicAgreement,
            title: label("framework agreement"),
            value: None,
            reference: label(""),
        }),
    );
    let s = scores(&stream.project(&rules), &rules, day(30));
    // S: 50; four executive visits at 10 = 40, capped at 30; a strategic agreement: 15; the
    // owner covers one role of the iron triangle.
    close(s.organisational_relationship.value, 50.0 + 30.0 + 15.0 + OWNER_ONLY_TRIANGLE);
    // A year and a day after the last meeting only the tier and the triangle are left, less
    // the executive cadence (S: an executive visit every 90 days; the last was on day 13).
    let later = scores(&stream.project(&rules), &rules, day(20 + 366));
    close(later.organisational_relationship.value, 50.0 + OWNER_ONLY_TRIANGLE - 5.0);
    assert_eq!(later.practice.cadence.executive_overdue_days, Some(20 + 366 - 13 - 90));
}

#[test]
fn gift_register_totals_and_flags() {
    let rules = rules();
    assert_eq!(rules.gifts.threshold["EUR"], 10_000);
    let mut stream = Stream::opened("alice");
    stream.key_contact("k1", "Finance");
    stream.gift(-400, "alice", "k1", 90_000, "EUR", Some("AP-1")); // outside the 365-day window
    stream.gift(10, "alice", "k1", 15_000, "EUR", Some("AP-2")); // above 100.00 EUR
    stream.gift(20, "bob", "k1", 5_000, "EUR", None); // no approval
    stream.gift(30, "bob", "k1", 700, "CHF", Some("AP-3")); // no CHF threshold
    let projection = stream.project(&rules);
    let register = gift_register(&projection, &rules, day(40), None);
    assert_eq!(register.gifts.len(), 3);
    assert_eq!(register.totals["EUR"], 15_000 + 5_000);
    assert_eq!(register.totals["CHF"], 700);
    assert_eq!(register.totals_by_contact[&contact_id("k1")]["EUR"], 20_000);
    let flags: Vec<&[GiftFlag]> = register.gifts.iter().map(|g| g.flags.as_slice()).collect();
    assert_eq!(
        flags,
        vec![&[GiftFlag::AboveThreshold(10_000)][..], &[GiftFlag::NoApproval][..], &[GiftFlag::NoThreshold][..]]
    );
    // The yearly totals keep everything: 2024 (day −400) and 2026.
    let years = &projection.gift_totals[&contact_id("k1")];
    assert_eq!(years[&2024]["EUR"], 90_000);
    assert_eq!(years[&2026]["EUR"], 20_000);
}

#[test]
fn old_records_are_dropped_beyond_the_horizon() {
    let rules = rules();
    let horizon_days = rules.horizon_nanos() / DAY;
    // The longest window, the contribution credit (and playbook follow) days, the trend.
    assert_eq!(horizon_days, 365 + 30 + 30);
    let mut stream = Stream::opened("alice");
    stream.meeting(1, &["alice"], &[], MeetingKind::Visit);
    stream.meeting(2, &["alice"], &[], MeetingKind::Visit);
    stream.meeting(2 + horizon_days, &["alice"], &[], MeetingKind::Visit);
    let projection = stream.project(&rules);
    assert_eq!(projection.meetings.iter().map(|m| m.at).collect::<Vec<_>>(), vec![day(2), day(2 + horizon_days)]);
    assert_eq!(projection.meetings_by_kind[&MeetingKind::Visit], 3);
}

#[test]
fn encoding_round_trips_and_digests_tell_builds_apart() {
    let rules = rules();
    let mut stream = Stream::opened("alice");
    four_key_contacts(&mut stream);
    stream.signal(3, "k1", 1, 2);
    stream.gift(4, "bob", "k2", 1_000, "EUR", None);
    let projection = stream.project(&rules);
    assert_eq!(decode(&encode(&projection)).unwrap(), projection);
    assert!(decode(&[9, 1, 2]).unwrap_err().to_string().contains("rebuild"));

    let digest = |rules: &RuleSet, p: &AccountProjection| {
        let mut digest = ProjectionDigest::new(rules, 7, day(10));
        digest.add(p);
        digest.finish()
    };
    assert_eq!(digest(&rules, &projection), digest(&rules, &stream.project(&rules)));
    let mut other = rules.clone();
    other.version = 2;
    other.key_relationship.support_weight = 0.9;
    assert_ne!(digest(&rules, &projection), digest(&other, &projection));

    // Parts worked out apart and added in order make the digest `add` makes.
    let mut second = Stream::opened("bob");
    four_key_contacts(&mut second);
    let second = second.project(&rules);
    let mut whole = ProjectionDigest::new(&rules, 7, day(10));
    let mut by_parts = whole.clone();
    whole.add(&projection);
    whole.add(&second);
    let parts = [by_parts.part(&projection), by_parts.part(&second)];
    for part in parts {
        by_parts.add_part(part);
    }
    assert_eq!(by_parts.finish(), whole.finish());
}

#[test]
fn comparing_rule_sets_names_the_factors_that_moved() {
    let rules = rules();
    let mut heavier = rules.clone();
    heavier.version = 2;
    heavier.key_relationship.support_weight = 0.9;
    heavier.key_relationship.intimacy_weight = 0.1;
    let mut stream = Stream::opened("alice");
    stream.key_contact("k.li", "Finance");
    stream.signal(10, "k.li", 2, 0);
    let projection = stream.project(&rules);
    let movement = compare(&projection, &rules, &projection, &heavier, day(10));
    // Coach and stranger: 100 × 0.6 = 60 before, 100 × 0.9 = 90 after.
    assert_eq!(movement.before.key_relationship.value, 60.0);
    assert_eq!(movement.after.key_relationship.value, 90.0);
    assert_eq!(movement.largest_change, 30.0);
    assert_eq!(movement.factors[0], (ScoreKind::KeyRelationship, "contact:k.li".to_owned(), 60.0, 90.0));
}

// ---------------------------------------------------------------------------------------------
// Rule files: each kind of mistake has its own error, naming the key.

fn with(from: &str, to: &str) -> String {
    assert!(DEFAULT_RULES.contains(from), "{from:?} is not in the default rules");
    DEFAULT_RULES.replacen(from, to, 1)
}

#[test]
fn the_default_rule_set_loads() {
    let rules = RuleSet::parse(DEFAULT_RULES).unwrap();
    assert_eq!(rules.id(), "default@1");
    // Re-reading its own TOML gives the same rule set and fingerprint.
    let again = RuleSet::parse(&rules.to_toml()).unwrap();
    assert_eq!(again, rules);
    assert_eq!(again.fingerprint(), rules.fingerprint());
}

#[test]
fn each_kind_of_mistake_in_a_rule_file_has_its_own_error() {
    let cases: Vec<(&str, String, &[&str])> = vec![
        ("not TOML", with("name = \"default\"", "name = \"default"), &["parse", "line"]),
        ("an unknown key", with("half_life_days = 180.0", "half_life_days = 180.0\nhalf_lfe = 3"), &["half_lfe"]),
        ("a missing key", with("breadth_target = 5", ""), &["breadth_target"]),
        ("a wrong type", with("window_days = 180.0      #", "window_days = \"half a year\" #"), &["window_days"]),
        (
            "a window of 0 days",
            with("window_days = 180.0      #", "window_days = 0.0 #"),
            &["general_relationship.window_days", "above 0"],
        ),
        (
            "a negative weight",
            with("support_weight = 0.6", "support_weight = -0.6"),
            &["key_relationship.support_weight", "at least 0"],
        ),
        (
            "all weights 0",
            with("coverage_weight = 0.6", "coverage_weight = 0.0").replacen(
                "breadth_weight = 0.4",
                "breadth_weight = 0.0",
                1,
            ),
            &["general_relationship", "all weights at 0"],
        ),
        ("points above 100", with("S = 50.0", "S = 150.0"), &["organisational_relationship.tier_base.S", "0 to 100"]),
        ("an unknown currency", with("EUR = 10000   #", "EUX = 10000   #"), &["gifts.threshold.EUX", "currency"]),
        ("a threshold of 0", with("EUR = 10000   #", "EUR = 0   #"), &["gifts.threshold.EUR", "above 0"]),
        ("a bad name", with("name = \"default\"", "name = \"my rules\""), &["name", "letters"]),
        ("version 0", with("version = 1", "version = 0"), &["version", "start at 1"]),
        ("a breadth target of 0", with("breadth_target = 5", "breadth_target = 0"), &["breadth_target", "1 or more"]),
        ("an unknown tier", with("C = 10.0", "C = 10.0\nD = 5.0"), &["D"]),
        ("a missing table", with("[personalisation_risk]\nwindow_days = 180.0", ""), &["personalisation_risk"]),
    ];
    let mut messages = std::collections::BTreeSet::new();
    for (what, text, needles) in cases {
        let error = RuleSet::parse(&text).expect_err(what).to_string();
        for needle in needles {
            assert!(error.contains(needle), "{what}: {error:?} should mention {needle:?}");
        }
        assert!(messages.insert(error.clone()), "{what}: the same message as another mistake: {error}");
    }
}
#[test]
fn whole_numbers_are_accepted_where_numbers_are_expected() {
    let rules = RuleSet::parse(&with("half_life_days = 180.0", "half_life_days = 90")).unwrap();
    assert_eq!(rules.key_relationship.half_life_days, 90.0);
}

/// Today's default rule file as it was before rule files had a format: it must load forever,
/// as the same rule set.
const FORMAT_1_FIXTURE: &str = include_str!("../../../rules/fixtures/format-1.toml");

#[test]
fn a_format_1_rule_file_loads_forever() {
    assert!(!FORMAT_1_FIXTURE.contains("format ="), "the fixture is a file from before formats");
    let resolved = RuleSet::resolve(FORMAT_1_FIXTURE).unwrap();
    assert_eq!(resolved.format, 1);
    assert_eq!(resolved.rules, RuleSet::default_rules());
    assert_eq!(resolved.rules.fingerprint(), RuleSet::default_rules().fingerprint());
    // Keys added by later formats, and only those, took their defaults.
    let later: Vec<&str> = ADDED_KEYS.iter().map(|k| k.key).collect();
    assert_eq!(resolved.defaulted.iter().map(|k| k.key).collect::<Vec<_>>(), later);
}

#[test]
fn a_checkpoint_stored_before_rule_formats_resumes() {
    // Written by the code of commit ee6f964: `Checkpoint::encode` of the default rules at
    // position 284, recorded at 1_767_225_600_123_456_789 ns.
    let bytes = include_bytes!("../../../tests/fixtures/checkpoints/default-1-at-284.bin");
    let (checkpoint, rules) = Checkpoint::decode(bytes).unwrap();
    assert_eq!(checkpoint.position, 284);
    // Its accounts were of encoding 3, which this build rebuilds rather than reads.
    assert_eq!(checkpoint.encoding, 3);
    assert_eq!(checkpoint.recorded_at, Timestamp::from_unix_nanos(1_767_225_600_123_456_789));
    assert_eq!(rules, RuleSet::default_rules());
    assert_eq!(rules.id(), "default@1");
}

#[test]
fn a_rule_file_states_its_format() {
    assert!(DEFAULT_RULES.contains(&format!("\nformat = {FORMAT}\n")), "the shipped file states its format");
    assert!(RuleSet::default_rules().to_toml().starts_with(&format!("format = {FORMAT}\n")));
    let cases = [
        (with("format = 2", "format = 99"), "format", "reads rule formats 1 to"),
        ("format = 0\n".to_owned() + DEFAULT_RULES.replacen("format = 2\n", "", 1).as_str(), "format", "is 0"),
        ("format = \"one\"\n".to_owned() + DEFAULT_RULES.replacen("format = 2\n", "", 1).as_str(), "format", "\"one\""),
    ];
    for (text, key, phrase) in cases {
        let error = RuleSet::parse(&text).unwrap_err();
        assert!(
            matches!(&error, RuleSetError::Invalid { key: k, reason } if k == key && reason.contains(phrase)),
            "{error}"
        );
    }
}

/// The format mechanism, with a format 2 of the test's own: it adds a top-level key and a key
/// in a nested table, each with a default.
#[test]
fn older_rule_files_take_the_defaults_of_later_formats_and_may_not_use_their_keys() {
    use crate::rules::{file_format, fill_defaults};
    const LATER: &[AddedKey] = &[
        AddedKey { format: 2, key: "cadence_days", default: "30.0" },
        AddedKey { format: 2, key: "health.plan_attainment", default: "0.0" },
        AddedKey { format: 3, key: "plans.window_days", default: "90" },
    ];
    let table = |text: &str| text.parse::<toml::Table>().unwrap();

    // No format is format 1; a format this build does not read is refused.
    assert_eq!(file_format(&table("name = \"x\""), 2).unwrap(), 1);
    assert_eq!(file_format(&table("format = 2"), 2).unwrap(), 2);
    assert!(file_format(&table("format = 3"), 2).unwrap_err().to_string().contains("reads rule formats 1 to 2"));

    // A format-1 file gets every later key's default, in nested tables too, and the format
    // it resolves to.
    let mut one = table("format = 1\n[health]\nkey_relationship = 0.35\n");
    let defaulted = fill_defaults(&mut one, 1, LATER).unwrap();
    assert_eq!(defaulted, LATER);
    assert_eq!(one["cadence_days"].as_float(), Some(30.0));
    assert_eq!(one["health"]["plan_attainment"].as_float(), Some(0.0));
    assert_eq!(one["health"]["key_relationship"].as_float(), Some(0.35), "what the file gave stays");
    assert_eq!(one["plans"]["window_days"].as_integer(), Some(90));
    assert_eq!(one["format"].as_integer(), Some(i64::from(FORMAT)));

    // A format-2 file gives format 2's keys itself; only format 3's are defaulted.
    let mut two = table("format = 2\ncadence_days = 14.0\n[health]\nplan_attainment = 0.1\n");
    let defaulted = fill_defaults(&mut two, 2, LATER).unwrap();
    assert_eq!(defaulted.iter().map(|k| k.key).collect::<Vec<_>>(), ["plans.window_days"]);
    assert_eq!(two["cadence_days"].as_float(), Some(14.0));

    // A format-1 file may not give a key format 2 added: it says which format to state.
    for text in ["cadence_days = 7.0\n", "[health]\nplan_attainment = 0.5\n"] {
        let error = fill_defaults(&mut table(text), 1, LATER).unwrap_err().to_string();
        assert!(error.contains("was added in rule format 2") && error.contains("set format = 2"), "{error}");
    }
}

mod portfolio;
mod practice;
