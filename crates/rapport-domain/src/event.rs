//! The facts of a relationship: one [`Event`] per thing that happened, with who recorded it,
//! when it happened and where it came from.

use std::fmt;

use crate::{
    AccountId, ContactId, ContactRole, EventId, Intimacy, Label, MeetingKind, Money, Note, OutcomeKind, Personal,
    PersonalField, PlanId, PlanOutcome, SatisfactionScore, SourceSystem, StaffId, Support, TeamRole, Tier, Timestamp,
};

/// One fact about a customer relationship, as the client states it. Immutable once recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The client-chosen idempotency key.
    pub id: EventId,
    /// When it happened in the business world.
    pub occurred_at: Timestamp,
    /// Our staff member who did or recorded it.
    pub actor: StaffId,
    /// The system it came from.
    pub source: SourceSystem,
    /// What happened.
    pub body: EventBody,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum EventBody {
    AccountOpened(AccountOpened),
    TierAssigned(TierAssigned),
    ContactAdded(ContactAdded),
    ContactUpdated(ContactUpdated),
    ContactLeft(ContactLeft),
    MeetingHeld(MeetingHeld),
    GiftGiven(GiftGiven),
    SupportSignal(SupportSignal),
    OwnerChanged(OwnerChanged),
    TeamMemberJoined(TeamMemberJoined),
    TeamMemberLeft(TeamMemberLeft),
    FeedbackReceived(FeedbackReceived),
    OutcomeRecorded(OutcomeRecorded),
    EventRetracted(EventRetracted),
    ContactForgotten(ContactForgotten),
    RelationshipPlanned(RelationshipPlanned),
    PlanRevised(PlanRevised),
    PlanClosed(PlanClosed),
    CompetitorSignal(CompetitorSignal),
    StaffAssigned(StaffAssigned),
}

impl EventBody {
    /// The kind of event this body makes.
    pub fn kind(&self) -> EventKind {
        match self {
            EventBody::AccountOpened(_) => EventKind::AccountOpened,
            EventBody::TierAssigned(_) => EventKind::TierAssigned,
            EventBody::ContactAdded(_) => EventKind::ContactAdded,
            EventBody::ContactUpdated(_) => EventKind::ContactUpdated,
            EventBody::ContactLeft(_) => EventKind::ContactLeft,
            EventBody::MeetingHeld(_) => EventKind::MeetingHeld,
            EventBody::GiftGiven(_) => EventKind::GiftGiven,
            EventBody::SupportSignal(_) => EventKind::SupportSignal,
            EventBody::OwnerChanged(_) => EventKind::OwnerChanged,
            EventBody::TeamMemberJoined(_) => EventKind::TeamMemberJoined,
            EventBody::TeamMemberLeft(_) => EventKind::TeamMemberLeft,
            EventBody::FeedbackReceived(_) => EventKind::FeedbackReceived,
            EventBody::OutcomeRecorded(_) => EventKind::OutcomeRecorded,
            EventBody::EventRetracted(_) => EventKind::EventRetracted,
            EventBody::ContactForgotten(_) => EventKind::ContactForgotten,
            EventBody::RelationshipPlanned(_) => EventKind::RelationshipPlanned,
            EventBody::PlanRevised(_) => EventKind::PlanRevised,
            EventBody::PlanClosed(_) => EventKind::PlanClosed,
            EventBody::CompetitorSignal(_) => EventKind::CompetitorSignal,
            EventBody::StaffAssigned(_) => EventKind::StaffAssigned,
        }
    }

    /// The contacts whose personal data the event holds, in id order: the people its personal
    /// fields concern. Empty when it holds none (a meeting that names no contact, feedback
    /// from the organisation).
    pub fn data_subjects(&self) -> Vec<ContactId> {
        let mut subjects = match self {
            EventBody::ContactAdded(c) => vec![c.contact_id.clone()],
            EventBody::ContactUpdated(c) if c.name.is_some() || c.title.is_some() => vec![c.contact_id.clone()],
            EventBody::MeetingHeld(m) => m.contact_ids.clone(),
            EventBody::GiftGiven(g) => vec![g.recipient.clone()],
            EventBody::SupportSignal(s) => vec![s.contact_id.clone()],
            EventBody::FeedbackReceived(f) => f.contact_id.iter().cloned().collect(),
            EventBody::RelationshipPlanned(p) => vec![p.contact_id.clone()],
            EventBody::CompetitorSignal(c) => c.contact_id.iter().cloned().collect(),
            _ => Vec::new(),
        };
        subjects.sort();
        subjects.dedup();
        subjects
    }

    /// The event's personal fields, each with the text it holds; empty when
    /// [`EventBody::data_subjects`] is.
    pub fn personal_fields(&self) -> Vec<(PersonalField, &Personal)> {
        let mut fields = Vec::new();
        match self {
            EventBody::ContactAdded(c) => {
                fields.push((PersonalField::Name, &c.name));
                fields.push((PersonalField::Title, &c.title));
            }
            EventBody::ContactUpdated(c) => {
                fields.extend(c.name.as_ref().map(|name| (PersonalField::Name, name)));
                fields.extend(c.title.as_ref().map(|title| (PersonalField::Title, title)));
            }
            EventBody::MeetingHeld(m) if !m.contact_ids.is_empty() => {
                fields.push((PersonalField::Topic, &m.topic));
                fields.push((PersonalField::Notes, &m.notes));
            }
            EventBody::GiftGiven(g) => fields.push((PersonalField::Description, &g.description)),
            EventBody::SupportSignal(s) => fields.push((PersonalField::Evidence, &s.evidence)),
            EventBody::FeedbackReceived(f) if f.contact_id.is_some() => fields.push((PersonalField::Text, &f.text)),
            EventBody::RelationshipPlanned(p) => fields.push((PersonalField::Actions, &p.actions)),
            EventBody::CompetitorSignal(c) if c.contact_id.is_some() => {
                fields.push((PersonalField::Evidence, &c.evidence));
            }
            _ => {}
        }
        fields
    }

    /// [`EventBody::personal_fields`], to seal or open them in place.
    pub fn personal_fields_mut(&mut self) -> Vec<(PersonalField, &mut Personal)> {
        let mut fields = Vec::new();
        match self {
            EventBody::ContactAdded(c) => {
                fields.push((PersonalField::Name, &mut c.name));
                fields.push((PersonalField::Title, &mut c.title));
            }
            EventBody::ContactUpdated(c) => {
                fields.extend(c.name.as_mut().map(|name| (PersonalField::Name, name)));
                fields.extend(c.title.as_mut().map(|title| (PersonalField::Title, title)));
            }
            EventBody::MeetingHeld(m) if !m.contact_ids.is_empty() => {
                fields.push((PersonalField::Topic, &mut m.topic));
                fields.push((PersonalField::Notes, &mut m.notes));
            }
            EventBody::GiftGiven(g) => fields.push((PersonalField::Description, &mut g.description)),
            EventBody::SupportSignal(s) => fields.push((PersonalField::Evidence, &mut s.evidence)),
            EventBody::FeedbackReceived(f) if f.contact_id.is_some() => {
                fields.push((PersonalField::Text, &mut f.text));
            }
            EventBody::RelationshipPlanned(p) => fields.push((PersonalField::Actions, &mut p.actions)),
            EventBody::CompetitorSignal(c) if c.contact_id.is_some() => {
                fields.push((PersonalField::Evidence, &mut c.evidence));
            }
            _ => {}
        }
        fields
    }

    /// True when the event names the contact: is about them, or was with or for them.
    pub fn names_contact(&self, contact: &ContactId) -> bool {
        match self {
            EventBody::ContactAdded(c) => &c.contact_id == contact,
            EventBody::ContactUpdated(c) => &c.contact_id == contact,
            EventBody::ContactLeft(c) => &c.contact_id == contact,
            EventBody::ContactForgotten(c) => &c.contact_id == contact,
            EventBody::MeetingHeld(m) => m.contact_ids.contains(contact),
            EventBody::GiftGiven(g) => &g.recipient == contact,
            EventBody::SupportSignal(s) => &s.contact_id == contact,
            EventBody::FeedbackReceived(f) => f.contact_id.as_ref() == Some(contact),
            EventBody::RelationshipPlanned(p) => &p.contact_id == contact,
            EventBody::CompetitorSignal(c) => c.contact_id.as_ref() == Some(contact),
            _ => false,
        }
    }

    /// True when a personal field of the event is forgotten.
    pub fn is_forgotten(&self) -> bool {
        self.personal_fields().iter().any(|(_, text)| text.is_forgotten())
    }
}

impl EventBody {
    /// What the event says, in one line for people (a timeline, a console): names, values and
    /// reasons as written, money as money, stances and closeness by their names.
    pub fn summary(&self) -> String {
        let join = |ids: &[String]| ids.join(", ");
        // Sealed text is shown as such: a summary is made of what a reader could open.
        let text = |text: &Personal| match text {
            Personal::Clear(text) => text.clone(),
            Personal::Sealed(_) => "[sealed]".to_owned(),
            Personal::Forgotten => crate::FORGOTTEN_NAME.to_owned(),
        };
        match self {
            EventBody::AccountOpened(o) => format!("\"{}\" ({}), owner {}", o.name, o.industry, o.owner),
            EventBody::TierAssigned(t) => format!("tier {}: {}", t.tier, t.reason),
            EventBody::ContactAdded(c) => format!(
                "{} {}: {}, {}, {}{}",
                c.contact_id,
                text(&c.name),
                text(&c.title),
                c.department,
                c.role,
                if c.key { ", key" } else { "" }
            ),
            EventBody::ContactUpdated(c) => {
                let mut changes = Vec::new();
                if let Some(name) = &c.name {
                    changes.push(format!("name {}", text(name)));
                }
                if let Some(title) = &c.title {
                    changes.push(format!("title {}", text(title)));
                }
                if let Some(department) = &c.department {
                    changes.push(format!("department {department}"));
                }
                if let Some(role) = c.role {
                    changes.push(format!("role {role}"));
                }
                if let Some(key) = c.key {
                    changes.push(if key { "now key".to_owned() } else { "no longer key".to_owned() });
                }
                format!("{}: {}", c.contact_id, changes.join(", "))
            }
            EventBody::ContactLeft(c) => format!("{} left: {}", c.contact_id, c.reason),
            EventBody::MeetingHeld(m) => format!(
                "{} \"{}\": {} with {}",
                m.kind,
                text(&m.topic),
                join(&m.staff.iter().map(ToString::to_string).collect::<Vec<_>>()),
                join(&m.contact_ids.iter().map(ToString::to_string).collect::<Vec<_>>())
            ),
            EventBody::GiftGiven(g) => format!(
                "{} to {}: {}, {}, {}",
                g.giver,
                g.recipient,
                text(&g.description),
                g.value,
                g.approval_ref.as_ref().map_or_else(|| "NO APPROVAL".to_owned(), |r| format!("approval {r}"))
            ),
            EventBody::SupportSignal(s) => format!(
                "{}: {} ({:+}), {} ({}): {}",
                s.contact_id,
                s.support.name(),
                s.support.value(),
                s.intimacy.name(),
                s.intimacy.value(),
                text(&s.evidence)
            ),
            EventBody::OwnerChanged(o) => {
                format!("{} -> {} ({}): {}", o.from_owner, o.to_owner, o.reason, o.handover_note.as_str())
            }
            EventBody::TeamMemberJoined(t) if t.business_unit.is_empty() => format!("{} joins as {}", t.member, t.role),
            EventBody::TeamMemberJoined(t) => format!("{} of {} joins as {}", t.member, t.business_unit, t.role),
            EventBody::TeamMemberLeft(t) => format!("{} leaves: {}", t.member, t.reason),
            EventBody::FeedbackReceived(f) => format!(
                "{}/10 from {}: {}",
                f.score.value(),
                f.contact_id.as_ref().map_or_else(|| "the organisation".to_owned(), ToString::to_string),
                text(&f.text)
            ),
            EventBody::OutcomeRecorded(o) => {
                let value = o.value.map(|v| format!(" {v}")).unwrap_or_default();
                let reference = if o.reference.is_empty() { String::new() } else { format!(" {}", o.reference) };
                format!("{} \"{}\"{value}{reference}", o.kind, o.title)
            }
            EventBody::EventRetracted(r) => format!("retracts {}: {}", r.target, r.reason),
            EventBody::ContactForgotten(f) => {
                format!("{} forgotten at the request of {}: {}", f.contact_id, f.requested_by, f.reason)
            }
            EventBody::RelationshipPlanned(p) => {
                let reference =
                    if p.goal_reference.is_empty() { String::new() } else { format!(" ({})", p.goal_reference) };
                format!(
                    "plan {} for {}: {} and {} by {}, owner {}, for \"{}\"{reference}: {}",
                    p.plan_id,
                    p.contact_id,
                    p.target.support.name(),
                    p.target.intimacy.name(),
                    p.due_at,
                    p.owner,
                    p.goal,
                    text(&p.actions)
                )
            }
            EventBody::PlanRevised(r) => {
                let mut changes = Vec::new();
                if let Some(support) = r.target_support {
                    changes.push(format!("target stance {}", support.name()));
                }
                if let Some(intimacy) = r.target_intimacy {
                    changes.push(format!("target closeness {}", intimacy.name()));
                }
                if let Some(due_at) = r.due_at {
                    changes.push(format!("due {due_at}"));
                }
                format!("plan {} revised: {}: {}", r.plan_id, changes.join(", "), r.reason)
            }
            EventBody::PlanClosed(c) => format!("plan {} closed, {}: {}", c.plan_id, c.outcome, c.reason),
            EventBody::CompetitorSignal(c) => format!(
                "{} towards {}: {} ({:+}): {}",
                c.contact_id.as_ref().map_or_else(|| "the organisation".to_owned(), ToString::to_string),
                c.competitor,
                c.stance.name(),
                c.stance.value(),
                text(&c.evidence)
            ),
            EventBody::StaffAssigned(a) => format!("{} belongs to {}", a.staff, a.business_unit),
        }
    }
}

/// Declares [`EventKind`] with each kind's contract name, and [`EventKind::ALL`] from the same
/// list, so that a new kind is one line here and cannot be missing from `ALL`.
macro_rules! event_kinds {
    ($($variant:ident => $name:literal),+ $(,)?) => {
        /// The kinds of event, named as in the contract's `body` oneof.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[allow(missing_docs)]
        pub enum EventKind {
            $($variant),+
        }

        impl EventKind {
            /// Every kind, in the contract's order.
            pub const ALL: &'static [EventKind] = &[$(EventKind::$variant),+];

            /// The contract's name of the kind, e.g. `meeting_held`.
            pub fn name(self) -> &'static str {
                match self {
                    $(EventKind::$variant => $name),+
                }
            }
        }
    };
}

event_kinds! {
    AccountOpened => "account_opened",
    TierAssigned => "tier_assigned",
    ContactAdded => "contact_added",
    ContactUpdated => "contact_updated",
    ContactLeft => "contact_left",
    MeetingHeld => "meeting_held",
    GiftGiven => "gift_given",
    SupportSignal => "support_signal",
    OwnerChanged => "owner_changed",
    TeamMemberJoined => "team_member_joined",
    TeamMemberLeft => "team_member_left",
    FeedbackReceived => "feedback_received",
    OutcomeRecorded => "outcome_recorded",
    EventRetracted => "event_retracted",
    ContactForgotten => "contact_forgotten",
    RelationshipPlanned => "relationship_planned",
    PlanRevised => "plan_revised",
    PlanClosed => "plan_closed",
    CompetitorSignal => "competitor_signal",
    StaffAssigned => "staff_assigned",
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The first event of every account stream.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct AccountOpened {
    pub name: Label,
    pub industry: Label,
    pub owner: StaffId,
}

/// The customer's strategic tier changes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct TierAssigned {
    pub tier: Tier,
    pub reason: Label,
}

/// A person at the customer becomes known, or comes back after leaving.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct ContactAdded {
    pub contact_id: ContactId,
    pub name: Personal,
    pub title: Personal,
    pub department: Label,
    pub role: ContactRole,
    /// A key contact: one whose stance we manage.
    pub key: bool,
}

/// A change to a known contact; `None` leaves a field as it was.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct ContactUpdated {
    pub contact_id: ContactId,
    pub name: Option<Personal>,
    pub title: Option<Personal>,
    pub department: Option<Label>,
    pub role: Option<ContactRole>,
    pub key: Option<bool>,
}

impl ContactUpdated {
    /// True when the update changes nothing at all.
    pub fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.title.is_none()
            && self.department.is_none()
            && self.role.is_none()
            && self.key.is_none()
    }
}

/// A contact left the customer organisation.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct ContactLeft {
    pub contact_id: ContactId,
    pub reason: Label,
}

/// A meeting between our people and the customer's.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct MeetingHeld {
    /// Our people present; the first is the lead.
    pub staff: Vec<StaffId>,
    pub contact_ids: Vec<ContactId>,
    pub kind: MeetingKind,
    pub topic: Personal,
    pub notes: Personal,
}

/// A gift or hospitality given to a contact.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct GiftGiven {
    pub giver: StaffId,
    pub recipient: ContactId,
    pub description: Personal,
    pub value: Money,
    /// `None` when the gift was given without approval.
    pub approval_ref: Option<Label>,
}

/// An observed stance and closeness of a contact.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct SupportSignal {
    pub contact_id: ContactId,
    pub support: Support,
    pub intimacy: Intimacy,
    pub evidence: Personal,
}

/// The relationship passes from one of our people to another.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct OwnerChanged {
    pub from_owner: StaffId,
    pub to_owner: StaffId,
    pub reason: Label,
    pub handover_note: Note,
}

/// One of our people joins the account team.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct TeamMemberJoined {
    pub member: StaffId,
    pub role: TeamRole,
    /// Their business unit; empty when not given.
    pub business_unit: Label,
}

/// One of our people leaves the account team.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct TeamMemberLeft {
    pub member: StaffId,
    pub reason: Label,
}

/// Customer satisfaction, from one contact or from the organisation.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct FeedbackReceived {
    /// `None` when the feedback speaks for the organisation.
    pub contact_id: Option<ContactId>,
    pub score: SatisfactionScore,
    pub text: Personal,
}

/// A result of the relationship.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct OutcomeRecorded {
    pub kind: OutcomeKind,
    pub title: Label,
    pub value: Option<Money>,
    pub reference: Label,
}

/// A correction: an earlier event of the same account no longer counts.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct EventRetracted {
    pub target: EventId,
    pub reason: Label,
}

/// A contact was forgotten: their data key is deleted, so the text about them is gone. Recorded
/// only by the ledger's erasure (on request or by retention), never appended by clients.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct ContactForgotten {
    pub contact_id: ContactId,
    /// Why: the request's reference or the retention rule.
    pub reason: Label,
    /// Who asked.
    pub requested_by: StaffId,
}

/// The stance and closeness a plan aims a contact at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[allow(missing_docs)]
pub struct PlanTarget {
    pub support: Support,
    pub intimacy: Intimacy,
}

/// A plan to move one contact's stance and closeness to a target by a date, for a goal.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct RelationshipPlanned {
    pub plan_id: PlanId,
    pub contact_id: ContactId,
    pub target: PlanTarget,
    pub due_at: Timestamp,
    /// Who of ours owns the plan.
    pub owner: StaffId,
    /// What we plan to do (personal: about the contact).
    pub actions: Personal,
    /// The business goal it serves.
    pub goal: Label,
    /// The goal's reference elsewhere; may be empty.
    pub goal_reference: Label,
}

/// A new target or date for an open plan; `None` leaves a field as it was.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct PlanRevised {
    pub plan_id: PlanId,
    pub target_support: Option<Support>,
    pub target_intimacy: Option<Intimacy>,
    pub due_at: Option<Timestamp>,
    pub reason: Label,
}

impl PlanRevised {
    /// True when the revision changes nothing.
    pub fn is_empty(&self) -> bool {
        self.target_support.is_none() && self.target_intimacy.is_none() && self.due_at.is_none()
    }
}

/// An open plan is closed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct PlanClosed {
    pub plan_id: PlanId,
    pub outcome: PlanOutcome,
    pub reason: Label,
}

/// A contact's (or the organisation's) stance towards one of our competitors.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct CompetitorSignal {
    /// The competitor, by name or id, spelled alike across signals.
    pub competitor: Label,
    /// `None` for the customer organisation as a whole.
    pub contact_id: Option<ContactId>,
    /// Their stance towards the competitor, on our scale.
    pub stance: Support,
    /// What it rests on (personal when a contact is named).
    pub evidence: Personal,
}

/// The staff directory: one of our people belongs to a business unit.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct StaffAssigned {
    pub staff: StaffId,
    pub business_unit: Label,
}

/// Where a recorded event lives: used to judge a retraction without reading history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedFacts {
    /// The account whose stream holds the event.
    pub account_id: AccountId,
    /// The event's kind.
    pub kind: EventKind,
}
