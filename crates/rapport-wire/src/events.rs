//! Events: a wire event (`rapport.v1.Event`) parsed into the domain's, every value checked
//! against its domain type, and a domain event rendered back in its canonical wire form.
//!
//! Violations name the field's path in the request (`events[2].support_signal.support`). The
//! path is built only on failure: valid events, and every stored event a rebuild decodes,
//! allocate nothing for it.
//!
//! Personal fields travel in two forms. Clients send and read them in clear (reads show a
//! forgotten contact's as forgotten: [`event_to_reader`]). The log stores them sealed, in the
//! event's `sealed` part with the clear fields left empty (payload format 2): [`event_to_wire`]
//! writes that form, and [`event_from_wire`] reads both it and the clear form of payload
//! format 1.

use rapport_domain as domain;
use rapport_domain::{
    ContactId, Currency, EventBody, EventId, EventKind, FORGOTTEN_NAME, InvalidValue, Label, Limits, Money, Note,
    Personal, PersonalField, PlanId, Sealed, SourceSystem, StaffId, Timestamp, Violation,
};
use std::cell::RefCell;

use rapport_proto::{v1 as pb, wkt};

use crate::enums::{from_number, to_number};
use crate::timestamp_to_wire;

/// Parses one wire event; `prefix` is its path (`events[3]`). The event is taken apart: its
/// text becomes the domain's without being copied.
pub fn event_from_wire(event: pb::Event, prefix: &str, limits: &Limits) -> Result<domain::Event, Violation> {
    let at = |field: &str| format!("{prefix}.{field}");
    let pb::Event { event_id, occurred_at, actor, source, body, sealed } = event;
    let id = EventId::parse(&event_id).map_err(|e| e.at(at("event_id")))?;
    let occurred_at = timestamp_from_wire(occurred_at.as_ref(), || at("occurred_at"))?;
    let actor = StaffId::parse(actor, limits).map_err(|e| e.at(at("actor")))?;
    let source = SourceSystem::parse(source, limits).map_err(|e| e.at(at("source")))?;
    let body = match body {
        None => {
            return Err(Violation::new(
                at("body"),
                "is required; set exactly one of account_opened, tier_assigned, contact_added, ... (see events.proto)",
            ));
        }
        Some(body) => body_from_wire(body, sealed, prefix, limits)?,
    };
    Ok(domain::Event { id, occurred_at, actor, source, body })
}

/// The sealing scheme this build writes and opens (`SealedFields.scheme`).
pub const SEALING_SCHEME: u32 = 1;

/// The number of a personal field in its body message (`ContactAdded.name` is 2): how the
/// stored form names the sealed fields.
pub fn personal_field_number(kind: EventKind, field: PersonalField) -> Option<u32> {
    use PersonalField as F;
    match (kind, field) {
        (EventKind::ContactAdded | EventKind::ContactUpdated, F::Name) => Some(2),
        (EventKind::ContactAdded | EventKind::ContactUpdated, F::Title) => Some(3),
        (EventKind::MeetingHeld, F::Topic) => Some(4),
        (EventKind::MeetingHeld, F::Notes) => Some(5),
        (EventKind::GiftGiven, F::Description) => Some(3),
        (EventKind::SupportSignal, F::Evidence) => Some(4),
        (EventKind::FeedbackReceived, F::Text) => Some(3),
        (EventKind::RelationshipPlanned, F::Actions) => Some(7),
        (EventKind::CompetitorSignal, F::Evidence) => Some(4),
        _ => None,
    }
}

/// The sealed fields of a stored event, parsed and checked against the body they belong to.
/// Each is taken out as its body field is parsed.
struct SealedParts {
    fields: Vec<pb::SealedField>,
}

impl SealedParts {
    fn of(sealed: Option<pb::SealedFields>, kind: EventKind, prefix: &str) -> Result<Self, Violation> {
        let Some(sealed) = sealed else { return Ok(SealedParts { fields: Vec::new() }) };
        if sealed.scheme != SEALING_SCHEME {
            return Err(Violation::new(
                format!("{prefix}.sealed.scheme"),
                format!("is {}; this build opens sealing scheme {SEALING_SCHEME}", sealed.scheme),
            ));
        }
        let personal = [
            PersonalField::Name,
            PersonalField::Title,
            PersonalField::Topic,
            PersonalField::Notes,
            PersonalField::Description,
            PersonalField::Evidence,
            PersonalField::Text,
            PersonalField::Actions,
        ];
        for (index, field) in sealed.fields.iter().enumerate() {
            if !personal.iter().any(|&p| personal_field_number(kind, p) == Some(field.field)) {
                return Err(Violation::new(
                    format!("{prefix}.sealed.fields[{index}].field"),
                    format!("is {}, which is no personal field of {kind}", field.field),
                ));
            }
        }
        Ok(SealedParts { fields: sealed.fields })
    }

    /// The field's sealed text, if the stored form sealed it.
    fn take(&mut self, number: u32, path: impl Fn() -> String, limits: &Limits) -> Result<Option<Personal>, Violation> {
        let Some(index) = self.fields.iter().position(|f| f.field == number) else { return Ok(None) };
        let field = self.fields.swap_remove(index);
        let contacts = field
            .contact_ids
            .into_iter()
            .map(|id| ContactId::parse(id, limits).map_err(|e| e.at(path())))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(if field.ciphertext.is_empty() {
            Personal::Forgotten
        } else {
            Personal::Sealed(Sealed { contacts, bytes: field.ciphertext })
        }))
    }
}

fn timestamp_from_wire(ts: Option<&wkt::Timestamp>, field: impl Fn() -> String) -> Result<Timestamp, Violation> {
    let ts = ts.ok_or_else(|| Violation::new(field(), "is required; give the time the event happened"))?;
    Timestamp::from_parts(ts.seconds, ts.nanos).map_err(|e| e.at(field()))
}

/// Field parsers for one body, sharing its path prefix (`events[3].gift_given`). Each takes
/// the field's value, which becomes the domain's.
struct Fields<'a> {
    /// The event's path (`events[3]`).
    prefix: &'a str,
    /// The body's field name (`gift_given`).
    body: &'a str,
    limits: &'a Limits,
    /// The stored form's sealed fields (none in a client's event).
    sealed: &'a RefCell<SealedParts>,
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
    fn staff(&self, field: &str, value: String) -> Result<StaffId, Violation> {
        StaffId::parse(value, self.limits).map_err(self.at(field))
    }
    fn contact(&self, field: &str, value: String) -> Result<ContactId, Violation> {
        ContactId::parse(value, self.limits).map_err(self.at(field))
    }
    /// A contact id that may be empty (the organisation as a whole).
    fn optional_contact(&self, field: &str, value: String) -> Result<Option<ContactId>, Violation> {
        (!value.is_empty()).then(|| self.contact(field, value)).transpose()
    }
    fn plan(&self, field: &str, value: String) -> Result<PlanId, Violation> {
        PlanId::parse(value, self.limits).map_err(self.at(field))
    }
    fn support(&self, field: &str, value: i32) -> Result<domain::Support, Violation> {
        domain::Support::new(value).map_err(self.at(field))
    }
    fn intimacy(&self, field: &str, value: u32) -> Result<domain::Intimacy, Violation> {
        domain::Intimacy::new(value).map_err(self.at(field))
    }
    fn due(&self, field: &str, value: Option<wkt::Timestamp>) -> Result<Timestamp, Violation> {
        let ts = value.ok_or_else(|| Violation::new(self.path(field), "is required; give the date the plan is due"))?;
        Timestamp::from_parts(ts.seconds, ts.nanos).map_err(self.at(field))
    }
    fn label(&self, field: &str, value: String) -> Result<Label, Violation> {
        Label::parse(value, self.limits).map_err(self.at(field))
    }
    fn required_label(&self, field: &str, value: String) -> Result<Label, Violation> {
        Label::parse_required(value, self.limits).map_err(self.at(field))
    }
    fn note(&self, field: &str, value: String) -> Result<Note, Violation> {
        Note::parse(value, self.limits).map_err(self.at(field))
    }
    fn sealed(&self, field: &str, number: u32) -> Result<Option<Personal>, Violation> {
        self.sealed.borrow_mut().take(number, || format!("{}.sealed.{field}", self.prefix), self.limits)
    }
    /// A personal label: sealed in the stored form, else in clear (and then checked).
    fn personal_label(&self, field: &str, number: u32, value: String, required: bool) -> Result<Personal, Violation> {
        if let Some(sealed) = self.sealed(field, number)? {
            return Ok(sealed);
        }
        let label = if required { self.required_label(field, value)? } else { self.label(field, value)? };
        Ok(Personal::Clear(label.into_string()))
    }
    /// A personal note: sealed in the stored form, else in clear (and then checked).
    fn personal_note(&self, field: &str, number: u32, value: String) -> Result<Personal, Violation> {
        if let Some(sealed) = self.sealed(field, number)? {
            return Ok(sealed);
        }
        Ok(Personal::Clear(self.note(field, value)?.into_string()))
    }
    /// An optional personal label (`ContactUpdated`): set when sealed or given.
    fn optional_personal_label(
        &self,
        field: &str,
        number: u32,
        value: Option<String>,
        required: bool,
    ) -> Result<Option<Personal>, Violation> {
        match (self.sealed(field, number)?, value) {
            (Some(sealed), _) => Ok(Some(sealed)),
            (None, Some(value)) => self.personal_label(field, number, value, required).map(Some),
            (None, None) => Ok(None),
        }
    }
    fn money(&self, value_field: &str, value: i64, currency_field: &str, currency: &str) -> Result<Money, Violation> {
        let currency = Currency::parse(currency).map_err(self.at(currency_field))?;
        Money::new(value, currency).map_err(self.at(value_field))
    }
    fn list<T>(
        &self,
        field: &str,
        values: Vec<String>,
        parse: impl Fn(String, &Limits) -> Result<T, InvalidValue>,
    ) -> Result<Vec<T>, Violation> {
        values
            .into_iter()
            .enumerate()
            .map(|(i, v)| parse(v, self.limits).map_err(|e| e.at(self.path(&format!("{field}[{i}]")))))
            .collect()
    }
}

fn body_from_wire(
    body: pb::event::Body,
    sealed: Option<pb::SealedFields>,
    prefix: &str,
    limits: &Limits,
) -> Result<EventBody, Violation> {
    use pb::event::Body as B;
    let sealed = RefCell::new(SealedParts::of(sealed, kind_of(&body), prefix)?);
    let sealed = &sealed;
    let f = |body| Fields { prefix, body, limits, sealed };
    Ok(match body {
        B::AccountOpened(b) => {
            let f = f("account_opened");
            EventBody::AccountOpened(domain::AccountOpened {
                name: f.required_label("name", b.name)?,
                industry: f.label("industry", b.industry)?,
                owner: f.staff("owner", b.owner)?,
            })
        }
        B::TierAssigned(b) => {
            let f = f("tier_assigned");
            EventBody::TierAssigned(domain::TierAssigned {
                tier: from_number(b.tier, || f.path("tier"))?,
                reason: f.label("reason", b.reason)?,
            })
        }
        B::ContactAdded(b) => {
            let f = f("contact_added");
            EventBody::ContactAdded(domain::ContactAdded {
                contact_id: f.contact("contact_id", b.contact_id)?,
                name: f.personal_label("name", 2, b.name, true)?,
                title: f.personal_label("title", 3, b.title, false)?,
                department: f.label("department", b.department)?,
                role: from_number(b.role, || f.path("role"))?,
                key: b.key,
            })
        }
        B::ContactUpdated(b) => {
            let f = f("contact_updated");
            EventBody::ContactUpdated(domain::ContactUpdated {
                contact_id: f.contact("contact_id", b.contact_id)?,
                name: f.optional_personal_label("name", 2, b.name, true)?,
                title: f.optional_personal_label("title", 3, b.title, false)?,
                department: b.department.map(|v| f.label("department", v)).transpose()?,
                role: b.role.map(|v| from_number(v, || f.path("role"))).transpose()?,
                key: b.key,
            })
        }
        B::ContactLeft(b) => {
            let f = f("contact_left");
            EventBody::ContactLeft(domain::ContactLeft {
                contact_id: f.contact("contact_id", b.contact_id)?,
                reason: f.label("reason", b.reason)?,
            })
        }
        B::MeetingHeld(b) => {
            let f = f("meeting_held");
            EventBody::MeetingHeld(domain::MeetingHeld {
                staff: f.list("staff", b.staff, StaffId::parse)?,
                contact_ids: f.list("contact_ids", b.contact_ids, ContactId::parse)?,
                kind: from_number(b.kind, || f.path("kind"))?,
                topic: f.personal_label("topic", 4, b.topic, true)?,
                notes: f.personal_note("notes", 5, b.notes)?,
            })
        }
        B::GiftGiven(b) => {
            let f = f("gift_given");
            EventBody::GiftGiven(domain::GiftGiven {
                giver: f.staff("giver", b.giver)?,
                recipient: f.contact("recipient_contact_id", b.recipient_contact_id)?,
                description: f.personal_label("description", 3, b.description, true)?,
                value: f.money("value_minor", b.value_minor, "currency", &b.currency)?,
                approval_ref: Some(f.label("approval_ref", b.approval_ref)?).filter(|r| !r.is_empty()),
            })
        }
        B::SupportSignal(b) => {
            let f = f("support_signal");
            EventBody::SupportSignal(domain::SupportSignal {
                contact_id: f.contact("contact_id", b.contact_id)?,
                support: f.support("support", b.support)?,
                intimacy: f.intimacy("intimacy", b.intimacy)?,
                evidence: f.personal_note("evidence", 4, b.evidence)?,
            })
        }
        B::OwnerChanged(b) => {
            let f = f("owner_changed");
            EventBody::OwnerChanged(domain::OwnerChanged {
                from_owner: f.staff("from_owner", b.from_owner)?,
                to_owner: f.staff("to_owner", b.to_owner)?,
                reason: f.required_label("reason", b.reason)?,
                handover_note: f.note("handover_note", b.handover_note)?,
            })
        }
        B::TeamMemberJoined(b) => {
            let f = f("team_member_joined");
            EventBody::TeamMemberJoined(domain::TeamMemberJoined {
                member: f.staff("member", b.member)?,
                role: from_number(b.role, || f.path("role"))?,
                business_unit: f.label("business_unit", b.business_unit)?,
            })
        }
        B::TeamMemberLeft(b) => {
            let f = f("team_member_left");
            EventBody::TeamMemberLeft(domain::TeamMemberLeft {
                member: f.staff("member", b.member)?,
                reason: f.label("reason", b.reason)?,
            })
        }
        B::FeedbackReceived(b) => {
            let f = f("feedback_received");
            EventBody::FeedbackReceived(domain::FeedbackReceived {
                contact_id: f.optional_contact("contact_id", b.contact_id)?,
                score: domain::SatisfactionScore::new(b.score).map_err(f.at("score"))?,
                text: f.personal_note("text", 3, b.text)?,
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
                title: f.required_label("title", b.title)?,
                value,
                reference: f.label("reference", b.reference)?,
            })
        }
        B::EventRetracted(b) => {
            let f = f("event_retracted");
            EventBody::EventRetracted(domain::EventRetracted {
                target: EventId::parse(&b.event_id).map_err(f.at("event_id"))?,
                reason: f.required_label("reason", b.reason)?,
            })
        }
        B::ContactForgotten(b) => {
            let f = f("contact_forgotten");
            EventBody::ContactForgotten(domain::ContactForgotten {
                contact_id: f.contact("contact_id", b.contact_id)?,
                reason: f.required_label("reason", b.reason)?,
                requested_by: f.staff("requested_by", b.requested_by)?,
            })
        }
        B::RelationshipPlanned(b) => {
            let f = f("relationship_planned");
            EventBody::RelationshipPlanned(domain::RelationshipPlanned {
                plan_id: f.plan("plan_id", b.plan_id)?,
                contact_id: f.contact("contact_id", b.contact_id)?,
                target: domain::PlanTarget {
                    support: f.support("target_support", b.target_support)?,
                    intimacy: f.intimacy("target_intimacy", b.target_intimacy)?,
                },
                due_at: f.due("due_at", b.due_at)?,
                owner: f.staff("owner", b.owner)?,
                actions: f.personal_note("actions", 7, b.actions)?,
                goal: f.required_label("goal", b.goal)?,
                goal_reference: f.label("goal_reference", b.goal_reference)?,
            })
        }
        B::PlanRevised(b) => {
            let f = f("plan_revised");
            EventBody::PlanRevised(domain::PlanRevised {
                plan_id: f.plan("plan_id", b.plan_id)?,
                target_support: b.target_support.map(|v| f.support("target_support", v)).transpose()?,
                target_intimacy: b.target_intimacy.map(|v| f.intimacy("target_intimacy", v)).transpose()?,
                due_at: b.due_at.map(|v| f.due("due_at", Some(v))).transpose()?,
                reason: f.required_label("reason", b.reason)?,
            })
        }
        B::PlanClosed(b) => {
            let f = f("plan_closed");
            EventBody::PlanClosed(domain::PlanClosed {
                plan_id: f.plan("plan_id", b.plan_id)?,
                outcome: from_number(b.outcome, || f.path("outcome"))?,
                reason: f.required_label("reason", b.reason)?,
            })
        }
        B::CompetitorSignal(b) => {
            let f = f("competitor_signal");
            EventBody::CompetitorSignal(domain::CompetitorSignal {
                competitor: f.required_label("competitor", b.competitor)?,
                contact_id: f.optional_contact("contact_id", b.contact_id)?,
                stance: f.support("stance", b.stance)?,
                evidence: f.personal_note("evidence", 4, b.evidence)?,
            })
        }
        B::StaffAssigned(b) => {
            let f = f("staff_assigned");
            EventBody::StaffAssigned(domain::StaffAssigned {
                staff: f.staff("staff", b.staff)?,
                business_unit: f.required_label("business_unit", b.business_unit)?,
            })
        }
    })
}

/// Renders a domain event in its stored wire form: canonical, so equal events encode to equal
/// bytes. Clear text stays in its field; sealed (and forgotten) text goes to `sealed`, its
/// field left empty.
pub fn event_to_wire(event: &domain::Event) -> pb::Event {
    let kind = event.body.kind();
    let subjects = event.body.data_subjects();
    let mut sealed = Vec::new();
    let body = body_to_wire(&event.body, &mut |field, text| match text {
        Personal::Clear(text) => Some(text.clone()),
        Personal::Sealed(Sealed { contacts, bytes }) => {
            sealed.push(sealed_field(kind, field, contacts, bytes.clone()));
            None
        }
        Personal::Forgotten => {
            sealed.push(sealed_field(kind, field, &subjects, Vec::new()));
            None
        }
    });
    pb::Event {
        event_id: event.id.to_string(),
        occurred_at: Some(timestamp_to_wire(event.occurred_at)),
        actor: event.actor.as_str().to_owned(),
        source: event.source.as_str().to_owned(),
        body: Some(body),
        sealed: (!sealed.is_empty()).then_some(pb::SealedFields { scheme: SEALING_SCHEME, fields: sealed }),
    }
}

fn sealed_field(kind: EventKind, field: PersonalField, contacts: &[ContactId], ciphertext: Vec<u8>) -> pb::SealedField {
    pb::SealedField {
        field: personal_field_number(kind, field).unwrap_or_default(),
        contact_ids: contacts.iter().map(|c| c.as_str().to_owned()).collect(),
        ciphertext,
    }
}

/// Renders a domain event as readers see it: personal text in clear, or, where a contact it
/// concerns was forgotten (or its key is not there), the required fields (a name, a meeting's
/// topic, a gift's description) as `[forgotten]` and other text empty. Never holds `sealed`. The flag says whether anything was shown forgotten.
pub fn event_to_reader(event: &domain::Event) -> (pb::Event, bool) {
    let mut forgotten = false;
    let body = body_to_wire(&event.body, &mut |field, text| match text {
        Personal::Clear(text) => Some(text.clone()),
        Personal::Sealed(_) | Personal::Forgotten => {
            forgotten = true;
            // Fields an event requires show the marker, so that what a reader gets is still a
            // valid event; the others are empty.
            let required = matches!(field, PersonalField::Name | PersonalField::Topic | PersonalField::Description);
            Some(if required { FORGOTTEN_NAME.to_owned() } else { String::new() })
        }
    });
    let wire = pb::Event {
        event_id: event.id.to_string(),
        occurred_at: Some(timestamp_to_wire(event.occurred_at)),
        actor: event.actor.as_str().to_owned(),
        source: event.source.as_str().to_owned(),
        body: Some(body),
        sealed: None,
    };
    (wire, forgotten)
}

/// How [`body_to_wire`] renders one personal field: its text, or `None` to leave it unset.
type PersonalText<'a> = dyn FnMut(PersonalField, &Personal) -> Option<String> + 'a;

fn body_to_wire(body: &EventBody, personal: &mut PersonalText<'_>) -> pb::event::Body {
    use pb::event::Body as B;
    // The text as it is (the domain's types are text that passed its rules).
    let s = |v: &dyn AsRef<str>| v.as_ref().to_owned();
    match body {
        EventBody::AccountOpened(b) => {
            B::AccountOpened(pb::AccountOpened { name: s(&b.name), industry: s(&b.industry), owner: s(&b.owner) })
        }
        EventBody::TierAssigned(b) => {
            B::TierAssigned(pb::TierAssigned { tier: to_number(b.tier), reason: s(&b.reason) })
        }
        EventBody::ContactAdded(b) => B::ContactAdded(pb::ContactAdded {
            contact_id: s(&b.contact_id),
            name: personal(PersonalField::Name, &b.name).unwrap_or_default(),
            title: personal(PersonalField::Title, &b.title).unwrap_or_default(),
            department: s(&b.department),
            role: to_number(b.role),
            key: b.key,
        }),
        EventBody::ContactUpdated(b) => B::ContactUpdated(pb::ContactUpdated {
            contact_id: s(&b.contact_id),
            name: b.name.as_ref().and_then(|v| personal(PersonalField::Name, v)),
            title: b.title.as_ref().and_then(|v| personal(PersonalField::Title, v)),
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
            topic: personal(PersonalField::Topic, &b.topic).unwrap_or_default(),
            notes: personal(PersonalField::Notes, &b.notes).unwrap_or_default(),
        }),
        EventBody::GiftGiven(b) => B::GiftGiven(pb::GiftGiven {
            giver: s(&b.giver),
            recipient_contact_id: s(&b.recipient),
            description: personal(PersonalField::Description, &b.description).unwrap_or_default(),
            value_minor: b.value.minor(),
            currency: b.value.currency().code().to_owned(),
            approval_ref: b.approval_ref.as_ref().map(|v| s(v)).unwrap_or_default(),
        }),
        EventBody::SupportSignal(b) => B::SupportSignal(pb::SupportSignal {
            contact_id: s(&b.contact_id),
            support: i32::from(b.support.value()),
            intimacy: u32::from(b.intimacy.value()),
            evidence: personal(PersonalField::Evidence, &b.evidence).unwrap_or_default(),
        }),
        EventBody::OwnerChanged(b) => B::OwnerChanged(pb::OwnerChanged {
            from_owner: s(&b.from_owner),
            to_owner: s(&b.to_owner),
            reason: s(&b.reason),
            handover_note: b.handover_note.as_str().to_owned(),
        }),
        EventBody::TeamMemberJoined(b) => B::TeamMemberJoined(pb::TeamMemberJoined {
            member: s(&b.member),
            role: to_number(b.role),
            business_unit: s(&b.business_unit),
        }),
        EventBody::TeamMemberLeft(b) => {
            B::TeamMemberLeft(pb::TeamMemberLeft { member: s(&b.member), reason: s(&b.reason) })
        }
        EventBody::FeedbackReceived(b) => B::FeedbackReceived(pb::FeedbackReceived {
            contact_id: b.contact_id.as_ref().map(|v| s(v)).unwrap_or_default(),
            score: u32::from(b.score.value()),
            text: personal(PersonalField::Text, &b.text).unwrap_or_default(),
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
        EventBody::ContactForgotten(b) => B::ContactForgotten(pb::ContactForgotten {
            contact_id: s(&b.contact_id),
            reason: s(&b.reason),
            requested_by: s(&b.requested_by),
        }),
        EventBody::RelationshipPlanned(b) => B::RelationshipPlanned(pb::RelationshipPlanned {
            plan_id: s(&b.plan_id),
            contact_id: s(&b.contact_id),
            target_support: i32::from(b.target.support.value()),
            target_intimacy: u32::from(b.target.intimacy.value()),
            due_at: Some(timestamp_to_wire(b.due_at)),
            owner: s(&b.owner),
            actions: personal(PersonalField::Actions, &b.actions).unwrap_or_default(),
            goal: s(&b.goal),
            goal_reference: s(&b.goal_reference),
        }),
        EventBody::PlanRevised(b) => B::PlanRevised(pb::PlanRevised {
            plan_id: s(&b.plan_id),
            target_support: b.target_support.map(|v| i32::from(v.value())),
            target_intimacy: b.target_intimacy.map(|v| u32::from(v.value())),
            due_at: b.due_at.map(timestamp_to_wire),
            reason: s(&b.reason),
        }),
        EventBody::PlanClosed(b) => B::PlanClosed(pb::PlanClosed {
            plan_id: s(&b.plan_id),
            outcome: to_number(b.outcome),
            reason: s(&b.reason),
        }),
        EventBody::CompetitorSignal(b) => B::CompetitorSignal(pb::CompetitorSignal {
            competitor: s(&b.competitor),
            contact_id: b.contact_id.as_ref().map(|v| s(v)).unwrap_or_default(),
            stance: i32::from(b.stance.value()),
            evidence: personal(PersonalField::Evidence, &b.evidence).unwrap_or_default(),
        }),
        EventBody::StaffAssigned(b) => {
            B::StaffAssigned(pb::StaffAssigned { staff: s(&b.staff), business_unit: s(&b.business_unit) })
        }
    }
}

/// What a recorded event says, as the domain words it: the line the CLI's history and the
/// console's timeline show.
pub fn summary(event: &pb::Event) -> String {
    match event_from_wire(event.clone(), "event", &rapport_domain::Limits::for_recorded_events()) {
        Ok(event) => event.body.summary(),
        Err(violation) => format!("(not a valid event: {violation})"),
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
        B::ContactForgotten(_) => EventKind::ContactForgotten,
        B::RelationshipPlanned(_) => EventKind::RelationshipPlanned,
        B::PlanRevised(_) => EventKind::PlanRevised,
        B::PlanClosed(_) => EventKind::PlanClosed,
        B::CompetitorSignal(_) => EventKind::CompetitorSignal,
        B::StaffAssigned(_) => EventKind::StaffAssigned,
    }
}
