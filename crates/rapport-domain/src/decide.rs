//! The gate of every append: may this batch of events join this account's stream?
//!
//! [`decide`] checks each event's own rules (times, list shapes, a change that changes
//! something) and the rules against the account as the events before it in the batch leave it
//! (the first event opens the account and only the first does; contacts referred to are
//! current; the owner handed over is the current owner; a retraction names an event of this
//! account). It returns the account after the batch, or the first violation.

use std::collections::{BTreeMap, HashMap};

use crate::{
    Account, AccountId, ContactId, Event, EventBody, EventId, EventKind, Limits, Plan, PlanId, RecordedFacts, StaffId,
    Timestamp, Violation, check_occurred_at,
};

/// What [`decide`] needs besides the account and the batch. All of it is input: the domain
/// reads no clock and no store.
#[derive(Debug, Clone, Copy)]
pub struct AppendContext<'a> {
    /// The server's current time, for the future-skew check.
    pub now: Timestamp,
    /// Bounds on the request.
    pub limits: &'a Limits,
    /// The recorded events that retractions in the batch name, as found in the log. An id
    /// missing here is not recorded anywhere.
    pub recorded: &'a BTreeMap<EventId, RecordedFacts>,
}

/// Decides whether `batch` may be appended to the stream of `account_id`, whose current state
/// is `current` (`None` if the stream is empty). Returns the account after the batch.
///
/// A batch that holds retractions holds only retractions; the returned account then has the
/// targets marked as retracted, and the caller replays the stream to undo their effects.
pub fn decide(
    current: Option<&Account>,
    account_id: &AccountId,
    batch: &[Event],
    context: &AppendContext<'_>,
) -> Result<Account, Violation> {
    check_batch_shape(batch, context.limits)?;
    let mut account = current.cloned();
    for (index, event) in batch.iter().enumerate() {
        let at = |field: &str| format!("events[{index}].{field}");
        check_occurred_at(event.occurred_at, context.now, context.limits).map_err(|e| e.at(at("occurred_at")))?;
        check_event_shape(event, context.limits).map_err(|v| Violation::new(at(&v.field), v.reason))?;
        match account.as_mut() {
            None => {
                account = Some(Account::open(account_id.clone(), event).ok_or_else(|| {
                    Violation::new(
                        at(event.body.kind().name()),
                        format!(
                            "account \"{account_id}\" has no events yet, so its first event must be account_opened, not {}",
                            event.body.kind()
                        ),
                    )
                })?);
            }
            Some(state) => {
                check_against_state(state, event, context).map_err(|v| Violation::new(at(&v.field), v.reason))?;
                state.apply(event);
            }
        }
    }
    account.ok_or_else(|| Violation::new("events", "at least one event is required"))
}

fn check_batch_shape(batch: &[Event], limits: &Limits) -> Result<(), Violation> {
    if batch.is_empty() {
        return Err(Violation::new("events", "at least one event is required"));
    }
    if batch.len() > limits.max_events_per_append {
        return Err(Violation::new(
            "events",
            format!(
                "{} events in one request; at most {} are allowed, split the batch",
                batch.len(),
                limits.max_events_per_append
            ),
        ));
    }
    let mut seen: HashMap<EventId, usize> = HashMap::with_capacity(batch.len());
    for (index, event) in batch.iter().enumerate() {
        if let Some(first) = seen.insert(event.id, index) {
            return Err(Violation::new(
                format!("events[{index}].event_id"),
                format!("{} is also the id of events[{first}]; every event needs its own id", event.id),
            ));
        }
    }
    let is_retraction = |e: &Event| matches!(e.body, EventBody::EventRetracted(_));
    if batch.iter().any(is_retraction)
        && let Some(index) = batch.iter().position(|e| !is_retraction(e))
    {
        return Err(Violation::new(
            format!("events[{index}]"),
            format!(
                "a request that holds event_retracted holds only retractions; send this {} in a request of its own",
                batch[index].body.kind()
            ),
        ));
    }
    Ok(())
}

/// Rules an event obeys whatever the account's state. Field paths are relative to the event.
fn check_event_shape(event: &Event, limits: &Limits) -> Result<(), Violation> {
    match &event.body {
        EventBody::MeetingHeld(meeting) => {
            check_list("meeting_held.staff", &meeting.staff, "our staff member", limits)?;
            check_list("meeting_held.contact_ids", &meeting.contact_ids, "contact", limits)?;
        }
        EventBody::ContactUpdated(update) if update.is_empty() => {
            return Err(Violation::new(
                "contact_updated",
                "changes nothing; set at least one of name, title, department, role, key",
            ));
        }
        EventBody::RelationshipPlanned(planned) if planned.due_at <= event.occurred_at => {
            return Err(Violation::new(
                "relationship_planned.due_at",
                format!(
                    "is {}, not after the plan's occurred_at {}; a plan is due after it is made",
                    planned.due_at, event.occurred_at
                ),
            ));
        }
        EventBody::PlanRevised(revision) if revision.is_empty() => {
            return Err(Violation::new(
                "plan_revised",
                "changes nothing; set at least one of target_support, target_intimacy, due_at",
            ));
        }
        EventBody::OwnerChanged(change) if change.from_owner == change.to_owner => {
            return Err(Violation::new(
                "owner_changed.to_owner",
                format!("is the same as from_owner \"{}\"; an owner change needs a new owner", change.to_owner),
            ));
        }
        _ => {}
    }
    Ok(())
}

fn check_list<T: PartialEq + std::fmt::Display>(
    field: &str,
    items: &[T],
    what: &str,
    limits: &Limits,
) -> Result<(), Violation> {
    if items.is_empty() {
        return Err(Violation::new(field, format!("at least one {what} is required")));
    }
    if items.len() > limits.max_list_len {
        return Err(Violation::new(
            field,
            format!("has {} entries; at most {} are allowed", items.len(), limits.max_list_len),
        ));
    }
    for (index, item) in items.iter().enumerate() {
        if items[..index].contains(item) {
            return Err(Violation::new(format!("{field}[{index}]"), format!("\"{item}\" is listed twice")));
        }
    }
    Ok(())
}

/// Rules an event obeys against the account as the stream so far leaves it. Field paths are
/// relative to the event.
fn check_against_state(account: &Account, event: &Event, context: &AppendContext<'_>) -> Result<(), Violation> {
    let id = &account.id;
    match &event.body {
        EventBody::AccountOpened(_) => Err(Violation::new(
            "account_opened",
            format!(
                "account \"{id}\" is already open (version {}); account_opened is only ever the first event of a stream",
                account.version
            ),
        )),
        EventBody::TierAssigned(_) => Ok(()),
        EventBody::ContactAdded(added) => match account.contacts.get(&added.contact_id) {
            Some(contact) if contact.forgotten => {
                Err(forgotten("contact_added.contact_id", account, &added.contact_id))
            }
            Some(contact) if contact.is_current() => Err(Violation::new(
                "contact_added.contact_id",
                format!(
                    "contact \"{}\" is already a current contact of account \"{id}\"; use contact_updated to change them",
                    added.contact_id
                ),
            )),
            _ => Ok(()),
        },
        EventBody::ContactUpdated(update) => require_contact(account, "contact_updated.contact_id", &update.contact_id),
        EventBody::ContactLeft(left) => require_contact(account, "contact_left.contact_id", &left.contact_id),
        EventBody::MeetingHeld(meeting) => {
            for (index, contact_id) in meeting.contact_ids.iter().enumerate() {
                require_contact(account, &format!("meeting_held.contact_ids[{index}]"), contact_id)?;
            }
            Ok(())
        }
        EventBody::GiftGiven(gift) => require_contact(account, "gift_given.recipient_contact_id", &gift.recipient),
        EventBody::SupportSignal(signal) => require_contact(account, "support_signal.contact_id", &signal.contact_id),
        EventBody::FeedbackReceived(feedback) => match &feedback.contact_id {
            Some(contact_id) => require_contact(account, "feedback_received.contact_id", contact_id),
            None => Ok(()),
        },
        EventBody::OwnerChanged(change) if change.from_owner != account.owner => Err(Violation::new(
            "owner_changed.from_owner",
            format!(
                "\"{}\" is not the owner of account \"{id}\"; the current owner is \"{}\"",
                change.from_owner, account.owner
            ),
        )),
        EventBody::OwnerChanged(_) => Ok(()),
        EventBody::TeamMemberJoined(joined) => match account.team.get(&joined.member) {
            Some(member) => Err(Violation::new(
                "team_member_joined.member",
                format!("\"{}\" is already on the team of account \"{id}\" as {}", joined.member, member.role),
            )),
            None => Ok(()),
        },
        EventBody::TeamMemberLeft(left) => require_team_member(account, &left.member),
        EventBody::OutcomeRecorded(_) | EventBody::StaffAssigned(_) => Ok(()),
        EventBody::RelationshipPlanned(planned) => {
            if let Some(plan) = account.plans.get(&planned.plan_id) {
                return Err(Violation::new(
                    "relationship_planned.plan_id",
                    format!(
                        "plan \"{}\" already exists in account \"{id}\" (made on {}); give a new plan a new id, or revise this one with plan_revised",
                        planned.plan_id, plan.planned_at
                    ),
                ));
            }
            require_contact(account, "relationship_planned.contact_id", &planned.contact_id)
        }
        EventBody::PlanRevised(revision) => {
            let plan = require_open_plan(account, "plan_revised.plan_id", &revision.plan_id)?;
            match revision.due_at {
                Some(due_at) if due_at <= plan.planned_at => Err(Violation::new(
                    "plan_revised.due_at",
                    format!(
                        "is {due_at}, not after the plan was made ({}); a plan is due after it is made",
                        plan.planned_at
                    ),
                )),
                _ => Ok(()),
            }
        }
        EventBody::PlanClosed(closing) => {
            require_open_plan(account, "plan_closed.plan_id", &closing.plan_id).map(|_| ())
        }
        EventBody::CompetitorSignal(signal) => match &signal.contact_id {
            Some(contact_id) => require_contact(account, "competitor_signal.contact_id", contact_id),
            None => Ok(()),
        },
        EventBody::EventRetracted(retraction) => check_retraction(account, retraction.target, context),
        EventBody::ContactForgotten(erasure) => match account.contacts.get(&erasure.contact_id) {
            Some(contact) if contact.forgotten => {
                Err(forgotten("contact_forgotten.contact_id", account, &erasure.contact_id))
            }
            Some(_) => Ok(()),
            None => Err(Violation::new(
                "contact_forgotten.contact_id",
                format!("contact \"{}\" is not a contact of account \"{id}\"", erasure.contact_id),
            )),
        },
    }
}

/// A forgotten contact is never named again: a person who comes back is a new contact.
fn forgotten(field: &str, account: &Account, contact_id: &ContactId) -> Violation {
    Violation::new(
        field,
        format!(
            "contact \"{contact_id}\" of account \"{}\" was forgotten; no event may name them again (a person who \
             returns is added under a new contact id)",
            account.id
        ),
    )
}

fn require_contact(account: &Account, field: &str, contact_id: &ContactId) -> Result<(), Violation> {
    let id = &account.id;
    match account.contacts.get(contact_id) {
        Some(contact) if contact.forgotten => Err(forgotten(field, account, contact_id)),
        Some(contact) if contact.is_current() => Ok(()),
        Some(_) => Err(Violation::new(
            field,
            format!("contact \"{contact_id}\" has left account \"{id}\"; record contact_added again if they are back"),
        )),
        None => Err(Violation::new(
            field,
            format!("contact \"{contact_id}\" is not a contact of account \"{id}\"; record contact_added first"),
        )),
    }
}

fn require_open_plan<'a>(account: &'a Account, field: &str, plan_id: &PlanId) -> Result<&'a Plan, Violation> {
    let id = &account.id;
    match account.plans.get(plan_id) {
        Some(plan) => match plan.closed {
            Some((outcome, at)) => Err(Violation::new(
                field,
                format!(
                    "plan \"{plan_id}\" of account \"{id}\" was closed as {outcome} on {at}; make a new plan instead"
                ),
            )),
            None => Ok(plan),
        },
        None => Err(Violation::new(
            field,
            format!("plan \"{plan_id}\" is not a plan of account \"{id}\"; record relationship_planned first"),
        )),
    }
}

fn require_team_member(account: &Account, member: &StaffId) -> Result<(), Violation> {
    if account.team.contains_key(member) {
        return Ok(());
    }
    Err(Violation::new(
        "team_member_left.member",
        format!("\"{member}\" is not on the team of account \"{}\"", account.id),
    ))
}

fn check_retraction(account: &Account, target: EventId, context: &AppendContext<'_>) -> Result<(), Violation> {
    const FIELD: &str = "event_retracted.event_id";
    let id = &account.id;
    let Some(facts) = context.recorded.get(&target) else {
        return Err(Violation::new(
            FIELD,
            format!("event {target} is not recorded; only recorded events can be retracted"),
        ));
    };
    if &facts.account_id != id {
        return Err(Violation::new(
            FIELD,
            format!("event {target} belongs to account \"{}\", not \"{id}\"", facts.account_id),
        ));
    }
    match facts.kind {
        EventKind::AccountOpened => Err(Violation::new(
            FIELD,
            format!("event {target} opened account \"{id}\"; an account's opening cannot be retracted"),
        )),
        EventKind::EventRetracted => Err(Violation::new(
            FIELD,
            format!("event {target} is itself a retraction; to restore an event, record it again with a new id"),
        )),
        _ if account.retracted.contains_key(&target) => {
            Err(Violation::new(FIELD, format!("event {target} is already retracted")))
        }
        _ => Ok(()),
    }
}
