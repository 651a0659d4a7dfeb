//! Events: a wire event (`rapport.v1.Event`) parsed into the domain's, every value checked
//! against its domain type, and a domain event rendered back in its canonical wire form.
//!
//! Violations name the field's path in the request (`events[2].support_signal.support`). The
//! path is built only on failure: valid events, and every stored event a rebuild decodes,
//! allocate nothing for it.

use rapport_domain as domain;
use rapport_domain::{
    ContactId, Currency, EventBody, EventId, EventKind, InvalidValue, Label, Limits, Money, Note, SourceSystem,
    StaffId, Timestamp, Violation,
};
use rapport_proto::{v1 as pb, wkt};

use crate::enums::{from_number, to_number};
use crate::timestamp_to_wire;

/// Parses one wire event; `prefix` is its path (`events[3]`).
pub fn event_from_wire(event: &pb::Event, prefix: &str, limits: &Limits) -> Result<domain::Event, Violation> {
    let at = |field: &str| format!("{prefix}.{field}");
    let id = EventId::parse(&event.event_id).map_err(|e| e.at(at("event_id")))?;
    let occurred_at = timestamp_from_wire(event.occurred_at.as_ref(), || at("occurred_at"))?;
    let actor = StaffId::parse(&event.actor, limits).map_err(|e| e.at(at("actor")))?;
    let source = SourceSystem::parse(&event.source, limits).map_err(|e| e.at(at("source")))?;
    let body = match &event.body {
        None => {
            return Err(Violation::new(
                at("body"),
                "is required; set exactly one of account_opened, tier_assigned, contact_added, ... (see events.proto)",
            ));
        }
        Some(body) => body_from_wire(body, prefix, limits)?,
    };
    Ok(domain::Event { id, occurred_at, actor, source, body })
}

fn timestamp_from_wire(ts: Option<&wkt::Timestamp>, field: impl Fn() -> String) -> Result<Timestamp, Violation> {
    let ts = ts.ok_or_else(|| Violation::new(field(), "is required; give the time the event happened"))?;
    Timestamp::from_parts(ts.seconds, ts.nanos).map_err(|e| e.at(field()))
}

/// Field parsers for one body, sharing its path prefix (`events[3].gift_given`).
struct Fields<'a> {
    /// The event's path (`events[3]`).
    prefix: &'a str,
    /// The body's field name (`gift_given`).
    body: &'a str,
    limits: &'a Limits,
}

impl Fields<'_> {
    fn path(&self, field: &str) -> String {
        format!("{}.{}.{field}", self.prefix, self.body)
    }
    /// Names the field in a violation. The path is built only on failure: valid events (and
    /// every stored event a rebuild decodes) allocate nothing for it.
    fn at<'s>(&'s self, field: &'s str) -> impl FnOnce(InvalidValue) -> Violation + 's {
        move |e| e.at(self.path(field))
    }
    fn staff(&self, field: &str, value: &str) -> Result<StaffId, Violation> {
        StaffId::parse(value, self.limits).map_err(self.at(field))
    }
    fn contact(&self, field: &str, value: &str) -> Result<ContactId, Violation> {
        ContactId::parse(value, self.limits).map_err(self.at(field))
    }
    fn label(&self, field: &str, value: &str) -> Result<Label, Violation> {
        Label::parse(value, self.limits).map_err(self.at(field))
    }
    fn required_label(&self, field: &str, value: &str) -> Result<Label, Violation> {
        Label::parse_required(value, self.limits).map_err(self.at(field))
    }
    fn note(&self, field: &str, value: &str) -> Result<Note, Violation> {
        Note::parse(value, self.limits).map_err(self.at(field))
    }
    fn money(&self, value_field: &str, value: i64, currency_field: &str, currency: &str) -> Result<Money, Violation> {
        let currency = Currency::parse(currency).map_err(self.at(currency_field))?;
        Money::new(value, currency).map_err(self.at(value_field))
    }
    fn list<T>(
        &self,
        field: &str,
        values: &[String],
        parse: impl Fn(&str, &Limits) -> Result<T, InvalidValue>,
    ) -> Result<Vec<T>, Violation> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| parse(v, self.limits).map_err(|e| e.at(self.path(&format!("{field}[{i}]")))))
            .collect()
    }
}

fn body_from_wire(body: &pb::event::Body, prefix: &str, limits: &Limits) -> Result<EventBody, Violation> {
    use pb::event::Body as B;
    let f = |body| Fields { prefix, body, limits };
    Ok(match body {
        B::AccountOpened(b) => {
            let f = f("account_opened");
            EventBody::AccountOpened(domain::AccountOpened {
                name: f.required_label("name", &b.name)?,
                industry: f.label("industry", &b.industry)?,
                owner: f.staff("owner", &b.owner)?,
            })
        }
        B::TierAssigned(b) => {
            let f = f("tier_assigned");
            EventBody::TierAssigned(domain::TierAssigned {
                tier: from_number(b.tier, || f.path("tier"))?,
                reason: f.label("reason", &b.reason)?,
            })
        }
        B::ContactAdded(b) => {
            let f = f("contact_added");
            EventBody::ContactAdded(domain::ContactAdded {
                contact_id: f.contact("contact_id", &b.contact_id)?,
                name: f.required_label("name", &b.name)?,
                title: f.label("title", &b.title)?,
                department: f.label("department", &b.department)?,
                role: from_number(b.role, || f.path("role"))?,
                key: b.key,
            })
        }
        B::ContactUpdated(b) => {
            let f = f("contact_updated");
            EventBody::ContactUpdated(domain::ContactUpdated {
                contact_id: f.contact("contact_id", &b.contact_id)?,
                name: b.name.as_deref().map(|v| f.required_label("name", v)).transpose()?,
                title: b.title.as_deref().map(|v| f.label("title", v)).transpose()?,
                department: b.department.as_deref().map(|v| f.label("department", v)).transpose()?,
                role: b.role.map(|v| from_number(v, || f.path("role"))).transpose()?,
                key: b.key,
            })
        }
        B::ContactLeft(b) => {
            let f = f("contact_left");
            EventBody::ContactLeft(domain::ContactLeft {
                contact_id: f.contact("contact_id", &b.contact_id)?,
                reason: f.label("reason", &b.reason)?,
            })
        }
        B::MeetingHeld(b) => {
            let f = f("meeting_held");
            EventBody::MeetingHeld(domain::MeetingHeld {
                staff: f.list("staff", &b.staff, StaffId::parse)?,
                contact_ids: f.list("contact_ids", &b.contact_ids, ContactId::parse)?,
                kind: from_number(b.kind, || f.path("kind"))?,
                topic: f.required_label("topic", &b.topic)?,
                notes: f.note("notes", &b.notes)?,
            })
        }
        B::GiftGiven(b) => {
            let f = f("gift_given");
            EventBody::GiftGiven(domain::GiftGiven {
                giver: f.staff("giver", &b.giver)?,
                recipient: f.contact("recipient_contact_id", &b.recipient_contact_id)?,
                description: f.required_label("description", &b.description)?,
                value: f.money("value_minor", b.value_minor, "currency", &b.currency)?,
                approval_ref: Some(f.label("approval_ref", &b.approval_ref)?).filter(|r| !r.is_empty()),
            })
        }
        B::SupportSignal(b) => {
            let f = f("support_signal");
            EventBody::SupportSignal(domain::SupportSignal {
                contact_id: f.contact("contact_id", &b.contact_id)?,
                support: domain::Support::new(b.support).map_err(f.at("support"))?,
                intimacy: domain::Intimacy::new(b.intimacy).map_err(f.at("intimacy"))?,
                evidence: f.note("evidence", &b.evidence)?,
            })
        }
        B::OwnerChanged(b) => {
            let f = f("owner_changed");
            EventBody::OwnerChanged(domain::OwnerChanged {
                from_owner: f.staff("from_owner", &b.from_owner)?,
                to_owner: f.staff("to_owner", &b.to_owner)?,
                reason: f.required_label("reason", &b.reason)?,
                handover_note: f.note("handover_note", &b.handover_note)?,
            })
        }
        B::TeamMemberJoined(b) => {
            let f = f("team_member_joined");
            EventBody::TeamMemberJoined(domain::TeamMemberJoined {
                member: f.staff("member", &b.member)?,
                role: from_number(b.role, || f.path("role"))?,
            })
        }
        B::TeamMemberLeft(b) => {
            let f = f("team_member_left");
            EventBody::TeamMemberLeft(domain::TeamMemberLeft {
                member: f.staff("member", &b.member)?,
                reason: f.label("reason", &b.reason)?,
            })
        }
        B::FeedbackReceived(b) => {
            let f = f("feedback_received");
            EventBody::FeedbackReceived(domain::FeedbackReceived {
                contact_id: (!b.contact_id.is_empty()).then(|| f.contact("contact_id", &b.contact_id)).transpose()?,
                score: domain::SatisfactionScore::new(b.score).map_err(f.at("score"))?,
                text: f.note("text", &b.text)?,
            })
        }
        B::OutcomeRecorded(b) => {
            let f = f("outcome_recorded");
            let value = match (b.value_minor, b.currency.as_str()) {
                (0, "") => None,
                (_, "") => {
                    return Err(Violation::new(
                        f.path("currency"),
                        "is required when value_minor is set; give an ISO 4217 code such as EUR",
                    ));
                }
                (value, currency) => Some(f.money("value_minor", value, "currency", currency)?),
            };
            EventBody::OutcomeRecorded(domain::OutcomeRecorded {
                kind: from_number(b.kind, || f.path("kind"))?,
                title: f.required_label("title", &b.title)?,
                value,
                reference: f.label("reference", &b.reference)?,
            })
        }
        B::EventRetracted(b) => {
            let f = f("event_retracted");
            EventBody::EventRetracted(domain::EventRetracted {
                target: EventId::parse(&b.event_id).map_err(f.at("event_id"))?,
                reason: f.required_label("reason", &b.reason)?,
            })
        }
    })
}

/// Renders a domain event in its wire form: canonical, so equal events encode to equal bytes.
pub fn event_to_wire(event: &domain::Event) -> pb::Event {
    pb::Event {
        event_id: event.id.to_string(),
        occurred_at: Some(timestamp_to_wire(event.occurred_at)),
        actor: event.actor.to_string(),
        source: event.source.to_string(),
        body: Some(body_to_wire(&event.body)),
    }
}

fn body_to_wire(body: &EventBody) -> pb::event::Body {
    use pb::event::Body as B;
    let s = |v: &dyn std::fmt::Display| v.to_string();
    match body {
        EventBody::AccountOpened(b) => {
            B::AccountOpened(pb::AccountOpened { name: s(&b.name), industry: s(&b.industry), owner: s(&b.owner) })
        }
        EventBody::TierAssigned(b) => {
            B::TierAssigned(pb::TierAssigned { tier: to_number(b.tier), reason: s(&b.reason) })
        }
        EventBody::ContactAdded(b) => B::ContactAdded(pb::ContactAdded {
            contact_id: s(&b.contact_id),
            name: s(&b.name),
            title: s(&b.title),
            department: s(&b.department),
            role: to_number(b.role),
            key: b.key,
        }),
        EventBody::ContactUpdated(b) => B::ContactUpdated(pb::ContactUpdated {
            contact_id: s(&b.contact_id),
            name: b.name.as_ref().map(|v| s(v)),
            title: b.title.as_ref().map(|v| s(v)),
            department: b.department.as_ref().map(|v| s(v)),
            role: b.role.map(to_number),
            key: b.key,
        }),
        EventBody::ContactLeft(b) => {
            B::ContactLeft(pb::ContactLeft { contact_id: s(&b.contact_id), reason: s(&b.reason) })
        }
        EventBody::MeetingHeld(b) => B::MeetingHeld(pb::MeetingHeld {
            staff: b.staff.iter().map(|v| s(v)).collect(),
            contact_ids: b.contact_ids.iter().map(|v| s(v)).collect(),
            kind: to_number(b.kind),
            topic: s(&b.topic),
            notes: b.notes.as_str().to_owned(),
        }),
        EventBody::GiftGiven(b) => B::GiftGiven(pb::GiftGiven {
            giver: s(&b.giver),
            recipient_contact_id: s(&b.recipient),
            description: s(&b.description),
            value_minor: b.value.minor(),
            currency: b.value.currency().code().to_owned(),
            approval_ref: b.approval_ref.as_ref().map(|v| s(v)).unwrap_or_default(),
        }),
        EventBody::SupportSignal(b) => B::SupportSignal(pb::SupportSignal {
            contact_id: s(&b.contact_id),
            support: i32::from(b.support.value()),
            intimacy: u32::from(b.intimacy.value()),
            evidence: b.evidence.as_str().to_owned(),
        }),
        EventBody::OwnerChanged(b) => B::OwnerChanged(pb::OwnerChanged {
            from_owner: s(&b.from_owner),
            to_owner: s(&b.to_owner),
            reason: s(&b.reason),
            handover_note: b.handover_note.as_str().to_owned(),
        }),
        EventBody::TeamMemberJoined(b) => {
            B::TeamMemberJoined(pb::TeamMemberJoined { member: s(&b.member), role: to_number(b.role) })
        }
        EventBody::TeamMemberLeft(b) => {
            B::TeamMemberLeft(pb::TeamMemberLeft { member: s(&b.member), reason: s(&b.reason) })
        }
        EventBody::FeedbackReceived(b) => B::FeedbackReceived(pb::FeedbackReceived {
            contact_id: b.contact_id.as_ref().map(|v| s(v)).unwrap_or_default(),
            score: u32::from(b.score.value()),
            text: b.text.as_str().to_owned(),
        }),
        EventBody::OutcomeRecorded(b) => B::OutcomeRecorded(pb::OutcomeRecorded {
            kind: to_number(b.kind),
            title: s(&b.title),
            value_minor: b.value.map_or(0, Money::minor),
            currency: b.value.map(|m| m.currency().code().to_owned()).unwrap_or_default(),
            reference: s(&b.reference),
        }),
        EventBody::EventRetracted(b) => {
            B::EventRetracted(pb::EventRetracted { event_id: b.target.to_string(), reason: s(&b.reason) })
        }
    }
}

/// The kind of a wire event's body.
pub fn kind_of(body: &pb::event::Body) -> EventKind {
    use pb::event::Body as B;
    match body {
        B::AccountOpened(_) => EventKind::AccountOpened,
        B::TierAssigned(_) => EventKind::TierAssigned,
        B::ContactAdded(_) => EventKind::ContactAdded,
        B::ContactUpdated(_) => EventKind::ContactUpdated,
        B::ContactLeft(_) => EventKind::ContactLeft,
        B::MeetingHeld(_) => EventKind::MeetingHeld,
        B::GiftGiven(_) => EventKind::GiftGiven,
        B::SupportSignal(_) => EventKind::SupportSignal,
        B::OwnerChanged(_) => EventKind::OwnerChanged,
        B::TeamMemberJoined(_) => EventKind::TeamMemberJoined,
        B::TeamMemberLeft(_) => EventKind::TeamMemberLeft,
        B::FeedbackReceived(_) => EventKind::FeedbackReceived,
        B::OutcomeRecorded(_) => EventKind::OutcomeRecorded,
        B::EventRetracted(_) => EventKind::EventRetracted,
    }
}
