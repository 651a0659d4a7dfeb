//! The one place where wire types (`rapport.v1`) and domain types meet.
//!
//! Parsing a wire event checks every value against its domain type and reports violations
//! with the field's path in the request (`events[2].support_signal.support`). Rendering goes
//! the other way, for the stored form of an event and for the views clients read.

use bytes::Bytes;
use prost::Message;
use rapport_domain as domain;
use rapport_domain::{
    AccountId, ContactId, ContactRole, Currency, EventBody, EventId, EventKind, InvalidValue, Label, Limits,
    MeetingKind, Money, Note, OutcomeKind, SourceSystem, StaffId, TeamRole, Tier, Timestamp, Violation,
};
use rapport_projection::{
    AccountProjection, ContactActivity, Factor, GiftFlag, GiftRecord, GiftRegister, HandoverReport, Movement,
    OutcomeRecord, RuleSet, Score, Scores,
};
use rapport_proto::{v1 as pb, wkt};
use rapport_store::StoredEvent;

use crate::error::{Expected, ReadError};
use crate::projection::Cut;
use crate::writer::{Append, AppendOutcome};

/// Parses the expected-version clause of an append; unset means `any`.
pub(crate) fn expected_from_wire(expected: Option<&pb::ExpectedVersion>) -> Expected {
    use pb::expected_version::Kind;
    match expected.and_then(|e| e.kind.as_ref()) {
        None | Some(Kind::Any(_)) => Expected::Any,
        Some(Kind::NoStream(_)) | Some(Kind::Exact(0)) => Expected::NoStream,
        Some(Kind::StreamExists(_)) => Expected::StreamExists,
        Some(Kind::Exact(version)) => Expected::Exact(*version),
    }
}

/// Parses a contact id from a request field.
pub(crate) fn contact_id_from_wire(value: &str, field: &str, limits: &Limits) -> Result<ContactId, Violation> {
    ContactId::parse(value, limits).map_err(|e| e.at(field))
}

/// Parses an account id from a request field.
pub(crate) fn account_id_from_wire(value: &str, field: &str, limits: &Limits) -> Result<AccountId, Violation> {
    AccountId::parse(value, limits).map_err(|e| e.at(field))
}

/// Parses an append request field by field; the writer then judges it against the account.
/// `recorded_by` is the authenticated identity making the request (empty without authentication).
pub(crate) fn append_from_wire(
    request: &pb::AppendRequest,
    recorded_by: String,
    limits: &Limits,
) -> Result<Append, Violation> {
    let account_id = account_id_from_wire(&request.account_id, "account_id", limits)?;
    // Counted before parsing, so an oversized batch costs nothing to refuse.
    if request.events.len() > limits.max_events_per_append {
        return Err(Violation::new(
            "events",
            format!(
                "{} events in one request; at most {} are allowed, split the batch",
                request.events.len(),
                limits.max_events_per_append
            ),
        ));
    }
    let events = request
        .events
        .iter()
        .enumerate()
        .map(|(index, event)| event_from_wire(event, &format!("events[{index}]"), limits))
        .collect::<Result<Vec<_>, _>>()?;
    let payloads = events.iter().map(encode_event).collect();
    Ok(Append { account_id, expected: expected_from_wire(request.expected.as_ref()), events, payloads, recorded_by })
}

/// The wire form of where an append's events are.
pub(crate) fn outcome_to_wire(outcome: AppendOutcome) -> pb::AppendResponse {
    pb::AppendResponse {
        first_version: outcome.first_version,
        last_version: outcome.last_version,
        first_position: outcome.first_position,
        last_position: outcome.last_position,
        duplicate: outcome.duplicate,
    }
}

/// Parses one wire event of an append request; `prefix` is its path (`events[3]`).
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

/// Parses a wire enum value: 0 (unspecified) is missing, unknown numbers are named as such.
/// `field` makes the field's path, only on failure.
fn enum_from_wire<W, D>(
    value: i32,
    field: impl Fn() -> String,
    names: &str,
    map: impl FnOnce(W) -> Option<D>,
) -> Result<D, Violation>
where
    W: TryFrom<i32>,
{
    let unknown = || Violation::new(field(), format!("{value} is not a known value; use one of {names}"));
    match W::try_from(value) {
        Ok(wire) => match map(wire) {
            Some(domain) => Ok(domain),
            None if value == 0 => Err(Violation::new(field(), format!("is required; use one of {names}"))),
            None => Err(unknown()),
        },
        Err(_) => Err(unknown()),
    }
}

fn tier_from_wire(value: i32, field: impl Fn() -> String) -> Result<Tier, Violation> {
    enum_from_wire(value, field, "TIER_S, TIER_A, TIER_B, TIER_C", |t: pb::Tier| match t {
        pb::Tier::Unspecified => None,
        pb::Tier::S => Some(Tier::S),
        pb::Tier::A => Some(Tier::A),
        pb::Tier::B => Some(Tier::B),
        pb::Tier::C => Some(Tier::C),
    })
}

fn role_from_wire(value: i32, field: impl Fn() -> String) -> Result<ContactRole, Violation> {
    enum_from_wire(
        value,
        field,
        "CONTACT_ROLE_DECISION_MAKER, _APPROVER, _INFLUENCER, _USER, _GATEKEEPER, _TECHNICAL_EVALUATOR",
        |r: pb::ContactRole| match r {
            pb::ContactRole::Unspecified => None,
            pb::ContactRole::DecisionMaker => Some(ContactRole::DecisionMaker),
            pb::ContactRole::Approver => Some(ContactRole::Approver),
            pb::ContactRole::Influencer => Some(ContactRole::Influencer),
            pb::ContactRole::User => Some(ContactRole::User),
            pb::ContactRole::Gatekeeper => Some(ContactRole::Gatekeeper),
            pb::ContactRole::TechnicalEvaluator => Some(ContactRole::TechnicalEvaluator),
        },
    )
}

fn meeting_kind_from_wire(value: i32, field: impl Fn() -> String) -> Result<MeetingKind, Violation> {
    enum_from_wire(
        value,
        field,
        "MEETING_KIND_VISIT, _EXECUTIVE_VISIT, _DINNER, _TECHNICAL_EXCHANGE, _CALL, _EVENT, _WORKSHOP",
        |k: pb::MeetingKind| match k {
            pb::MeetingKind::Unspecified => None,
            pb::MeetingKind::Visit => Some(MeetingKind::Visit),
            pb::MeetingKind::ExecutiveVisit => Some(MeetingKind::ExecutiveVisit),
            pb::MeetingKind::Dinner => Some(MeetingKind::Dinner),
            pb::MeetingKind::TechnicalExchange => Some(MeetingKind::TechnicalExchange),
            pb::MeetingKind::Call => Some(MeetingKind::Call),
            pb::MeetingKind::Event => Some(MeetingKind::Event),
            pb::MeetingKind::Workshop => Some(MeetingKind::Workshop),
        },
    )
}

fn team_role_from_wire(value: i32, field: impl Fn() -> String) -> Result<TeamRole, Violation> {
    enum_from_wire(
        value,
        field,
        "TEAM_ROLE_SALES, _SOLUTION, _DELIVERY, _SERVICE, _EXECUTIVE_SPONSOR",
        |r: pb::TeamRole| match r {
            pb::TeamRole::Unspecified => None,
            pb::TeamRole::Sales => Some(TeamRole::Sales),
            pb::TeamRole::Solution => Some(TeamRole::Solution),
            pb::TeamRole::Delivery => Some(TeamRole::Delivery),
            pb::TeamRole::Service => Some(TeamRole::Service),
            pb::TeamRole::ExecutiveSponsor => Some(TeamRole::ExecutiveSponsor),
        },
    )
}

fn outcome_kind_from_wire(value: i32, field: impl Fn() -> String) -> Result<OutcomeKind, Violation> {
    enum_from_wire(
        value,
        field,
        "OUTCOME_KIND_DEAL_WON, _DEAL_LOST, _STRATEGIC_AGREEMENT, _RENEWAL, _JOINT_INITIATIVE",
        |k: pb::OutcomeKind| match k {
            pb::OutcomeKind::Unspecified => None,
            pb::OutcomeKind::DealWon => Some(OutcomeKind::DealWon),
            pb::OutcomeKind::DealLost => Some(OutcomeKind::DealLost),
            pb::OutcomeKind::StrategicAgreement => Some(OutcomeKind::StrategicAgreement),
            pb::OutcomeKind::Renewal => Some(OutcomeKind::Renewal),
            pb::OutcomeKind::JointInitiative => Some(OutcomeKind::JointInitiative),
        },
    )
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
                tier: tier_from_wire(b.tier, || f.path("tier"))?,
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
                role: role_from_wire(b.role, || f.path("role"))?,
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
                role: b.role.map(|v| role_from_wire(v, || f.path("role"))).transpose()?,
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
                kind: meeting_kind_from_wire(b.kind, || f.path("kind"))?,
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
                role: team_role_from_wire(b.role, || f.path("role"))?,
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
                kind: outcome_kind_from_wire(b.kind, || f.path("kind"))?,
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
pub(crate) fn event_to_wire(event: &domain::Event) -> pb::Event {
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
            B::TierAssigned(pb::TierAssigned { tier: tier_to_wire(b.tier) as i32, reason: s(&b.reason) })
        }
        EventBody::ContactAdded(b) => B::ContactAdded(pb::ContactAdded {
            contact_id: s(&b.contact_id),
            name: s(&b.name),
            title: s(&b.title),
            department: s(&b.department),
            role: role_to_wire(b.role) as i32,
            key: b.key,
        }),
        EventBody::ContactUpdated(b) => B::ContactUpdated(pb::ContactUpdated {
            contact_id: s(&b.contact_id),
            name: b.name.as_ref().map(|v| s(v)),
            title: b.title.as_ref().map(|v| s(v)),
            department: b.department.as_ref().map(|v| s(v)),
            role: b.role.map(|r| role_to_wire(r) as i32),
            key: b.key,
        }),
        EventBody::ContactLeft(b) => {
            B::ContactLeft(pb::ContactLeft { contact_id: s(&b.contact_id), reason: s(&b.reason) })
        }
        EventBody::MeetingHeld(b) => B::MeetingHeld(pb::MeetingHeld {
            staff: b.staff.iter().map(|v| s(v)).collect(),
            contact_ids: b.contact_ids.iter().map(|v| s(v)).collect(),
            kind: meeting_kind_to_wire(b.kind) as i32,
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
            B::TeamMemberJoined(pb::TeamMemberJoined { member: s(&b.member), role: team_role_to_wire(b.role) as i32 })
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
            kind: outcome_kind_to_wire(b.kind) as i32,
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

fn tier_to_wire(tier: Tier) -> pb::Tier {
    match tier {
        Tier::S => pb::Tier::S,
        Tier::A => pb::Tier::A,
        Tier::B => pb::Tier::B,
        Tier::C => pb::Tier::C,
    }
}

fn role_to_wire(role: ContactRole) -> pb::ContactRole {
    match role {
        ContactRole::DecisionMaker => pb::ContactRole::DecisionMaker,
        ContactRole::Approver => pb::ContactRole::Approver,
        ContactRole::Influencer => pb::ContactRole::Influencer,
        ContactRole::User => pb::ContactRole::User,
        ContactRole::Gatekeeper => pb::ContactRole::Gatekeeper,
        ContactRole::TechnicalEvaluator => pb::ContactRole::TechnicalEvaluator,
    }
}

fn meeting_kind_to_wire(kind: MeetingKind) -> pb::MeetingKind {
    match kind {
        MeetingKind::Visit => pb::MeetingKind::Visit,
        MeetingKind::ExecutiveVisit => pb::MeetingKind::ExecutiveVisit,
        MeetingKind::Dinner => pb::MeetingKind::Dinner,
        MeetingKind::TechnicalExchange => pb::MeetingKind::TechnicalExchange,
        MeetingKind::Call => pb::MeetingKind::Call,
        MeetingKind::Event => pb::MeetingKind::Event,
        MeetingKind::Workshop => pb::MeetingKind::Workshop,
    }
}

fn team_role_to_wire(role: TeamRole) -> pb::TeamRole {
    match role {
        TeamRole::Sales => pb::TeamRole::Sales,
        TeamRole::Solution => pb::TeamRole::Solution,
        TeamRole::Delivery => pb::TeamRole::Delivery,
        TeamRole::Service => pb::TeamRole::Service,
        TeamRole::ExecutiveSponsor => pb::TeamRole::ExecutiveSponsor,
    }
}

fn outcome_kind_to_wire(kind: OutcomeKind) -> pb::OutcomeKind {
    match kind {
        OutcomeKind::DealWon => pb::OutcomeKind::DealWon,
        OutcomeKind::DealLost => pb::OutcomeKind::DealLost,
        OutcomeKind::StrategicAgreement => pb::OutcomeKind::StrategicAgreement,
        OutcomeKind::Renewal => pb::OutcomeKind::Renewal,
        OutcomeKind::JointInitiative => pb::OutcomeKind::JointInitiative,
    }
}

/// The wire form of an instant.
pub(crate) fn timestamp_to_wire(ts: Timestamp) -> wkt::Timestamp {
    let (seconds, nanos) = ts.parts();
    wkt::Timestamp { seconds, nanos }
}

/// The bytes the log stores for an event: its canonical wire encoding.
pub fn encode_event(event: &domain::Event) -> Bytes {
    Bytes::from(event_to_wire(event).encode_to_vec())
}

/// Decodes a stored payload back into a domain event.
///
/// Stored events passed validation when they were appended; they are parsed here without the
/// request limits (which an operator may have tightened since), so history always folds. A
/// payload that does not parse means the log is damaged.
pub(crate) fn decode_event(record: &StoredEvent) -> Result<domain::Event, ReadError> {
    event_from_bytes(&record.payload).map_err(|what| corrupt(record, &what))
}

/// Parses an event's stored bytes (its canonical wire encoding) into the domain event, without
/// the request limits; the error says what does not decode.
pub fn event_from_bytes(payload: &[u8]) -> Result<domain::Event, String> {
    let wire = pb::Event::decode(payload).map_err(|e| e.to_string())?;
    event_from_wire(&wire, "event", &Limits::for_recorded_events()).map_err(|v| v.to_string())
}

fn corrupt(record: &StoredEvent, what: &str) -> ReadError {
    ReadError::Corrupt(format!(
        "the event at position {} (account \"{}\", version {}) does not decode: {what}",
        record.position, record.account_id, record.version
    ))
}

/// The wire form of a recorded event.
pub(crate) fn recorded_to_wire(record: &StoredEvent) -> Result<pb::RecordedEvent, ReadError> {
    let event = pb::Event::decode(record.payload.as_ref()).map_err(|e| corrupt(record, &e.to_string()))?;
    Ok(pb::RecordedEvent {
        account_id: record.account_id.to_string(),
        version: record.version,
        position: record.position,
        recorded_at: Some(timestamp_to_wire(record.recorded_at)),
        event: Some(event),
        hash: record.hash.to_vec(),
        prev_hash: record.prev_hash.to_vec(),
        retracted_by: 0,
        recorded_by: record.recorded_by.clone(),
    })
}

fn touch_to_wire(touch: &domain::Touch) -> pb::TouchView {
    pb::TouchView {
        by: touch.by.to_string(),
        at: Some(timestamp_to_wire(touch.at)),
        kind: match touch.kind {
            domain::TouchKind::Meeting => "meeting_held",
            domain::TouchKind::Gift => "gift_given",
        }
        .to_owned(),
    }
}

fn money_to_wire(money: Money) -> pb::Money {
    pb::Money { minor: money.minor(), currency: money.currency().code().to_owned() }
}

fn contact_to_wire(c: &domain::Contact, activity: Option<&ContactActivity>) -> pb::ContactView {
    pb::ContactView {
        contact_id: c.id.to_string(),
        name: c.name.to_string(),
        department: c.department.to_string(),
        key: c.key,
        support: c.assessment.map_or(0, |a| i32::from(a.support.value())),
        intimacy: c.assessment.map_or(0, |a| u32::from(a.intimacy.value())),
        last_touched_at: c.last_touch.as_ref().map(|t| timestamp_to_wire(t.at)),
        last_touched_by: c.last_touch.as_ref().map(|t| t.by.to_string()).unwrap_or_default(),
        title: c.title.to_string(),
        role: role_to_wire(c.role) as i32,
        assessed_at: c.assessment.map(|a| timestamp_to_wire(a.at)),
        last_touch_kind: c.last_touch.as_ref().map(|t| touch_to_wire(t).kind).unwrap_or_default(),
        left_at: c.left_at.map(timestamp_to_wire),
        assessments: activity
            .map(|a| {
                a.assessments
                    .iter()
                    .map(|h| pb::AssessmentView {
                        support: i32::from(h.assessment.support.value()),
                        intimacy: u32::from(h.assessment.intimacy.value()),
                        at: Some(timestamp_to_wire(h.assessment.at)),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        touched_by: activity
            .map(|a| a.touched_by.iter().map(|(person, t)| touch_to_wire(&t.by(person))).collect())
            .unwrap_or_default(),
    }
}

fn factors_to_wire(factors: &[Factor]) -> Vec<pb::Factor> {
    factors.iter().map(|f| pb::Factor { key: f.key.clone(), detail: f.detail.clone(), points: f.points }).collect()
}

pub(crate) fn score_to_wire(score: &Score) -> pb::Score {
    pb::Score { value: score.value, factors: factors_to_wire(&score.factors) }
}

pub(crate) fn scores_to_wire(scores: &Scores) -> pb::Scores {
    pb::Scores {
        as_of: Some(timestamp_to_wire(scores.as_of)),
        key_relationship: Some(score_to_wire(&scores.key_relationship)),
        general_relationship: Some(score_to_wire(&scores.general_relationship)),
        organisational_relationship: Some(score_to_wire(&scores.organisational_relationship)),
        personalisation_risk: Some(score_to_wire(&scores.personalisation_risk)),
        health: Some(score_to_wire(&scores.health)),
        health_before: scores.health_before,
        value_class: scores.value_class.map(|c| c.name().to_owned()).unwrap_or_default(),
        value_factors: factors_to_wire(&scores.value_factors),
        at_risk: scores.at_risk.clone(),
    }
}

fn tenure_to_wire(t: &domain::Tenure) -> pb::OwnerTenure {
    pb::OwnerTenure {
        owner: t.owner.to_string(),
        from: Some(timestamp_to_wire(t.from)),
        to: t.to.map(timestamp_to_wire),
        reason: t.reason.to_string(),
    }
}

fn outcome_to_view(o: &OutcomeRecord) -> pb::OutcomeView {
    pb::OutcomeView {
        kind: outcome_kind_to_wire(o.kind) as i32,
        title: o.title.clone(),
        value: o.value.map(money_to_wire),
        at: Some(timestamp_to_wire(o.at)),
    }
}

fn gift_to_view(g: &GiftRecord) -> pb::GiftView {
    pb::GiftView {
        event_id: g.event_id.to_string(),
        at: Some(timestamp_to_wire(g.at)),
        giver: g.giver.to_string(),
        recipient_contact_id: g.recipient.to_string(),
        description: g.description.clone(),
        value: Some(money_to_wire(g.value)),
        approval_ref: g.approval_ref.clone().unwrap_or_default(),
    }
}

/// The view clients read of an account: its picture under a build and its scores as of `as_of`.
pub(crate) fn account_to_wire(projection: &AccountProjection, rules: &RuleSet, scores: &Scores) -> pb::AccountView {
    let account = &projection.account;
    let coverage = rapport_projection::coverage(projection, rules, scores.as_of);
    let contact = |c: &domain::Contact| contact_to_wire(c, projection.contacts.get(&c.id));
    pb::AccountView {
        account_id: account.id.to_string(),
        name: account.name.to_string(),
        tier: account.tier.as_ref().map(|t| t.tier.name().to_owned()).unwrap_or_default(),
        owner: account.owner.to_string(),
        version: account.version,
        owner_history: account.owner_history.iter().map(tenure_to_wire).collect(),
        contacts: account.contacts.values().filter(|c| c.is_current()).map(contact).collect(),
        team: account.team.keys().map(|m| m.to_string()).collect(),
        industry: account.industry.to_string(),
        opened_at: Some(timestamp_to_wire(account.opened_at)),
        last_activity_at: Some(timestamp_to_wire(account.last_activity_at)),
        team_members: account
            .team
            .iter()
            .map(|(member, m)| pb::TeamMemberView {
                member: member.to_string(),
                role: team_role_to_wire(m.role) as i32,
                since: Some(timestamp_to_wire(m.since)),
            })
            .collect(),
        former_contacts: account.contacts.values().filter(|c| !c.is_current()).map(contact).collect(),
        position: projection.position,
        tier_reason: account.tier.as_ref().map(|t| t.reason.to_string()).unwrap_or_default(),
        retracted_events: account.retracted.len() as u64,
        rule_set: rules.id(),
        scores: Some(scores_to_wire(scores)),
        tier_history: projection
            .tier_history
            .iter()
            .map(|t| pb::TierView {
                tier: t.tier.name().to_owned(),
                reason: t.reason.to_string(),
                since: Some(timestamp_to_wire(t.since)),
            })
            .collect(),
        departments_known: coverage.known.iter().map(|d| (*d).to_owned()).collect(),
        departments_touched: coverage.touched.iter().map(|d| (*d).to_owned()).collect(),
        outcomes: projection.outcomes.iter().map(outcome_to_view).collect(),
        feedback: projection
            .feedback
            .iter()
            .map(|f| pb::FeedbackView {
                contact_id: f.contact.as_ref().map(ToString::to_string).unwrap_or_default(),
                score: u32::from(f.score.value()),
                text: f.text.clone(),
                at: Some(timestamp_to_wire(f.at)),
            })
            .collect(),
        meetings_by_kind: projection.meetings_by_kind.iter().map(|(k, n)| (k.name().to_owned(), *n)).collect(),
        gift_totals: gift_totals_to_wire(&projection.gift_totals),
    }
}

fn gift_totals_to_wire(
    totals: &std::collections::BTreeMap<
        ContactId,
        std::collections::BTreeMap<i32, std::collections::BTreeMap<String, i64>>,
    >,
) -> Vec<pb::GiftTotal> {
    let mut out = Vec::new();
    for (contact, years) in totals {
        for (year, currencies) in years {
            for (currency, minor) in currencies {
                out.push(pb::GiftTotal {
                    contact_id: contact.to_string(),
                    year: *year,
                    total: Some(pb::Money { minor: *minor, currency: currency.clone() }),
                });
            }
        }
    }
    out
}

/// One line of the portfolio.
pub(crate) fn summary_to_wire(projection: &AccountProjection, scores: &Scores) -> pb::AccountSummary {
    let account = &projection.account;
    pb::AccountSummary {
        account_id: account.id.to_string(),
        name: account.name.to_string(),
        tier: account.tier.as_ref().map(|t| t.tier.name().to_owned()).unwrap_or_default(),
        owner: account.owner.to_string(),
        value_class: scores.value_class.map(|c| c.name().to_owned()).unwrap_or_default(),
        key_relationship: scores.key_relationship.value,
        general_relationship: scores.general_relationship.value,
        organisational_relationship: scores.organisational_relationship.value,
        personalisation_risk: scores.personalisation_risk.value,
        health: scores.health.value,
        at_risk: scores.at_risk.clone(),
        last_activity_at: Some(timestamp_to_wire(account.last_activity_at)),
    }
}

/// The handover report on the wire.
pub(crate) fn handover_to_wire(
    account_id: &AccountId,
    report: &HandoverReport,
    as_of: Timestamp,
    rule_set: String,
) -> pb::HandoverReport {
    pb::HandoverReport {
        account_id: account_id.to_string(),
        owner: report.owner.to_string(),
        previous: report.previous.as_ref().map(tenure_to_wire),
        handover_note: report.handover_note.clone().unwrap_or_default(),
        contacts: report
            .contacts
            .iter()
            .map(|c| pb::HandoverContact {
                contact: Some(contact_to_wire(&c.contact, None)),
                held_by: c.held_by.iter().map(touch_to_wire).collect(),
                only_through_owner: c.only_through_owner,
            })
            .collect(),
        recent_gifts: report.recent_gifts.iter().map(gift_to_view).collect(),
        open_outcomes: report.open_outcomes.iter().map(outcome_to_view).collect(),
        personalisation_risk: Some(score_to_wire(&report.risk)),
        risk_if_owner_leaves: report.risk_if_owner_leaves,
        as_of: Some(timestamp_to_wire(as_of)),
        rule_set,
    }
}

/// The gift register on the wire.
pub(crate) fn register_to_wire(
    account_id: &AccountId,
    register: &GiftRegister,
    rule_set: String,
) -> pb::GiftRegisterView {
    pb::GiftRegisterView {
        account_id: account_id.to_string(),
        as_of: Some(timestamp_to_wire(register.as_of)),
        window_days: register.window_days,
        gifts: register
            .gifts
            .iter()
            .map(|g| pb::RegisteredGift {
                gift: Some(gift_to_view(&g.gift)),
                above_threshold: g
                    .flags
                    .iter()
                    .find_map(|f| if let GiftFlag::AboveThreshold(t) = f { Some(*t) } else { None })
                    .unwrap_or_default(),
                no_threshold: g.flags.contains(&GiftFlag::NoThreshold),
                no_approval: g.flags.contains(&GiftFlag::NoApproval),
            })
            .collect(),
        totals: register.totals.iter().map(|(c, m)| pb::Money { minor: *m, currency: c.clone() }).collect(),
        totals_by_contact: register
            .totals_by_contact
            .iter()
            .flat_map(|(contact, totals)| {
                totals.iter().map(move |(c, m)| pb::GiftTotal {
                    contact_id: contact.to_string(),
                    year: 0,
                    total: Some(pb::Money { minor: *m, currency: c.clone() }),
                })
            })
            .collect(),
        rule_set,
    }
}

/// One account's movement between two builds on the wire.
pub(crate) fn movement_to_wire(movement: &Movement) -> pb::AccountMovement {
    pb::AccountMovement {
        account_id: movement.account_id.to_string(),
        a: Some(scores_to_wire(&movement.before)),
        b: Some(scores_to_wire(&movement.after)),
        largest_change: movement.largest_change,
        factors: movement
            .factors
            .iter()
            .map(|(score, factor, a, b)| pb::FactorMovement {
                score: score.clone(),
                factor: factor.clone(),
                a: *a,
                b: *b,
            })
            .collect(),
    }
}

/// A chain break on the wire.
pub(crate) fn chain_break_to_wire(found: &rapport_store::ChainBreak) -> pb::ChainBreak {
    pb::ChainBreak {
        account_id: found.account_id.to_string(),
        version: found.version,
        position: found.position,
        check: found.check.to_owned(),
        expected: found.expected.clone(),
        found: found.found.clone(),
        message: found.to_string(),
    }
}

/// The kind of a wire event's body.
pub(crate) fn kind_of(body: &pb::event::Body) -> EventKind {
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

/// Which past state a `GetAccount` asks for; `None` for the current one.
pub(crate) fn cut_from_wire(request: &pb::GetAccountRequest) -> Result<Option<Cut>, ReadError> {
    let invalid = |field: &str, reason: &str| ReadError::Invalid(Violation::new(field, reason));
    let kind = pb::AsOf::try_from(request.as_of_kind)
        .map_err(|_| invalid("as_of_kind", "is not a known value; use AS_OF_KNOWN or AS_OF_OCCURRED"))?;
    match (&request.as_of, request.as_of_version) {
        (Some(_), v) if v > 0 => Err(invalid("as_of_version", "cannot be combined with as_of; give one or the other")),
        (Some(ts), _) => {
            let at = Timestamp::from_parts(ts.seconds, ts.nanos).map_err(|e| ReadError::Invalid(e.at("as_of")))?;
            Ok(Some(match kind {
                pb::AsOf::Unspecified | pb::AsOf::Known => Cut::Known(at),
                pb::AsOf::Occurred => Cut::Occurred(at),
            }))
        }
        (None, 0) if kind != pb::AsOf::Unspecified => {
            Err(invalid("as_of", "is required with as_of_kind; give the instant to look back to"))
        }
        (None, 0) => Ok(None),
        (None, version) => Ok(Some(Cut::Version(version))),
    }
}

/// Fuzzing the boundary where untrusted bytes become domain events: whatever arrives, parsing
/// never panics, and what it accepts re-encodes to bytes that decode to the same event (the
/// canonical form the log hashes). `PROPTEST_CASES=100000 cargo test -p rapport-server --lib
/// fuzz` runs a long campaign; CI runs the default 256 cases per property.
#[cfg(test)]
mod fuzz {
    use bytes::Bytes;
    use proptest::prelude::*;
    use rapport_domain::Limits;
    use rapport_proto::{v1 as pb, wkt};

    use super::*;

    /// Text that is mostly valid, so that most requests get deep into parsing, and sometimes
    /// not at all: control characters, long runs, any Unicode.
    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            40 => "[a-z][a-z0-9._-]{0,19}",
            1 => Just(String::new()),
            1 => "\\PC{0,40}",
            1 => any::<String>(),
            1 => "[a-z]{1,8}".prop_map(|s| s.repeat(400)),
        ]
    }

    fn timestamp() -> impl Strategy<Value = Option<wkt::Timestamp>> {
        prop_oneof![
            30 => (1_700_000_000i64..1_767_225_600, 0i32..1_000_000_000)
                .prop_map(|(seconds, nanos)| Some(wkt::Timestamp { seconds, nanos })),
            1 => Just(None),
            1 => (any::<i64>(), any::<i32>()).prop_map(|(seconds, nanos)| Some(wkt::Timestamp { seconds, nanos })),
        ]
    }

    fn uuid() -> impl Strategy<Value = String> {
        prop_oneof![30 => any::<u128>().prop_map(|n| uuid::Uuid::from_u128(n).to_string()), 1 => text()]
    }

    /// Enum values: mostly known, sometimes unspecified or unknown.
    fn enumeration() -> impl Strategy<Value = i32> {
        prop_oneof![30 => 1i32..6, 1 => Just(0), 1 => any::<i32>()]
    }

    fn currency() -> impl Strategy<Value = String> {
        prop_oneof![30 => prop::sample::select(vec!["EUR", "USD", "JPY", "CHF"]).prop_map(String::from), 1 => text()]
    }

    fn body() -> impl Strategy<Value = Option<pb::event::Body>> {
        use pb::event::Body as B;
        prop_oneof![
            Just(None),
            (text(), text(), text()).prop_map(|(name, industry, owner)| Some(B::AccountOpened(pb::AccountOpened {
                name,
                industry,
                owner
            }))),
            (enumeration(), text()).prop_map(|(tier, reason)| Some(B::TierAssigned(pb::TierAssigned { tier, reason }))),
            (text(), text(), text(), text(), enumeration(), any::<bool>()).prop_map(
                |(contact_id, name, title, department, role, key)| {
                    Some(B::ContactAdded(pb::ContactAdded { contact_id, name, title, department, role, key }))
                }
            ),
            (prop::collection::vec(text(), 0..4), prop::collection::vec(text(), 0..4), enumeration(), text(), text())
                .prop_map(|(staff, contact_ids, kind, topic, notes)| Some(B::MeetingHeld(pb::MeetingHeld {
                    staff,
                    contact_ids,
                    kind,
                    topic,
                    notes
                }))),
            (text(), text(), text(), prop_oneof![30 => 0i64..1_000_000, 1 => any::<i64>()], currency(), text())
                .prop_map(|(giver, recipient_contact_id, description, value_minor, currency, approval_ref)| {
                    Some(B::GiftGiven(pb::GiftGiven {
                        giver,
                        recipient_contact_id,
                        description,
                        value_minor,
                        currency,
                        approval_ref,
                    }))
                }),
            (
                text(),
                prop_oneof![30 => -2i32..=2, 1 => any::<i32>()],
                prop_oneof![30 => 0u32..=4, 1 => any::<u32>()],
                text()
            )
                .prop_map(|(contact_id, support, intimacy, evidence)| {
                    Some(B::SupportSignal(pb::SupportSignal { contact_id, support, intimacy, evidence }))
                }),
            (text(), prop_oneof![30 => 0u32..=10, 1 => any::<u32>()], text()).prop_map(|(contact_id, score, text)| {
                Some(B::FeedbackReceived(pb::FeedbackReceived { contact_id, score, text }))
            }),
            (enumeration(), text(), prop_oneof![30 => 0i64..1_000_000, 1 => any::<i64>()], currency(), text())
                .prop_map(|(kind, title, value_minor, currency, reference)| {
                    Some(B::OutcomeRecorded(pb::OutcomeRecorded { kind, title, value_minor, currency, reference }))
                }),
            (uuid(), text())
                .prop_map(|(event_id, reason)| Some(B::EventRetracted(pb::EventRetracted { event_id, reason }))),
        ]
    }

    fn event() -> impl Strategy<Value = pb::Event> {
        (uuid(), timestamp(), text(), text(), body()).prop_map(|(event_id, occurred_at, actor, source, body)| {
            pb::Event { event_id, occurred_at, actor, source, body }
        })
    }

    fn stored(payload: Bytes) -> StoredEvent {
        StoredEvent {
            account_id: rapport_domain::AccountId::parse("acme", &Limits::default()).unwrap(),
            version: 1,
            position: 1,
            recorded_at: Timestamp::EPOCH,
            event_id: EventId::from_bytes([0; 16]),
            recorded_by: String::new(),
            payload,
            prev_hash: rapport_store::GENESIS_HASH,
            hash: rapport_store::GENESIS_HASH,
        }
    }

    proptest! {
        #[test]
        fn structured_requests_never_panic_and_round_trip(account_id in text(), events in prop::collection::vec(event(), 1..4)) {
            let request = pb::AppendRequest { account_id, expected: None, events };
            if let Ok(append) = append_from_wire(&request, String::new(), &Limits::default()) {
                for (event, payload) in append.events.iter().zip(&append.payloads) {
                    let decoded = decode_event(&stored(payload.clone())).expect("an accepted event decodes");
                    prop_assert_eq!(&decoded, event);
                    prop_assert_eq!(&encode_event(&decoded), payload, "the encoding is canonical");
                }
            }
        }

        #[test]
        fn raw_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(request) = pb::AppendRequest::decode(bytes.as_slice()) {
                let _ = append_from_wire(&request, String::new(), &Limits::default());
            }
            let _ = decode_event(&stored(Bytes::from(bytes)));
        }
    }
}
