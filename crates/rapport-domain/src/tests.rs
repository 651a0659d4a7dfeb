//! Unit tests of the fold ([`Account`]) and the gate ([`decide`]): pure, no I/O, time fixed.

use std::collections::BTreeMap;

use crate::*;

// ---------------------------------------------------------------------------------------------
// Builders: events from plain values. Event ids are numbered; times are whole days.

const DAY: i64 = 86_400 * 1_000_000_000;

fn day(n: i64) -> Timestamp {
    Timestamp::from_unix_nanos(1_735_689_600 * 1_000_000_000 + n * DAY)
}

fn id(n: u8) -> EventId {
    let mut bytes = [0u8; 16];
    bytes[15] = n;
    bytes[6] = 0x40; // A version-4 shape, like a client's id.
    EventId::from_bytes(bytes)
}

fn staff(s: &str) -> StaffId {
    StaffId::parse(s, &Limits::default()).unwrap()
}

fn contact_id(s: &str) -> ContactId {
    ContactId::parse(s, &Limits::default()).unwrap()
}

fn label(s: &str) -> Label {
    Label::parse(s, &Limits::default()).unwrap()
}

fn note(s: &str) -> Note {
    Note::parse(s, &Limits::default()).unwrap()
}

fn acme() -> AccountId {
    AccountId::parse("acme", &Limits::default()).unwrap()
}

fn ev(n: u8, at: i64, body: EventBody) -> Event {
    Event {
        id: id(n),
        occurred_at: day(at),
        actor: staff("li.wei"),
        source: SourceSystem::parse("crm", &Limits::default()).unwrap(),
        body,
    }
}

fn opened(owner: &str) -> EventBody {
    EventBody::AccountOpened(AccountOpened { name: label("Acme"), industry: label("Steel"), owner: staff(owner) })
}

fn added(contact: &str, department: &str) -> EventBody {
    EventBody::ContactAdded(ContactAdded {
        contact_id: contact_id(contact),
        name: Personal::clear(format!("Person {contact}")),
        title: Personal::clear("CIO"),
        department: label(department),
        role: ContactRole::DecisionMaker,
        key: true,
    })
}

fn left(contact: &str) -> EventBody {
    EventBody::ContactLeft(ContactLeft { contact_id: contact_id(contact), reason: label("retired") })
}

fn signal(contact: &str, support: i32, intimacy: u32) -> EventBody {
    EventBody::SupportSignal(SupportSignal {
        contact_id: contact_id(contact),
        support: Support::new(support).unwrap(),
        intimacy: Intimacy::new(intimacy).unwrap(),
        evidence: Personal::clear("observed"),
    })
}

fn meeting(by: &[&str], contacts: &[&str]) -> EventBody {
    EventBody::MeetingHeld(MeetingHeld {
        staff: by.iter().map(|s| staff(s)).collect(),
        contact_ids: contacts.iter().map(|c| contact_id(c)).collect(),
        kind: MeetingKind::Visit,
        topic: Personal::clear("Review"),
        notes: Personal::clear("notes"),
    })
}

fn gift(giver: &str, contact: &str) -> EventBody {
    EventBody::GiftGiven(GiftGiven {
        giver: staff(giver),
        recipient: contact_id(contact),
        description: Personal::clear("Book"),
        value: Money::new(2_000, Currency::parse("EUR").unwrap()).unwrap(),
        approval_ref: None,
    })
}

fn owner_changed(from: &str, to: &str) -> EventBody {
    EventBody::OwnerChanged(OwnerChanged {
        from_owner: staff(from),
        to_owner: staff(to),
        reason: label("rotation"),
        handover_note: note("handed over"),
    })
}

fn joined(member: &str) -> EventBody {
    EventBody::TeamMemberJoined(TeamMemberJoined {
        member: staff(member),
        role: TeamRole::Solution,
        business_unit: Label::default(),
    })
}

fn planned(plan: &str, contact: &str, due: i64) -> EventBody {
    EventBody::RelationshipPlanned(RelationshipPlanned {
        plan_id: PlanId::parse(plan, &Limits::default()).unwrap(),
        contact_id: contact_id(contact),
        target: PlanTarget { support: Support::new(2).unwrap(), intimacy: Intimacy::new(3).unwrap() },
        due_at: day(due),
        owner: staff("li.wei"),
        actions: Personal::clear("monthly reviews"),
        goal: label("renewal"),
        goal_reference: label(""),
    })
}

fn revised(plan: &str, due: Option<i64>) -> EventBody {
    EventBody::PlanRevised(PlanRevised {
        plan_id: PlanId::parse(plan, &Limits::default()).unwrap(),
        target_support: None,
        target_intimacy: None,
        due_at: due.map(day),
        reason: label("budget moved"),
    })
}

fn closed(plan: &str) -> EventBody {
    EventBody::PlanClosed(PlanClosed {
        plan_id: PlanId::parse(plan, &Limits::default()).unwrap(),
        outcome: PlanOutcome::Abandoned,
        reason: label("deal lost"),
    })
}

fn competitor(contact: Option<&str>) -> EventBody {
    EventBody::CompetitorSignal(CompetitorSignal {
        competitor: label("Globex"),
        contact_id: contact.map(contact_id),
        stance: Support::new(1).unwrap(),
        evidence: Personal::clear("prefers their roadmap"),
    })
}

fn team_left(member: &str) -> EventBody {
    EventBody::TeamMemberLeft(TeamMemberLeft { member: staff(member), reason: label("moved") })
}

fn retract(target: u8) -> EventBody {
    EventBody::EventRetracted(EventRetracted { target: id(target), reason: label("mistake") })
}

fn fold(events: &[Event]) -> Account {
    Account::replay(acme(), events).expect("the stream opens the account")
}

// ---------------------------------------------------------------------------------------------
// The fold.

#[test]
fn owner_history_records_each_tenure_with_its_reason() {
    let account = fold(&[
        ev(1, 0, opened("li.wei")),
        ev(2, 10, owner_changed("li.wei", "anna.berg")),
        ev(3, 30, owner_changed("anna.berg", "sam.lee")),
    ]);
    assert_eq!(account.owner, staff("sam.lee"));
    let tenures: Vec<(StaffId, Timestamp, Option<Timestamp>)> =
        account.owner_history.iter().map(|t| (t.owner.clone(), t.from, t.to)).collect();
    assert_eq!(
        tenures,
        vec![
            (staff("li.wei"), day(0), Some(day(10))),
            (staff("anna.berg"), day(10), Some(day(30))),
            (staff("sam.lee"), day(30), None)
        ]
    );
    assert_eq!(account.owner_history[1].reason, label("rotation"));
    assert_eq!((account.version, account.last_activity_at), (3, day(30)));
}

#[test]
fn the_latest_signal_by_business_time_wins_and_ties_go_to_the_later_event() {
    /// A signal as (day, support, intimacy); the expected assessment as (support, intimacy, day).
    type Signal = (i64, i32, u32);
    type Expected = (i8, u8, i64);
    let cases: &[(&[Signal], Expected)] = &[
        (&[(5, -1, 1)], (-1, 1, 5)),
        (&[(5, -1, 1), (9, 2, 3)], (2, 3, 9)),
        (&[(9, 2, 3), (5, -1, 1)], (2, 3, 9)), // An old observation arriving late does not win.
        (&[(7, 0, 0), (7, 1, 4)], (1, 4, 7)),  // Same time: the later in the stream wins.
    ];
    for (signals, (support, intimacy, at)) in cases {
        let mut events = vec![ev(1, 0, opened("li.wei")), ev(2, 1, added("c1", "IT"))];
        for (n, (when, s, i)) in signals.iter().enumerate() {
            events.push(ev(3 + n as u8, *when, signal("c1", *s, *i)));
        }
        let assessment = fold(&events).contacts[&contact_id("c1")].assessment.expect("assessed");
        assert_eq!(
            (assessment.support.value(), assessment.intimacy.value(), assessment.at),
            (*support, *intimacy, day(*at)),
            "{signals:?}"
        );
    }
}

#[test]
fn last_touch_is_the_latest_meeting_lead_or_gift_giver() {
    let account = fold(&[
        ev(1, 0, opened("li.wei")),
        ev(2, 1, added("c1", "IT")),
        ev(3, 1, added("c2", "Finance")),
        ev(4, 5, meeting(&["sam.lee", "li.wei"], &["c1", "c2"])),
        ev(5, 8, gift("anna.berg", "c2")),
        ev(6, 3, meeting(&["ola.nord"], &["c1"])), // Older than the touch already known.
    ]);
    let touch = |c: &str| account.contacts[&contact_id(c)].last_touch.clone().unwrap();
    assert_eq!((touch("c1").by, touch("c1").at, touch("c1").kind), (staff("sam.lee"), day(5), TouchKind::Meeting));
    assert_eq!((touch("c2").by, touch("c2").at, touch("c2").kind), (staff("anna.berg"), day(8), TouchKind::Gift));
    assert_eq!(account.last_activity_at, day(8), "activity is the latest business time, not the last event");
}

#[test]
fn contacts_and_team_come_and_go() {
    let account = fold(&[
        ev(1, 0, opened("li.wei")),
        ev(2, 1, added("c1", "IT")),
        ev(3, 2, added("c2", "Finance")),
        ev(4, 3, joined("sam.lee")),
        ev(5, 4, joined("ola.nord")),
        ev(6, 5, signal("c2", 1, 2)),
        ev(7, 6, left("c2")),
        ev(8, 7, team_left("ola.nord")),
    ]);
    let current: Vec<&str> = account.current_contacts().map(|c| c.id.as_str()).collect();
    assert_eq!(current, vec!["c1"]);
    let c2 = &account.contacts[&contact_id("c2")];
    assert_eq!(c2.left_at, Some(day(6)), "a former contact is kept, with when they left");
    assert!(c2.assessment.is_some(), "and what we knew of them");
    assert_eq!(account.team.keys().cloned().collect::<Vec<_>>(), vec![staff("sam.lee")]);
    assert_eq!(account.team[&staff("sam.lee")].since, day(3));
}

#[test]
fn replay_leaves_out_retracted_events_but_counts_their_versions() {
    let events = [
        ev(1, 0, opened("li.wei")),
        ev(2, 1, added("c1", "IT")),
        ev(3, 2, signal("c1", 1, 2)),
        ev(4, 3, signal("c1", -2, 0)),
        ev(5, 4, owner_changed("li.wei", "anna.berg")),
        ev(6, 5, retract(4)),
        ev(7, 5, retract(5)),
    ];
    let account = fold(&events);
    let assessment = account.contacts[&contact_id("c1")].assessment.unwrap();
    assert_eq!((assessment.support.value(), assessment.intimacy.value()), (1, 2), "the earlier signal is back");
    assert_eq!(account.owner, staff("li.wei"), "the retracted handover never happened");
    assert_eq!(account.owner_history.len(), 1);
    assert_eq!(account.version, 7);
    assert_eq!(account.retracted.keys().copied().collect::<Vec<_>>(), vec![id(4), id(5)]);
}

#[test]
fn replay_equals_applying_one_by_one_without_retractions() {
    let events = [
        ev(1, 0, opened("li.wei")),
        ev(2, 1, added("c1", "IT")),
        ev(3, 4, meeting(&["li.wei"], &["c1"])),
        ev(4, 2, signal("c1", 2, 4)),
        ev(5, 6, owner_changed("li.wei", "anna.berg")),
        ev(6, 7, gift("anna.berg", "c1")),
    ];
    let mut applied = Account::open(acme(), &events[0]).unwrap();
    for event in &events[1..] {
        applied.apply(event);
    }
    assert_eq!(applied, fold(&events));
    assert_eq!(Account::replay(acme(), &events[1..]), None, "a stream must start with account_opened");
}

// ---------------------------------------------------------------------------------------------
// The gate.

/// The state every decide case starts from: acme, owner li.wei, contacts c1 (current) and c3
/// (left), team member sam.lee; event 90 is a recorded signal of acme, 91 opened acme, 92 is a
/// recorded retraction of acme, 93 belongs to globex.
fn prior() -> Account {
    fold(&[
        ev(91, 0, opened("li.wei")),
        ev(2, 1, added("c1", "IT")),
        ev(3, 1, added("c3", "Legal")),
        ev(4, 2, left("c3")),
        ev(5, 2, joined("sam.lee")),
        ev(90, 3, signal("c1", 1, 1)),
    ])
}

fn recorded() -> BTreeMap<EventId, RecordedFacts> {
    let globex = AccountId::parse("globex", &Limits::default()).unwrap();
    BTreeMap::from([
        (id(90), RecordedFacts { account_id: acme(), kind: EventKind::SupportSignal }),
        (id(91), RecordedFacts { account_id: acme(), kind: EventKind::AccountOpened }),
        (id(92), RecordedFacts { account_id: acme(), kind: EventKind::EventRetracted }),
        (id(93), RecordedFacts { account_id: globex, kind: EventKind::MeetingHeld }),
    ])
}

/// `(case, account exists?, batch, expected violation field or None for success)`
type Case = (&'static str, bool, Vec<Event>, Option<&'static str>);

fn decide_cases() -> Vec<Case> {
    let too_many: Vec<Event> =
        (0..=Limits::default().max_events_per_append).map(|_| ev(10, 4, signal("c1", 0, 0))).collect();
    let mut future = ev(10, 4, signal("c1", 0, 0));
    future.occurred_at = day(400).saturating_add_nanos(25 * 3_600 * 1_000_000_000);
    let mut long_meeting = meeting(&["li.wei"], &["c1"]);
    if let EventBody::MeetingHeld(m) = &mut long_meeting {
        m.staff = (0..=100).map(|n| staff(&format!("s{n}"))).collect();
    }
    vec![
        ("valid batch", true, vec![ev(10, 4, signal("c1", 2, 3)), ev(11, 5, meeting(&["li.wei"], &["c1"]))], None),
        ("opening a new stream", false, vec![ev(10, 0, opened("li.wei")), ev(11, 1, added("c9", "IT"))], None),
        (
            "contact added earlier in the batch",
            true,
            vec![ev(10, 4, added("c9", "IT")), ev(11, 5, signal("c9", 1, 1))],
            None,
        ),
        ("returning contact", true, vec![ev(10, 4, added("c3", "Legal"))], None),
        ("empty batch", true, vec![], Some("events")),
        ("too many events", true, too_many, Some("events")),
        (
            "repeated id",
            true,
            vec![ev(10, 4, signal("c1", 0, 0)), ev(10, 5, signal("c1", 1, 0))],
            Some("events[1].event_id"),
        ),
        ("retraction mixed", true, vec![ev(10, 4, retract(90)), ev(11, 5, signal("c1", 0, 0))], Some("events[1]")),
        ("too far in the future", true, vec![future], Some("events[0].occurred_at")),
        ("meeting without staff", true, vec![ev(10, 4, meeting(&[], &["c1"]))], Some("events[0].meeting_held.staff")),
        (
            "meeting without contacts",
            true,
            vec![ev(10, 4, meeting(&["li.wei"], &[]))],
            Some("events[0].meeting_held.contact_ids"),
        ),
        (
            "meeting staff listed twice",
            true,
            vec![ev(10, 4, meeting(&["li.wei", "li.wei"], &["c1"]))],
            Some("events[0].meeting_held.staff[1]"),
        ),
        (
            "meeting staff over the list limit",
            true,
            vec![ev(10, 4, long_meeting)],
            Some("events[0].meeting_held.staff"),
        ),
        (
            "empty contact update",
            true,
            vec![ev(
                10,
                4,
                EventBody::ContactUpdated(ContactUpdated {
                    contact_id: contact_id("c1"),
                    name: None,
                    title: None,
                    department: None,
                    role: None,
                    key: None,
                }),
            )],
            Some("events[0].contact_updated"),
        ),
        (
            "owner to themselves",
            true,
            vec![ev(10, 4, owner_changed("li.wei", "li.wei"))],
            Some("events[0].owner_changed.to_owner"),
        ),
        ("first event not an opening", false, vec![ev(10, 4, signal("c1", 0, 0))], Some("events[0].support_signal")),
        ("second opening", true, vec![ev(10, 4, opened("li.wei"))], Some("events[0].account_opened")),
        ("unknown contact", true, vec![ev(10, 4, signal("c9", 0, 0))], Some("events[0].support_signal.contact_id")),
        (
            "contact who left",
            true,
            vec![ev(10, 4, gift("li.wei", "c3"))],
            Some("events[0].gift_given.recipient_contact_id"),
        ),
        (
            "contact who left earlier in the batch",
            true,
            vec![ev(10, 4, left("c1")), ev(11, 5, meeting(&["li.wei"], &["c1"]))],
            Some("events[1].meeting_held.contact_ids[0]"),
        ),
        ("contact added twice", true, vec![ev(10, 4, added("c1", "IT"))], Some("events[0].contact_added.contact_id")),
        (
            "owner change from a non-owner",
            true,
            vec![ev(10, 4, owner_changed("anna.berg", "ola.nord"))],
            Some("events[0].owner_changed.from_owner"),
        ),
        (
            "second owner change starts from the new owner",
            true,
            vec![ev(10, 4, owner_changed("li.wei", "anna.berg")), ev(11, 5, owner_changed("li.wei", "ola.nord"))],
            Some("events[1].owner_changed.from_owner"),
        ),
        (
            "team member joins twice",
            true,
            vec![ev(10, 4, joined("sam.lee"))],
            Some("events[0].team_member_joined.member"),
        ),
        (
            "non-member leaves the team",
            true,
            vec![ev(10, 4, team_left("ola.nord"))],
            Some("events[0].team_member_left.member"),
        ),
        ("retraction of a recorded event", true, vec![ev(10, 4, retract(90))], None),
        (
            "retraction of an unknown event",
            true,
            vec![ev(10, 4, retract(99))],
            Some("events[0].event_retracted.event_id"),
        ),
        (
            "retraction of another account's event",
            true,
            vec![ev(10, 4, retract(93))],
            Some("events[0].event_retracted.event_id"),
        ),
        ("retraction of the opening", true, vec![ev(10, 4, retract(91))], Some("events[0].event_retracted.event_id")),
        ("retraction of a retraction", true, vec![ev(10, 4, retract(92))], Some("events[0].event_retracted.event_id")),
        (
            "a plan, revised, closed",
            true,
            vec![ev(10, 4, planned("p1", "c1", 60)), ev(11, 5, revised("p1", Some(90))), ev(12, 6, closed("p1"))],
            None,
        ),
        (
            "a plan due when it is made",
            true,
            vec![ev(10, 4, planned("p1", "c1", 4))],
            Some("events[0].relationship_planned.due_at"),
        ),
        (
            "a plan for a contact who left",
            true,
            vec![ev(10, 4, planned("p1", "c3", 60))],
            Some("events[0].relationship_planned.contact_id"),
        ),
        (
            "a plan id used twice",
            true,
            vec![ev(10, 4, planned("p1", "c1", 60)), ev(11, 5, planned("p1", "c1", 70))],
            Some("events[1].relationship_planned.plan_id"),
        ),
        (
            "a revision that changes nothing",
            true,
            vec![ev(10, 4, planned("p1", "c1", 60)), ev(11, 5, revised("p1", None))],
            Some("events[1].plan_revised"),
        ),
        (
            "a revision due before the plan",
            true,
            vec![ev(10, 4, planned("p1", "c1", 60)), ev(11, 5, revised("p1", Some(3)))],
            Some("events[1].plan_revised.due_at"),
        ),
        (
            "a revision of an unknown plan",
            true,
            vec![ev(10, 4, revised("p9", Some(90)))],
            Some("events[0].plan_revised.plan_id"),
        ),
        (
            "a closed plan closed again",
            true,
            vec![ev(10, 4, planned("p1", "c1", 60)), ev(11, 5, closed("p1")), ev(12, 6, closed("p1"))],
            Some("events[2].plan_closed.plan_id"),
        ),
        (
            "competitor signals about a contact and the organisation",
            true,
            vec![ev(10, 4, competitor(Some("c1"))), ev(11, 4, competitor(None))],
            None,
        ),
        (
            "a competitor signal about an unknown contact",
            true,
            vec![ev(10, 4, competitor(Some("c9")))],
            Some("events[0].competitor_signal.contact_id"),
        ),
        (
            "same event retracted twice",
            true,
            vec![ev(10, 4, retract(90)), ev(11, 4, retract(90))],
            Some("events[1].event_retracted.event_id"),
        ),
    ]
}

#[test]
fn decide_accepts_valid_batches_and_names_the_field_of_every_violation() {
    let now = day(400);
    let limits = Limits::default();
    let recorded = recorded();
    let context = AppendContext { now, limits: &limits, recorded: &recorded };
    let prior = prior();
    let mut failures = Vec::new();
    for (name, exists, batch, expected) in decide_cases() {
        let current = exists.then_some(&prior);
        let outcome = decide(current, &acme(), &batch, &context);
        match (outcome, expected) {
            (Ok(account), None) => {
                let before = if exists { prior.version } else { 0 };
                if account.version != before + batch.len() as u64 {
                    failures.push(format!(
                        "{name}: version {} after {} events on {before}",
                        account.version,
                        batch.len()
                    ));
                }
            }
            (Err(violation), Some(field)) if violation.field == field => {}
            (outcome, expected) => failures.push(format!("{name}: expected {expected:?}, got {outcome:?}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn decide_returns_the_account_after_the_batch() {
    let limits = Limits::default();
    let recorded = BTreeMap::new();
    let context = AppendContext { now: day(400), limits: &limits, recorded: &recorded };
    let batch = [ev(10, 4, owner_changed("li.wei", "anna.berg")), ev(11, 5, signal("c1", 2, 4))];
    let after = decide(Some(&prior()), &acme(), &batch, &context).unwrap();
    let mut expected = prior();
    expected.apply(&batch[0]);
    expected.apply(&batch[1]);
    assert_eq!(after, expected);
    assert_eq!((after.owner.as_str(), after.version), ("anna.berg", 8));
}

#[test]
fn each_event_reads_as_one_line_for_people() {
    let cases = [
        (opened("li.wei"), "\"Acme\" (Steel), owner li.wei"),
        (added("c1", "IT"), "c1 Person c1: CIO, IT, decision maker, key"),
        (left("c1"), "c1 left: retired"),
        (signal("c1", -2, 4), "c1: opponent (-2), trusted advisor (4): observed"),
        (meeting(&["li.wei", "sam.lee"], &["c1", "c2"]), "visit \"Review\": li.wei, sam.lee with c1, c2"),
        // Money as money (EUR has two minor digits), and a gift without approval says so.
        (gift("li.wei", "c1"), "li.wei to c1: Book, EUR 20.00, NO APPROVAL"),
        (owner_changed("li.wei", "anna.berg"), "li.wei -> anna.berg (rotation): handed over"),
        (joined("sam.lee"), "sam.lee joins as solution"),
        (team_left("sam.lee"), "sam.lee leaves: moved"),
        // id(3): byte 6 is 0x40 (the version nibble), byte 15 is 3.
        (retract(3), "retracts 00000000-0000-4000-0000-000000000003: mistake"),
    ];
    for (body, expected) in cases {
        assert_eq!(body.summary(), expected);
    }
}

// ---------------------------------------------------------------------------------------------
// Forgetting.

fn forgotten(contact: &str) -> EventBody {
    EventBody::ContactForgotten(ContactForgotten {
        contact_id: contact_id(contact),
        reason: label("DSR-1"),
        requested_by: staff("dpo"),
    })
}

#[test]
fn a_forgotten_contact_loses_name_and_title_keeps_stance_and_is_never_named_again() {
    let account = fold(&[
        ev(1, 0, opened("li.wei")),
        ev(2, 1, added("c1", "IT")),
        ev(3, 2, signal("c1", -1, 3)),
        ev(4, 3, forgotten("c1")),
    ]);
    let contact = &account.contacts[&contact_id("c1")];
    assert!(contact.forgotten);
    assert_eq!((&contact.name, &contact.title), (&Personal::Forgotten, &Personal::Forgotten));
    assert_eq!(contact.assessment.map(|a| (a.support.value(), a.intimacy.value())), Some((-1, 3)));
    assert_eq!(contact.department, label("IT"), "what identifies no one stays");

    let limits = Limits::default();
    let recorded = BTreeMap::new();
    let context = AppendContext { now: day(400), limits: &limits, recorded: &recorded };
    for (name, body) in [
        ("a signal", signal("c1", 1, 1)),
        ("a meeting", meeting(&["li.wei"], &["c1"])),
        ("a gift", gift("li.wei", "c1")),
        ("adding them again", added("c1", "IT")),
        ("leaving", left("c1")),
        ("forgetting again", forgotten("c1")),
    ] {
        let refused = decide(Some(&account), &acme(), &[ev(10, 4, body)], &context).expect_err(name);
        assert!(refused.reason.contains("was forgotten"), "{name}: {refused}");
    }
    let unknown = decide(Some(&account), &acme(), &[ev(10, 4, forgotten("c9"))], &context).unwrap_err();
    assert!(unknown.reason.contains("not a contact"), "{unknown}");
}

#[test]
fn personal_fields_name_whom_they_concern() {
    let body = meeting(&["li.wei"], &["c2", "c1", "c2"]);
    assert_eq!(body.data_subjects(), vec![contact_id("c1"), contact_id("c2")], "sorted, once each");
    assert_eq!(body.personal_fields().len(), 2, "topic and notes");
    assert!(meeting(&["li.wei"], &[]).personal_fields().is_empty(), "a meeting with no contact is about no one");
    assert_eq!(added("c1", "IT").personal_fields().len(), 2, "name and title");
    assert!(opened("li.wei").data_subjects().is_empty());
    assert!(gift("li.wei", "c1").names_contact(&contact_id("c1")));
    assert!(!gift("li.wei", "c1").names_contact(&contact_id("c2")));
    // Text shows in no Debug output: events reach logs and failure messages.
    let shown = format!("{:?}", ev(1, 0, added("c1", "IT")));
    assert!(!shown.contains("Person c1") && shown.contains("bytes"), "{shown}");
}
