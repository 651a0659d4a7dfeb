//! Text for people: a recorded event as a timeline line, an account as a short report.

use std::fmt::Write;

use rapport_domain::{Intimacy, Support};
use rapport_projection::ScoreKind;
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
        rapport_wire::events::summary(&event),
        event.actor,
        event.source,
        instant(recorded.recorded_at.as_ref()),
    )
}

/// The event's kind, as the JSON and the errors name it.
pub(crate) fn kind_name(event: &pb::Event) -> &'static str {
    event.body.as_ref().map_or("(no body)", |body| rapport_wire::kind_of(body).name())
}

pub(crate) use rapport_wire::money_text as money;
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
            let role = rapport_wire::team_role_name(member.role);
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

/// The scores and their factors, as `rapport account` and `rapport compare` print them:
/// health first, then the scores it combines.
pub(crate) fn scores(scores: &pb::Scores) -> String {
    let mut out = String::new();
    for kind in health_first() {
        let Some(score) = rapport_wire::scores::score_of(scores, kind) else { continue };
        let _ = writeln!(out, "  {:<28} {:>6.2}", kind.label(), score.value);
        for factor in &score.factors {
            let _ = writeln!(out, "      {:>+7.2}  {}", factor.points, factor.detail);
        }
    }
    let class = if scores.value_class.is_empty() { "none (no outcome in the window)" } else { &scores.value_class };
    let _ = writeln!(out, "  {:<28} {class}", "value class");
    for reason in &scores.at_risk {
        let _ = writeln!(out, "  AT RISK: {reason}");
    }
    out
}

/// Every score, health (the combination) first, as people read a score card.
pub(crate) fn health_first() -> impl Iterator<Item = ScoreKind> {
    std::iter::once(ScoreKind::Health).chain(ScoreKind::ALL.iter().copied().filter(|&k| k != ScoreKind::Health))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_enums_and_money_for_people() {
        assert_eq!(rapport_wire::meeting_kind_name(pb::MeetingKind::ExecutiveVisit as i32), "executive visit");
        assert_eq!(rapport_wire::contact_role_name(pb::ContactRole::DecisionMaker as i32), "decision maker");
        assert_eq!(rapport_wire::outcome_kind_name(pb::OutcomeKind::DealWon as i32), "deal won");
        assert_eq!(instant(Some(&wkt::Timestamp { seconds: 86_400 + 3_661, nanos: 5 })), "1970-01-02 01:01:01Z");
        assert_eq!(instant(None), "-");
        assert_eq!(support(-2), "opponent (-2)");
        assert_eq!(money(12, "XTS"), "XTS 12 (minor units)");
        assert_eq!(money(12_000, "USD"), "USD 120.00");
        assert_eq!(money(15_000, "JPY"), "JPY 15000");
        assert_eq!(money(0, ""), "");
    }
}
