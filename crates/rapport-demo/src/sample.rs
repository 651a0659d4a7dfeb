//! The sample story `rapport demo` pushes.

use rapport_proto::{v1 as pb, wkt};

use crate::events::*;
use crate::rng::Rng;
use crate::words;

const DAY: i64 = 86_400;
const MONTH: i64 = 30 * DAY;
const MONTHS: i64 = 18;

/// One customer account of the story.
struct Profile {
    id: &'static str,
    name: &'static str,
    industry: &'static str,
    tier: pb::Tier,
    tier_reason: &'static str,
    owner: &'static str,
    team: &'static [(&'static str, pb::TeamRole)],
    currency: &'static str,
    /// (id, name, title, department, role, key)
    contacts: &'static [(&'static str, &'static str, &'static str, &'static str, pb::ContactRole, bool)],
}

use pb::ContactRole as R;
use pb::TeamRole as T;

/// Our people's business units. Raj Patel, of Cloud Services, is on no account team.
const UNITS: &[(&str, &str)] = &[
    ("li.wei", "Enterprise Sales"),
    ("anna.berg", "Enterprise Sales"),
    ("ben.adams", "Retail Sales"),
    ("yuki.mori", "Automotive"),
    ("nina.frost", "Healthcare"),
    ("sam.lee", "Solutions"),
    ("tom.keller", "Solutions"),
    ("wen.zhao", "Solutions"),
    ("ola.nord", "Delivery"),
    ("maria.santos", "Executive Office"),
    ("omar.rahim", "Executive Office"),
    ("raj.patel", "Cloud Services"),
];

fn unit(staff: &str) -> &'static str {
    UNITS.iter().find(|(s, _)| *s == staff).map_or("Enterprise Sales", |(_, unit)| unit)
}

/// Contacts whose stance only the story moves, never the routine drift: Nordwind's CIO, won
/// over; Helios's CTO, whose plan falls behind; Kappa's new head of infrastructure, whom a
/// competitor holds closer than we do.
const SCRIPTED: &[&str] = &["k.hartmann", "h.solberg", "g.meyer"];

/// Tianhe's CFO goes unmet after the MoU, past the cadence of a tier-S key contact.
fn unmet(account: &str, month: i64, contact: &str) -> bool {
    account == "tianhe-motors" && month >= 12 && contact == "m.zhang"
}

const PROFILES: &[Profile] = &[
    Profile {
        id: "nordwind-logistics",
        name: "Nordwind Logistics AG",
        industry: "Logistics",
        tier: pb::Tier::A,
        tier_reason: "Second-largest freight network in the region; expansion into cold chain planned",
        owner: "li.wei",
        team: &[("sam.lee", T::Solution), ("maria.santos", T::ExecutiveSponsor)],
        currency: "EUR",
        contacts: &[
            ("k.hartmann", "Katrin Hartmann", "CIO", "IT", R::DecisionMaker, true),
            ("m.vogel", "Marco Vogel", "Head of Procurement", "Procurement", R::Gatekeeper, true),
            ("j.fischer", "Jonas Fischer", "CFO", "Finance", R::Approver, true),
            ("s.yilmaz", "Sofia Yilmaz", "Operations Lead", "Operations", R::User, false),
            ("l.dahl", "Lars Dahl", "Enterprise Architect", "IT", R::TechnicalEvaluator, false),
        ],
    },
    Profile {
        id: "helios-energy",
        name: "Helios Energy SE",
        industry: "Utilities",
        tier: pb::Tier::S,
        tier_reason: "Strategic: grid modernisation programme over five years",
        owner: "anna.berg",
        team: &[("ola.nord", T::Delivery), ("tom.keller", T::Solution)],
        currency: "EUR",
        contacts: &[
            ("e.petrova", "Elena Petrova", "CEO", "Executive Board", R::DecisionMaker, true),
            ("h.solberg", "Henrik Solberg", "CTO", "R&D", R::Influencer, true),
            ("f.haddad", "Fatima Haddad", "Category Manager", "Procurement", R::Gatekeeper, false),
            ("i.berg", "Ingrid Berg", "Plant Manager", "Operations", R::User, false),
        ],
    },
    Profile {
        id: "kappa-retail",
        name: "Kappa Retail Group",
        industry: "Retail",
        tier: pb::Tier::B,
        tier_reason: "Solid mid-size customer; limited growth expected",
        owner: "ben.adams",
        team: &[("nina.frost", T::Service)],
        currency: "GBP",
        contacts: &[
            ("o.brown", "Olivia Brown", "COO", "Operations", R::DecisionMaker, true),
            ("p.costa", "Pedro Costa", "IT Manager", "IT", R::Influencer, true),
            ("y.cohen", "Yara Cohen", "Buyer", "Procurement", R::User, false),
        ],
    },
    Profile {
        id: "tianhe-motors",
        name: "Tianhe Motors Co., Ltd.",
        industry: "Automotive",
        tier: pb::Tier::S,
        tier_reason: "Joint initiative on connected-vehicle platforms",
        owner: "yuki.mori",
        team: &[("li.wei", T::Sales), ("omar.rahim", T::ExecutiveSponsor), ("wen.zhao", T::Solution)],
        currency: "CNY",
        contacts: &[
            ("c.liu", "Chen Liu", "Head of R&D", "R&D", R::DecisionMaker, true),
            ("m.zhang", "Mei Zhang", "CFO", "Finance", R::Approver, true),
            ("r.iyer", "Ravi Iyer", "Lead Engineer", "R&D", R::TechnicalEvaluator, false),
            ("k.sato", "Kenji Sato", "General Counsel", "Legal", R::Gatekeeper, false),
        ],
    },
    Profile {
        id: "aurora-health",
        name: "Aurora Health Network",
        industry: "Healthcare",
        tier: pb::Tier::C,
        tier_reason: "Small footprint today; watch the hospital-group merger",
        owner: "nina.frost",
        team: &[],
        currency: "USD",
        contacts: &[
            ("a.okafor", "Amara Okafor", "CIO", "IT", R::DecisionMaker, true),
            ("t.nowak", "Tomasz Nowak", "Compliance Officer", "Legal", R::Gatekeeper, false),
        ],
    },
];

/// An account as the story has it so far.
struct Account {
    profile: &'static Profile,
    owner: &'static str,
    version: u64,
    contacts: Vec<Person>,
    team: Vec<&'static str>,
    /// Latest (support, intimacy) per contact id.
    stances: Vec<(String, i32, u32)>,
}

/// The sample: five accounts and their last eighteen months, as append requests to push in
/// order. `now` is the current time in Unix seconds; every event occurred before it. The same
/// seed and `now` give the same requests, event ids included.
pub fn sample(seed: u64, now: i64) -> Vec<pb::AppendRequest> {
    let mut rng = Rng::new(seed);
    // The last month begins three weeks before `now`, so its routine reaches into the last
    // days; no event is later than a day before `now`.
    let start = now - ((MONTHS - 1) * MONTH + 21 * DAY);
    let last = now - DAY;
    let mut accounts: Vec<Account> = PROFILES
        .iter()
        .map(|profile| Account {
            profile,
            owner: profile.owner,
            version: 0,
            contacts: Vec::new(),
            team: Vec::new(),
            stances: Vec::new(),
        })
        .collect();
    let mut requests = Vec::new();
    for month in 0..MONTHS {
        for (index, account) in accounts.iter_mut().enumerate() {
            let at = start + month * MONTH + index as i64 * DAY;
            let events =
                if month == 0 { opening(&mut rng, account, at) } else { month_of(&mut rng, account, month, at, last) };
            if events.is_empty() {
                continue;
            }
            let expected = match account.version {
                0 => pb::expected_version::Kind::NoStream(wkt::Empty {}),
                version => pb::expected_version::Kind::Exact(version),
            };
            account.version += events.len() as u64;
            requests.push(pb::AppendRequest {
                account_id: account.profile.id.to_owned(),
                expected: Some(pb::ExpectedVersion { kind: Some(expected) }),
                events,
            });
        }
    }
    requests
}

fn opening(rng: &mut Rng, account: &mut Account, at: i64) -> Vec<pb::Event> {
    let profile = account.profile;
    let mut events = vec![
        event(rng, at, profile.owner, "crm", opened(profile.name, profile.industry, profile.owner)),
        event(rng, at + 60, profile.owner, "crm", tier(profile.tier, profile.tier_reason)),
        event(rng, at + 90, profile.owner, "hr-system", staff_assigned(profile.owner, unit(profile.owner))),
    ];
    for (offset, &(id, name, title, department, role, key)) in profile.contacts.iter().enumerate() {
        let person =
            Person { id: id.into(), name: name.into(), title: title.into(), department: department.into(), role, key };
        events.push(event(rng, at + 120 + offset as i64, profile.owner, "crm", contact_added(&person)));
        account.contacts.push(person);
    }
    for (offset, &(member, role)) in profile.team.iter().enumerate() {
        events.push(event(
            rng,
            at + 3 * DAY + offset as i64,
            profile.owner,
            "hr-system",
            joined(member, role, unit(member)),
        ));
        account.team.push(member);
    }
    events
}

/// The events of one month of an account: routine contact plus the story's turning points.
fn month_of(rng: &mut Rng, account: &mut Account, month: i64, at: i64, last: i64) -> Vec<pb::Event> {
    let mut events = Vec::new();
    // Times have their own generator, so that drawing one does not borrow the main one.
    let mut clock = at;
    let mut gaps = Rng::new(rng.next_u64());
    let mut tick = move || {
        clock = (clock + gaps.between(DAY / 2, 3 * DAY)).min(last);
        clock
    };
    let id = account.profile.id;

    // The story's turning points.
    match (id, month) {
        ("nordwind-logistics", 1) => events.push(stance(rng, account, tick(), "k.hartmann", -1, 1, words::EVIDENCE[5])),
        ("nordwind-logistics", 4) => {
            let staff = ["sam.lee", account.owner];
            let notes = words::notes(rng, 900);
            let body = meeting(
                pb::MeetingKind::TechnicalExchange,
                &staff,
                &["k.hartmann", "l.dahl"],
                "Architecture deep dive",
                notes,
            );
            events.push(event(rng, tick(), account.owner, "calendar-sync", body));
        }
        ("nordwind-logistics", 5) => {
            let plan = Plan {
                id: "cio-coach",
                contact_id: "k.hartmann",
                support: 2,
                intimacy: 3,
                due: at + 7 * MONTH,
                owner: account.owner,
                actions: "Executive alignment visit with Maria Santos; follow up the architecture deep dive with \
                          a cold-chain pilot proposal.",
                goal: "Cold-chain tracking rollout",
                goal_reference: "OPP-2291",
            };
            events.push(event(rng, tick(), account.owner, "crm", planned(&plan)));
        }
        ("nordwind-logistics", 7) => {
            let staff = ["maria.santos", account.owner];
            let notes = words::notes(rng, 600);
            let body = meeting(
                pb::MeetingKind::ExecutiveVisit,
                &staff,
                &["k.hartmann", "j.fischer"],
                "Executive alignment",
                notes,
            );
            events.push(event(rng, tick(), account.owner, "calendar-sync", body));
            events.push(stance(rng, account, tick(), "k.hartmann", 1, 2, words::EVIDENCE[0]));
        }
        ("nordwind-logistics", 10) => {
            events.push(stance(rng, account, tick(), "k.hartmann", 2, 3, words::EVIDENCE[1]));
        }
        ("nordwind-logistics", 12) => {
            events.push(event(
                rng,
                tick(),
                "maria.santos",
                "hr-system",
                staff_assigned("anna.berg", unit("anna.berg")),
            ));
            let body = owner_changed(
                "li.wei",
                "anna.berg",
                "rotation to the APAC region",
                "Katrin Hartmann (CIO) is our coach since the executive visit; Marco Vogel in procurement still needs \
                 care. Jonas Fischer approves the budget after the spring board meeting. Sam Lee knows the architecture.",
            );
            events.push(event(rng, tick(), "maria.santos", "hr-system", body));
            account.owner = "anna.berg";
        }
        ("nordwind-logistics", 14) => {
            let body = outcome(pb::OutcomeKind::DealWon, "Cold-chain tracking rollout", 184_000_000, "EUR", "OPP-2291");
            events.push(event(rng, tick(), account.owner, "crm", body));
        }
        ("kappa-retail", 9) => {
            events.push(event(rng, tick(), account.owner, "crm", contact_left("p.costa", "moved to a competitor")));
            account.contacts.retain(|c| c.id != "p.costa");
        }
        ("kappa-retail", 12) => {
            events.push(stance(rng, account, tick(), "g.meyer", 0, 1, words::EVIDENCE[3]));
            let evidence = "Invited Vantage Systems to the infrastructure tender; meets their team monthly.";
            events.push(event(
                rng,
                tick(),
                account.owner,
                "crm",
                competitor("Vantage Systems", "g.meyer", 2, evidence),
            ));
        }
        ("kappa-retail", 16) => {
            events.push(event(rng, tick(), "raj.patel", "hr-system", staff_assigned("raj.patel", unit("raj.patel"))));
            let notes = words::notes(rng, 400);
            let body = meeting(pb::MeetingKind::Visit, &["raj.patel"], &["o.brown"], "Cloud migration offer", notes);
            events.push(event(rng, tick(), "raj.patel", "calendar-sync", body));
        }
        ("kappa-retail", 10) => {
            let person = Person {
                id: "g.meyer".into(),
                name: "Greta Meyer".into(),
                title: "Head of Infrastructure".into(),
                department: "IT".into(),
                role: R::Influencer,
                key: true,
            };
            events.push(event(rng, tick(), account.owner, "crm", contact_added(&person)));
            account.contacts.push(person);
        }
        ("tianhe-motors", 8) => {
            let body = outcome(pb::OutcomeKind::StrategicAgreement, "Connected-vehicle platform MoU", 0, "", "MOU-7");
            events.push(event(rng, tick(), account.owner, "crm", body));
        }
        ("helios-energy", 9) => {
            let plan = Plan {
                id: "cto-supporter",
                contact_id: "h.solberg",
                support: 2,
                intimacy: 3,
                due: at + 6 * MONTH,
                owner: "tom.keller",
                actions: "Joint architecture board for the grid programme; a reference visit to a utility we serve.",
                goal: "Grid modernisation, phase 2",
                goal_reference: "OPP-3107",
            };
            events.push(event(rng, tick(), account.owner, "crm", planned(&plan)));
        }
        ("helios-energy", 11) => events.push(stance(rng, account, tick(), "h.solberg", 1, 2, words::EVIDENCE[2])),
        ("tianhe-motors", 15) => {
            // Helios's delivery lead moves here this month: Tianhe's iron triangle is complete.
            events.push(event(
                rng,
                tick(),
                "omar.rahim",
                "hr-system",
                joined("ola.nord", T::Delivery, unit("ola.nord")),
            ));
            account.team.push("ola.nord");
        }
        ("helios-energy", 15) => {
            events.push(event(
                rng,
                tick(),
                "ola.nord",
                "hr-system",
                left_team("ola.nord", "moved to another programme"),
            ));
            account.team.retain(|m| *m != "ola.nord");
        }
        _ => {}
    }

    // Routine: meetings, the odd signal, gift and feedback.
    for _ in 0..rng.between(1, 3) {
        let body = routine_meeting(rng, account, month);
        events.push(event(rng, tick(), account.owner, "calendar-sync", body));
    }
    if rng.chance(40) {
        let contact = rng.pick(&account.contacts).id.clone();
        if !SCRIPTED.contains(&contact.as_str()) {
            let (support, intimacy) = drift(rng, account, &contact);
            let evidence = *rng.pick(words::EVIDENCE);
            events.push(stance(rng, account, tick(), &contact, support, intimacy, evidence));
        }
    }
    if rng.chance(20) {
        let recipient = rng.pick(&account.contacts).id.clone();
        let (description, value) = *rng.pick(words::GIFTS);
        let approval = if rng.chance(80) { format!("GA-{}", rng.between(1_000, 9_999)) } else { String::new() };
        let giver = account.owner;
        let body = gift(giver, &recipient, description, value, account.profile.currency, &approval);
        events.push(event(rng, tick(), giver, "expense-system", body));
    }
    if month % 6 == 5 {
        let contact = account.contacts[0].id.clone();
        let score = rng.between(5, 10) as u32;
        let body = feedback(&contact, score, "Annual satisfaction survey: response times good, invoicing confusing.");
        events.push(event(rng, tick(), account.owner, "crm", body));
    }
    events
}

fn routine_meeting(rng: &mut Rng, account: &Account, month: i64) -> Body {
    let kinds = [
        pb::MeetingKind::Visit,
        pb::MeetingKind::Call,
        pb::MeetingKind::Call,
        pb::MeetingKind::Dinner,
        pb::MeetingKind::Workshop,
        pb::MeetingKind::Event,
        pb::MeetingKind::TechnicalExchange,
    ];
    let kind = *rng.pick(&kinds);
    let mut staff = vec![account.owner];
    if let Some(member) = account.team.get(rng.below(account.team.len() + 1)) {
        // Sometimes the team member leads the meeting: the first of our staff is who touched the contacts.
        if rng.chance(50) { staff.insert(0, member) } else { staff.push(member) }
    }
    let mut contacts: Vec<&str> = Vec::new();
    for _ in 0..rng.between(1, 3) {
        let id = rng.pick(&account.contacts).id.as_str();
        if !contacts.contains(&id) && !unmet(account.profile.id, month, id) {
            contacts.push(id);
        }
    }
    if contacts.is_empty() {
        // Every draw was a contact the story keeps unmet: meet the account's first contact.
        contacts.push(account.contacts[0].id.as_str());
    }
    let notes_len = rng.between(100, 1_500) as usize;
    meeting(kind, &staff, &contacts, rng.pick::<&str>(words::TOPICS), words::notes(rng, notes_len))
}

/// A contact's next stance: a step from the last one, mostly towards support.
fn drift(rng: &mut Rng, account: &Account, contact: &str) -> (i32, u32) {
    let (support, intimacy) =
        account.stances.iter().rev().find(|(c, ..)| c == contact).map_or((0, 1), |(_, s, i)| (*s, *i));
    let support = (support + [-1, 0, 1, 1][rng.below(4)]).clamp(-2, 2);
    let intimacy = (intimacy as i64 + [0, 0, 1][rng.below(3)]).clamp(0, 4) as u32;
    (support, intimacy)
}

fn stance(
    rng: &mut Rng,
    account: &mut Account,
    at: i64,
    contact: &str,
    support: i32,
    intimacy: u32,
    evidence: &str,
) -> pb::Event {
    account.stances.push((contact.to_owned(), support, intimacy));
    event(rng, at, account.owner, "crm", signal(contact, support, intimacy, evidence))
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashSet};

    use super::*;

    const NOW: i64 = 1_767_225_600;

    #[test]
    fn the_same_seed_gives_the_same_sample_and_another_seed_another() {
        assert_eq!(sample(7, NOW), sample(7, NOW));
        assert_ne!(sample(7, NOW), sample(8, NOW));
    }

    #[test]
    fn the_sample_is_consistent() {
        let requests = sample(7, NOW);
        let mut versions: BTreeMap<String, u64> = BTreeMap::new();
        let mut ids = HashSet::new();
        let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
        for request in &requests {
            let version = versions.entry(request.account_id.clone()).or_default();
            let expected = request.expected.as_ref().and_then(|e| e.kind);
            match *version {
                0 => assert_eq!(expected, Some(pb::expected_version::Kind::NoStream(wkt::Empty {}))),
                v => assert_eq!(expected, Some(pb::expected_version::Kind::Exact(v))),
            }
            *version += request.events.len() as u64;
            for event in &request.events {
                assert!(ids.insert(event.event_id.clone()), "event ids are unique");
                let at = event.occurred_at.expect("every event has a time").seconds;
                assert!(at < NOW && at > NOW - 600 * DAY, "{at}");
                let kind = match event.body.as_ref().expect("a body") {
                    Body::OwnerChanged(_) => "owner_changed",
                    Body::ContactLeft(_) => "contact_left",
                    Body::GiftGiven(_) => "gift_given",
                    Body::SupportSignal(_) => "support_signal",
                    Body::MeetingHeld(_) => "meeting_held",
                    Body::RelationshipPlanned(_) => "relationship_planned",
                    Body::CompetitorSignal(_) => "competitor_signal",
                    _ => "other",
                };
                *kinds.entry(kind).or_default() += 1;
            }
        }
        assert_eq!(versions.len(), 5);
        assert_eq!(kinds.get("owner_changed"), Some(&1));
        assert_eq!(kinds.get("contact_left"), Some(&1));
        assert_eq!(kinds.get("relationship_planned"), Some(&2));
        assert_eq!(kinds.get("competitor_signal"), Some(&1));
        assert!(kinds["meeting_held"] > 50 && kinds["gift_given"] > 3 && kinds["support_signal"] > 10, "{kinds:?}");
    }
}
