//! Text for people: a recorded event as a timeline line, an account as a short report.

use std::fmt::Write;

use rapport_domain::{Currency, Intimacy, Money, Support};
use rapport_proto::{v1 as pb, wkt};

/// An instant as `2025-03-02 10:00:00Z`; `-` when absent.
pub(crate) fn instant(ts: Option<&wkt::Timestamp>) -> String {
    ts.and_then(|ts| jiff::Timestamp::new(ts.seconds, ts.nanos).ok())
        .map_or_else(|| "-".to_owned(), |ts| ts.strftime("%Y-%m-%d %H:%M:%SZ").to_string())
}

/// One line of `rapport history`.
pub(crate) fn timeline_line(recorded: &pb::RecordedEvent) -> String {
    let event = recorded.event.clone().unwrap_or_default();
    let hash: String = recorded.hash.iter().take(6).map(|b| format!("{b:02x}")).collect();
    let retracted =
        if recorded.retracted_by > 0 { format!("  [RETRACTED by v{}]", recorded.retracted_by) } else { String::new() };
    // Who appended it, when that was an authenticated token other than the actor.
    let token = if recorded.recorded_by.is_empty() || recorded.recorded_by == event.actor {
        String::new()
    } else {
        format!(", token {}", recorded.recorded_by)
    };
    format!(
        "v{:<4} #{:<6} {}  {:<18} {}  (by {} via {}{token}; recorded {}; hash {hash}){retracted}",
        recorded.version,
        recorded.position,
        instant(event.occurred_at.as_ref()),
        kind_name(&event),
        summary(&event),
        event.actor,
        event.source,
        instant(recorded.recorded_at.as_ref()),
    )
}

/// The event's kind, as the JSON and the errors name it.
pub(crate) fn kind_name(event: &pb::Event) -> &'static str {
    event.body.as_ref().map_or("(no body)", pb::event::Body::name)
}

fn summary(event: &pb::Event) -> String {
    use pb::event::Body;
    match &event.body {
        None => String::new(),
        Some(Body::AccountOpened(o)) => format!("\"{}\" ({}), owner {}", o.name, o.industry, o.owner),
        Some(Body::TierAssigned(t)) => {
            let tier = pb::Tier::try_from(t.tier).map_or("unknown", |t| t.as_str_name().trim_start_matches("TIER_"));
            format!("tier {tier}: {}", t.reason)
        }
        Some(Body::ContactAdded(c)) => format!(
            "{} {}: {}, {}, {}{}",
            c.contact_id,
            c.name,
            c.title,
            c.department,
            short(pb::ContactRole::try_from(c.role).map(|r| r.as_str_name())),
            if c.key { ", key" } else { "" }
        ),
        Some(Body::ContactUpdated(c)) => {
            let mut changes = Vec::new();
            if let Some(name) = &c.name {
                changes.push(format!("name {name}"));
            }
            if let Some(title) = &c.title {
                changes.push(format!("title {title}"));
            }
            if let Some(department) = &c.department {
                changes.push(format!("department {department}"));
            }
            if let Some(role) = c.role {
                changes.push(format!("role {}", short(pb::ContactRole::try_from(role).map(|r| r.as_str_name()))));
            }
            if let Some(key) = c.key {
                changes.push(if key { "now key".to_owned() } else { "no longer key".to_owned() });
            }
            format!("{}: {}", c.contact_id, changes.join(", "))
        }
        Some(Body::ContactLeft(c)) => format!("{} left: {}", c.contact_id, c.reason),
        Some(Body::MeetingHeld(m)) => format!(
            "{} \"{}\": {} with {}",
            short(pb::MeetingKind::try_from(m.kind).map(|k| k.as_str_name())),
            m.topic,
            m.staff.join(", "),
            m.contact_ids.join(", ")
        ),
        Some(Body::GiftGiven(g)) => format!(
            "{} to {}: {}, {}, {}",
            g.giver,
            g.recipient_contact_id,
            g.description,
            money(g.value_minor, &g.currency),
            if g.approval_ref.is_empty() { "NO APPROVAL".to_owned() } else { format!("approval {}", g.approval_ref) }
        ),
        Some(Body::SupportSignal(s)) => {
            format!("{}: {}, {}: {}", s.contact_id, support(s.support), intimacy(s.intimacy), s.evidence)
        }
        Some(Body::OwnerChanged(o)) => {
            format!("{} -> {} ({}): {}", o.from_owner, o.to_owner, o.reason, o.handover_note)
        }
        Some(Body::TeamMemberJoined(t)) => {
            format!("{} joins as {}", t.member, short(pb::TeamRole::try_from(t.role).map(|r| r.as_str_name())))
        }
        Some(Body::TeamMemberLeft(t)) => format!("{} leaves: {}", t.member, t.reason),
        Some(Body::FeedbackReceived(f)) => format!("{}/10 from {}: {}", f.score, f.contact_id, f.text),
        Some(Body::OutcomeRecorded(o)) => format!(
            "{} \"{}\" {} {}",
            short(pb::OutcomeKind::try_from(o.kind).map(|k| k.as_str_name())),
            o.title,
            money(o.value_minor, &o.currency),
            o.reference
        ),
        Some(Body::EventRetracted(r)) => format!("retracts {}: {}", r.event_id, r.reason),
    }
}

/// `MEETING_KIND_EXECUTIVE_VISIT` as `executive visit`.
fn short(name: Result<&str, prost::UnknownEnumValue>) -> String {
    let Ok(name) = name else { return "unknown".to_owned() };
    let words: Vec<&str> = name.split('_').collect();
    // Drop the enum's prefix (`MEETING_KIND_`, `TIER_`, ...): every name but the value's words.
    let prefix = ["CONTACT", "ROLE", "MEETING", "KIND", "TEAM", "OUTCOME"];
    words.iter().skip_while(|w| prefix.contains(w)).map(|w| w.to_lowercase()).collect::<Vec<_>>().join(" ")
}

fn money(minor: i64, currency: &str) -> String {
    match Currency::parse(currency).and_then(|c| Money::new(minor, c)) {
        Ok(money) => money.to_string(),
        Err(_) if currency.is_empty() => String::new(),
        Err(_) => format!("{minor} {currency} (minor units)"),
    }
}

fn support(value: i32) -> String {
    Support::new(value).map_or_else(|_| format!("support {value}"), |s| format!("{} ({value:+})", s.name()))
}

fn intimacy(value: u32) -> String {
    Intimacy::new(value).map_or_else(|_| format!("intimacy {value}"), |i| format!("{} ({value})", i.name()))
}

/// The report `rapport account` prints.
pub(crate) fn account(view: &pb::AccountView) -> String {
    let mut out = String::new();
    let tier = if view.tier.is_empty() { "not tiered".to_owned() } else { format!("tier {}", view.tier) };
    let _ = writeln!(out, "{} ({})  {}, {tier}", view.name, view.account_id, view.industry);
    let _ = writeln!(
        out,
        "owner {}   version {}   opened {}   last activity {}",
        view.owner,
        view.version,
        instant(view.opened_at.as_ref()),
        instant(view.last_activity_at.as_ref())
    );
    let _ = writeln!(out, "\nOwner history");
    for tenure in &view.owner_history {
        let to = tenure.to.as_ref().map_or_else(|| "now".to_owned(), |to| instant(Some(to)));
        let reason = if tenure.reason.is_empty() { String::new() } else { format!("  ({})", tenure.reason) };
        let _ = writeln!(out, "  {:<16} {} .. {to}{reason}", tenure.owner, instant(tenure.from.as_ref()));
    }
    if !view.team_members.is_empty() {
        let _ = writeln!(out, "\nTeam");
        for member in &view.team_members {
            let role = short(pb::TeamRole::try_from(member.role).map(|r| r.as_str_name()));
            let _ = writeln!(out, "  {:<16} {role}, since {}", member.member, instant(member.since.as_ref()));
        }
    }
    let _ = writeln!(out, "\nContacts");
    for contact in &view.contacts {
        let key = if contact.key { "key" } else { "   " };
        let stance = match contact.assessed_at {
            Some(_) => format!("{}, {}", support(contact.support), intimacy(contact.intimacy)),
            None => "not assessed".to_owned(),
        };
        let touched = match &contact.last_touched_at {
            Some(at) => {
                format!("last {} {} by {}", contact.last_touch_kind, instant(Some(at)), contact.last_touched_by)
            }
            None => "never touched".to_owned(),
        };
        let _ = writeln!(
            out,
            "  {key} {:<10} {} ({}, {})\n        {stance}; {touched}",
            contact.contact_id, contact.name, contact.title, contact.department
        );
    }
    if !view.former_contacts.is_empty() {
        let _ = writeln!(out, "\nFormer contacts");
        for contact in &view.former_contacts {
            let _ = writeln!(
                out,
                "  {:<14} {} ({}), left {}",
                contact.contact_id,
                contact.name,
                contact.department,
                instant(contact.left_at.as_ref())
            );
        }
    }
    if view.retracted_events > 0 {
        let _ = writeln!(out, "\n{} event(s) retracted (still in the history)", view.retracted_events);
    }
    if let Some(scores) = &view.scores {
        let _ = writeln!(out, "\nScores under {} as of {}", view.rule_set, instant(scores.as_of.as_ref()));
        out.push_str(&self::scores(scores));
    }
    out
}

/// The scores and their factors, as `rapport account` and `rapport compare` print them.
pub(crate) fn scores(scores: &pb::Scores) -> String {
    let mut out = String::new();
    let rows = [
        ("health", &scores.health),
        ("key relationship", &scores.key_relationship),
        ("general relationship", &scores.general_relationship),
        ("organisational", &scores.organisational_relationship),
        ("personalisation risk", &scores.personalisation_risk),
    ];
    for (name, score) in rows {
        let Some(score) = score else { continue };
        let _ = writeln!(out, "  {name:<22} {:>6.2}", score.value);
        for factor in &score.factors {
            let _ = writeln!(out, "      {:>+7.2}  {}", factor.points, factor.detail);
        }
    }
    let class = if scores.value_class.is_empty() { "none (no outcome in the window)" } else { &scores.value_class };
    let _ = writeln!(out, "  {:<22} {class}", "value class");
    for reason in &scores.at_risk {
        let _ = writeln!(out, "  AT RISK: {reason}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_enums_and_money_for_people() {
        assert_eq!(short(Ok(pb::MeetingKind::ExecutiveVisit.as_str_name())), "executive visit");
        assert_eq!(short(Ok(pb::ContactRole::DecisionMaker.as_str_name())), "decision maker");
        assert_eq!(short(Ok(pb::OutcomeKind::DealWon.as_str_name())), "deal won");
        assert_eq!(instant(Some(&wkt::Timestamp { seconds: 86_400 + 3_661, nanos: 5 })), "1970-01-02 01:01:01Z");
        assert_eq!(instant(None), "-");
        assert_eq!(support(-2), "opponent (-2)");
        assert_eq!(money(12, "XTS"), "12 XTS (minor units)");
    }
}
