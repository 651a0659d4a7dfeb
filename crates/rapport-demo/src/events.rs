//! Wire events, built from plain values.

use rapport_proto::{v1 as pb, wkt};

use crate::rng::Rng;

pub(crate) use pb::event::Body;

/// An event with an id drawn from `rng`, that occurred at `at` (Unix seconds).
pub(crate) fn event(rng: &mut Rng, at: i64, actor: &str, source: &str, body: Body) -> pb::Event {
    pb::Event {
        event_id: rng.uuid(),
        occurred_at: Some(wkt::Timestamp { seconds: at, nanos: 0 }),
        actor: actor.to_owned(),
        source: source.to_owned(),
        body: Some(body),
        sealed: None,
    }
}

pub(crate) fn opened(name: &str, industry: &str, owner: &str) -> Body {
    Body::AccountOpened(pb::AccountOpened { name: name.into(), industry: industry.into(), owner: owner.into() })
}

pub(crate) fn tier(tier: pb::Tier, reason: &str) -> Body {
    Body::TierAssigned(pb::TierAssigned { tier: tier as i32, reason: reason.into() })
}

/// A person at the customer.
#[derive(Debug, Clone)]
pub(crate) struct Person {
    pub id: String,
    pub name: String,
    pub title: String,
    pub department: String,
    pub role: pb::ContactRole,
    pub key: bool,
}

pub(crate) fn contact_added(person: &Person) -> Body {
    Body::ContactAdded(pb::ContactAdded {
        contact_id: person.id.clone(),
        name: person.name.clone(),
        title: person.title.clone(),
        department: person.department.clone(),
        role: person.role as i32,
        key: person.key,
    })
}

pub(crate) fn contact_left(contact_id: &str, reason: &str) -> Body {
    Body::ContactLeft(pb::ContactLeft { contact_id: contact_id.into(), reason: reason.into() })
}

pub(crate) fn meeting(kind: pb::MeetingKind, staff: &[&str], contacts: &[&str], topic: &str, notes: String) -> Body {
    Body::MeetingHeld(pb::MeetingHeld {
        staff: staff.iter().map(|s| s.to_string()).collect(),
        contact_ids: contacts.iter().map(|c| c.to_string()).collect(),
        kind: kind as i32,
        topic: topic.into(),
        notes,
    })
}

pub(crate) fn gift(
    giver: &str,
    recipient: &str,
    description: &str,
    value_minor: i64,
    currency: &str,
    approval: &str,
) -> Body {
    Body::GiftGiven(pb::GiftGiven {
        giver: giver.into(),
        recipient_contact_id: recipient.into(),
        description: description.into(),
        value_minor,
        currency: currency.into(),
        approval_ref: approval.into(),
    })
}

pub(crate) fn signal(contact_id: &str, support: i32, intimacy: u32, evidence: &str) -> Body {
    Body::SupportSignal(pb::SupportSignal {
        contact_id: contact_id.into(),
        support,
        intimacy,
        evidence: evidence.into(),
    })
}

pub(crate) fn owner_changed(from: &str, to: &str, reason: &str, note: &str) -> Body {
    Body::OwnerChanged(pb::OwnerChanged {
        from_owner: from.into(),
        to_owner: to.into(),
        reason: reason.into(),
        handover_note: note.into(),
    })
}

pub(crate) fn joined(member: &str, role: pb::TeamRole, business_unit: &str) -> Body {
    Body::TeamMemberJoined(pb::TeamMemberJoined {
        member: member.into(),
        role: role as i32,
        business_unit: business_unit.into(),
    })
}

pub(crate) fn staff_assigned(staff: &str, business_unit: &str) -> Body {
    Body::StaffAssigned(pb::StaffAssigned { staff: staff.into(), business_unit: business_unit.into() })
}

/// A relationship plan for one contact, aimed at a stance and closeness by `due` (Unix seconds).
pub(crate) struct Plan<'a> {
    pub id: &'a str,
    pub contact_id: &'a str,
    pub support: i32,
    pub intimacy: u32,
    pub due: i64,
    pub owner: &'a str,
    pub actions: &'a str,
    pub goal: &'a str,
    pub goal_reference: &'a str,
}

pub(crate) fn planned(plan: &Plan<'_>) -> Body {
    Body::RelationshipPlanned(pb::RelationshipPlanned {
        plan_id: plan.id.into(),
        contact_id: plan.contact_id.into(),
        target_support: plan.support,
        target_intimacy: plan.intimacy,
        due_at: Some(wkt::Timestamp { seconds: plan.due, nanos: 0 }),
        owner: plan.owner.into(),
        actions: plan.actions.into(),
        goal: plan.goal.into(),
        goal_reference: plan.goal_reference.into(),
    })
}

pub(crate) fn competitor(competitor: &str, contact_id: &str, stance: i32, evidence: &str) -> Body {
    Body::CompetitorSignal(pb::CompetitorSignal {
        competitor: competitor.into(),
        contact_id: contact_id.into(),
        stance,
        evidence: evidence.into(),
    })
}

pub(crate) fn left_team(member: &str, reason: &str) -> Body {
    Body::TeamMemberLeft(pb::TeamMemberLeft { member: member.into(), reason: reason.into() })
}

pub(crate) fn feedback(contact_id: &str, score: u32, text: &str) -> Body {
    Body::FeedbackReceived(pb::FeedbackReceived { contact_id: contact_id.into(), score, text: text.into() })
}

pub(crate) fn outcome(kind: pb::OutcomeKind, title: &str, value_minor: i64, currency: &str, reference: &str) -> Body {
    Body::OutcomeRecorded(pb::OutcomeRecorded {
        kind: kind as i32,
        title: title.into(),
        value_minor,
        currency: currency.into(),
        reference: reference.into(),
    })
}
