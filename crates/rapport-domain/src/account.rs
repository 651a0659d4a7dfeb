//! The current picture of one account: a pure fold of its stream.
//!
//! The fold is total: it never fails and never panics on a recorded event, because recorded
//! events are facts already accepted. References it cannot resolve (a contact whose
//! `ContactAdded` was retracted, say) are ignored rather than invented.

use imbl::OrdMap;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

use crate::{
    AccountId, ContactId, ContactRole, Event, EventBody, EventId, Intimacy, Label, Personal, PlanId, PlanOutcome,
    PlanTarget, StaffId, Support, TeamRole, Tier, Timestamp,
};

/// An account as its stream tells it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// The account's id (its stream's key).
    pub id: AccountId,
    /// The customer's name.
    pub name: Label,
    /// The customer's industry; may be empty.
    pub industry: Label,
    /// When the account was opened (business time).
    pub opened_at: Timestamp,
    /// Who of ours owns the relationship now.
    pub owner: StaffId,
    /// Every owner, oldest first; the last tenure is open and belongs to `owner`.
    pub owner_history: Vec<Tenure>,
    /// The strategic tier, once assigned.
    pub tier: Option<TierState>,
    /// Our people on the account team beyond the owner.
    pub team: BTreeMap<StaffId, TeamMember>,
    /// Every contact ever added, current and former. Persistent, as the maps below: an
    /// account is copied for every request decided against it, and the copy shares what the
    /// request does not change.
    pub contacts: OrdMap<ContactId, Contact>,
    /// Every relationship plan ever made, open and closed.
    pub plans: OrdMap<PlanId, Plan>,
    /// Events of this stream retracted by later corrections, with the version of the
    /// retraction that names each.
    pub retracted: OrdMap<EventId, u64>,
    /// Number of events in the stream, retracted ones and retractions included.
    pub version: u64,
    /// Business time of the latest event folded in (corrections do not count as activity).
    pub last_activity_at: Timestamp,
}

/// A period during which one of our people owned the relationship.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenure {
    /// The owner.
    pub owner: StaffId,
    /// When the tenure began.
    pub from: Timestamp,
    /// When it ended; `None` for the current owner.
    pub to: Option<Timestamp>,
    /// Why it began (`account opened`, or the owner change's reason).
    pub reason: Label,
}

/// The tier and why it was given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TierState {
    /// The tier.
    pub tier: Tier,
    /// The reason given with the assignment.
    pub reason: Label,
    /// When it was assigned.
    pub since: Timestamp,
}

/// A member of the account team.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamMember {
    /// Their part in the team.
    pub role: TeamRole,
    /// When they joined.
    pub since: Timestamp,
    /// Their business unit, as they joined; empty when not given.
    pub business_unit: Label,
}

/// A relationship plan as it stands: its target and date after every revision, and how it
/// was closed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// The plan's id.
    pub id: PlanId,
    /// The contact it is about.
    pub contact_id: ContactId,
    /// Who of ours owns it.
    pub owner: StaffId,
    /// When it was made (business time): where its progress is measured from.
    pub planned_at: Timestamp,
    /// The stance and closeness aimed at.
    pub target: PlanTarget,
    /// When the target should be reached.
    pub due_at: Timestamp,
    /// The business goal it serves.
    pub goal: Label,
    /// The goal's reference elsewhere; may be empty.
    pub goal_reference: Label,
    /// How and when it was closed; `None` while it is open.
    pub closed: Option<(PlanOutcome, Timestamp)>,
}

/// A person at the customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    /// Their id within the account.
    pub id: ContactId,
    /// Their name.
    pub name: Personal,
    /// Their title.
    pub title: Personal,
    /// Their department.
    pub department: Label,
    /// Their part in buying decisions.
    pub role: ContactRole,
    /// A key contact: one whose stance we manage.
    pub key: bool,
    /// The latest observed stance and closeness, by business time.
    pub assessment: Option<ContactAssessment>,
    /// The latest meeting or gift that reached them, by business time.
    pub last_touch: Option<Touch>,
    /// When they left the customer; `None` while they are a current contact.
    pub left_at: Option<Timestamp>,
    /// They were forgotten: their name and title are gone, and no event may name them again.
    /// What stays (stance, closeness, touches) is linked only to their id and still counts.
    pub forgotten: bool,
}

impl Contact {
    /// True while the contact is with the customer.
    pub fn is_current(&self) -> bool {
        self.left_at.is_none()
    }
}

/// A contact's observed stance and closeness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactAssessment {
    /// Stance.
    pub support: Support,
    /// Closeness.
    pub intimacy: Intimacy,
    /// When the signal occurred.
    pub at: Timestamp,
}

/// A moment one of our people reached a contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Touch {
    /// When.
    pub at: Timestamp,
    /// Who of ours: the meeting's lead or the gift's giver.
    pub by: StaffId,
    /// How.
    pub kind: TouchKind,
}

/// How a contact was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TouchKind {
    /// In a meeting.
    Meeting,
    /// Through a gift.
    Gift,
}

impl Account {
    /// The account as its opening event makes it (version 1), or `None` if `event` is not an
    /// `AccountOpened`.
    pub fn open(id: AccountId, event: &Event) -> Option<Account> {
        let EventBody::AccountOpened(opened) = &event.body else {
            return None;
        };
        Some(Account {
            id,
            name: opened.name.clone(),
            industry: opened.industry.clone(),
            opened_at: event.occurred_at,
            owner: opened.owner.clone(),
            owner_history: vec![Tenure {
                owner: opened.owner.clone(),
                from: event.occurred_at,
                to: None,
                reason: Label::trusted("account opened"),
            }],
            tier: None,
            team: BTreeMap::new(),
            contacts: OrdMap::new(),
            plans: OrdMap::new(),
            retracted: OrdMap::new(),
            version: 1,
            last_activity_at: event.occurred_at,
        })
    }

    /// Folds the next event of the stream into the account.
    ///
    /// A retraction only marks its target: undoing an event's effect needs the history, which
    /// [`Account::replay`] has. Callers that fold a batch holding retractions replay instead.
    pub fn apply(&mut self, event: &Event) {
        self.version += 1;
        if !matches!(event.body, EventBody::EventRetracted(_)) {
            self.last_activity_at = self.last_activity_at.max(event.occurred_at);
        }
        let at = event.occurred_at;
        match &event.body {
            // Only the first event opens an account; `decide` refuses later ones, and a fold of
            // recorded history ignores them rather than reopening.
            EventBody::AccountOpened(_) => {}
            EventBody::TierAssigned(assigned) => {
                self.tier = Some(TierState { tier: assigned.tier, reason: assigned.reason.clone(), since: at });
            }
            EventBody::ContactAdded(added) => {
                let previous = self.contacts.remove(&added.contact_id);
                // A returning contact keeps what we knew of them: it is the same person.
                let (assessment, last_touch) = previous.map(|c| (c.assessment, c.last_touch)).unwrap_or_default();
                self.contacts.insert(
                    added.contact_id.clone(),
                    Contact {
                        id: added.contact_id.clone(),
                        name: added.name.clone(),
                        title: added.title.clone(),
                        department: added.department.clone(),
                        role: added.role,
                        key: added.key,
                        assessment,
                        last_touch,
                        left_at: None,
                        forgotten: false,
                    },
                );
            }
            EventBody::ContactUpdated(update) => {
                if let Some(contact) = self.contacts.get_mut(&update.contact_id) {
                    if let Some(name) = &update.name {
                        contact.name = name.clone();
                    }
                    if let Some(title) = &update.title {
                        contact.title = title.clone();
                    }
                    if let Some(department) = &update.department {
                        contact.department = department.clone();
                    }
                    if let Some(role) = update.role {
                        contact.role = role;
                    }
                    if let Some(key) = update.key {
                        contact.key = key;
                    }
                }
            }
            EventBody::ContactLeft(left) => {
                if let Some(contact) = self.contacts.get_mut(&left.contact_id) {
                    contact.left_at = Some(at);
                }
            }
            EventBody::MeetingHeld(meeting) => {
                if let Some(lead) = meeting.staff.first() {
                    for contact_id in &meeting.contact_ids {
                        self.touch(contact_id, Touch { at, by: lead.clone(), kind: TouchKind::Meeting });
                    }
                }
            }
            EventBody::GiftGiven(gift) => {
                self.touch(&gift.recipient, Touch { at, by: gift.giver.clone(), kind: TouchKind::Gift });
            }
            EventBody::SupportSignal(signal) => {
                if let Some(contact) = self.contacts.get_mut(&signal.contact_id) {
                    // Latest by business time: a late-recorded old signal does not override a
                    // newer one. On equal times the later event in the stream wins.
                    if contact.assessment.is_none_or(|a| a.at <= at) {
                        contact.assessment =
                            Some(ContactAssessment { support: signal.support, intimacy: signal.intimacy, at });
                    }
                }
            }
            EventBody::OwnerChanged(change) => {
                if let Some(current) = self.owner_history.last_mut() {
                    current.to = Some(at);
                }
                self.owner_history.push(Tenure {
                    owner: change.to_owner.clone(),
                    from: at,
                    to: None,
                    reason: change.reason.clone(),
                });
                self.owner = change.to_owner.clone();
            }
            EventBody::TeamMemberJoined(joined) => {
                let member = TeamMember { role: joined.role, since: at, business_unit: joined.business_unit.clone() };
                self.team.insert(joined.member.clone(), member);
            }
            EventBody::TeamMemberLeft(left) => {
                self.team.remove(&left.member);
            }
            EventBody::RelationshipPlanned(planned) => {
                self.plans.insert(
                    planned.plan_id.clone(),
                    Plan {
                        id: planned.plan_id.clone(),
                        contact_id: planned.contact_id.clone(),
                        owner: planned.owner.clone(),
                        planned_at: at,
                        target: planned.target,
                        due_at: planned.due_at,
                        goal: planned.goal.clone(),
                        goal_reference: planned.goal_reference.clone(),
                        closed: None,
                    },
                );
            }
            EventBody::PlanRevised(revision) => {
                if let Some(plan) = self.plans.get_mut(&revision.plan_id) {
                    if let Some(support) = revision.target_support {
                        plan.target.support = support;
                    }
                    if let Some(intimacy) = revision.target_intimacy {
                        plan.target.intimacy = intimacy;
                    }
                    if let Some(due_at) = revision.due_at {
                        plan.due_at = due_at;
                    }
                }
            }
            EventBody::PlanClosed(closing) => {
                if let Some(plan) = self.plans.get_mut(&closing.plan_id) {
                    plan.closed = Some((closing.outcome, at));
                }
            }
            // Feedback, outcomes, competitors and the staff directory do not shape the account
            // picture; the projection keeps them. They count as activity.
            EventBody::FeedbackReceived(_)
            | EventBody::OutcomeRecorded(_)
            | EventBody::CompetitorSignal(_)
            | EventBody::StaffAssigned(_) => {}
            EventBody::EventRetracted(retraction) => {
                self.retracted.insert(retraction.target, self.version);
            }
            EventBody::ContactForgotten(forgotten) => {
                if let Some(contact) = self.contacts.get_mut(&forgotten.contact_id) {
                    contact.name = Personal::Forgotten;
                    contact.title = Personal::Forgotten;
                    contact.forgotten = true;
                }
            }
        }
    }

    /// Folds a whole stream, oldest first, leaving out the events that later retractions name.
    /// Returns `None` if the stream does not begin with an `AccountOpened`.
    pub fn replay<'a>(id: AccountId, stream: impl IntoIterator<Item = &'a Event> + Clone) -> Option<Account> {
        let retracted: BTreeSet<EventId> = stream
            .clone()
            .into_iter()
            .filter_map(|event| match &event.body {
                EventBody::EventRetracted(retraction) => Some(retraction.target),
                _ => None,
            })
            .collect();
        let mut events = stream.into_iter();
        let mut account = Account::open(id, events.next()?)?;
        for event in events {
            if retracted.contains(&event.id) {
                // Still a version of the stream; only its effect is gone.
                account.version += 1;
            } else {
                account.apply(event);
            }
        }
        Some(account)
    }

    /// The contacts still with the customer, by id.
    pub fn current_contacts(&self) -> impl Iterator<Item = &Contact> {
        self.contacts.values().filter(|c| c.is_current())
    }

    /// The contact with this id if they are still with the customer.
    pub fn current_contact(&self, id: &ContactId) -> Option<&Contact> {
        self.contacts.get(id).filter(|c| c.is_current())
    }

    fn touch(&mut self, contact_id: &ContactId, touch: Touch) {
        if let Some(contact) = self.contacts.get_mut(contact_id)
            && contact.last_touch.as_ref().is_none_or(|t| t.at <= touch.at)
        {
            contact.last_touch = Some(touch);
        }
    }
}
