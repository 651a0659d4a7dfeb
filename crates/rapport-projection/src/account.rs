//! The scored picture of one account: the domain's [`Account`] fold plus what the scores,
//! the gift register and the handover report need, folded under a rule set.
//!
//! The fold keeps what the rule set's windows can still see and no more: records older than
//! the rule set's horizon before the account's latest activity are dropped, and histories keep
//! their latest entries. So an account's picture stays bounded however long its stream grows,
//! and the fold depends on the rule set (which is why a new rule set is rebuilt from the log).
//!
//! The fold is a function of the stream alone: the same events in the same order give the same
//! picture, bit for bit. Records are kept sorted by business time, then version, so the order
//! in which late-recorded events arrive does not show.

use std::collections::{BTreeMap, BTreeSet};

use rapport_domain::{
    Account, AccountId, ContactAssessment, ContactId, Event, EventBody, EventId, MeetingKind, Money, OutcomeKind,
    Personal, SatisfactionScore, StaffId, TierState, Timestamp, Touch, TouchKind,
};
use serde::{Deserialize, Serialize};

use crate::RuleSet;
use crate::calendar::year_of;

/// Support signals kept per contact.
pub const ASSESSMENT_HISTORY: usize = 16;
/// Feedback entries kept per account.
pub const FEEDBACK_HISTORY: usize = 16;
/// Outcomes kept per account beyond the horizon, for the record.
pub const OUTCOME_HISTORY: usize = 16;

/// One recorded event as a projection folds it: the event and its place in the log.
#[derive(Debug, Clone, Copy)]
pub struct Folded<'a> {
    /// The event.
    pub event: &'a Event,
    /// Its version in the account's stream.
    pub version: u64,
    /// Its position in the log.
    pub position: u64,
    /// When it was recorded.
    pub recorded_at: Timestamp,
}

/// An account as a projection holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountProjection {
    /// The domain fold: owner, team, tier, contacts with their latest stance and touch.
    pub account: Account,
    /// Position of the stream's last event folded in.
    pub position: u64,
    /// When that event was recorded.
    pub recorded_at: Timestamp,
    /// Every tier the account had, oldest first.
    pub tier_history: Vec<TierState>,
    /// What each contact did with us, by contact id (former contacts included).
    pub contacts: BTreeMap<ContactId, ContactActivity>,
    /// Meetings within the horizon, by business time.
    pub meetings: Vec<MeetingRecord>,
    /// Meetings ever held, by kind.
    pub meetings_by_kind: BTreeMap<MeetingKind, u64>,
    /// Gifts within the horizon, by business time.
    pub gifts: Vec<GiftRecord>,
    /// Gift totals per recipient, calendar year (UTC) and currency, for all time.
    pub gift_totals: BTreeMap<ContactId, BTreeMap<i32, BTreeMap<String, i64>>>,
    /// Outcomes within the horizon, and at least the latest few, by business time.
    pub outcomes: Vec<OutcomeRecord>,
    /// The latest feedback, by business time.
    pub feedback: Vec<FeedbackRecord>,
    /// The note left with the latest owner change.
    pub handover_note: Option<String>,
}

/// What one contact did with us.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContactActivity {
    /// The latest support signals, oldest first.
    pub assessments: Vec<Assessment>,
    /// The latest touch by each of our people.
    pub touched_by: BTreeMap<StaffId, LastTouch>,
}

impl ContactActivity {
    /// The latest support signal that occurred by `as_of` (among those the history keeps).
    pub fn assessment_at(&self, as_of: Timestamp) -> Option<ContactAssessment> {
        self.assessments.iter().rev().find(|a| a.assessment.at <= as_of).map(|a| a.assessment)
    }
}

/// When one of our people last reached a contact, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastTouch {
    /// When.
    pub at: Timestamp,
    /// How.
    pub kind: TouchKind,
}

impl LastTouch {
    /// The touch as the domain names it, by `person`.
    pub fn by(self, person: &StaffId) -> Touch {
        Touch { at: self.at, by: person.clone(), kind: self.kind }
    }
}

/// A support signal as history keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assessment {
    /// Stance, closeness and when.
    pub assessment: ContactAssessment,
    /// The version of the signal, which orders signals of equal time.
    pub version: u64,
}

/// A meeting as the projection keeps it: what the organisational score counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeetingRecord {
    /// When it took place.
    pub at: Timestamp,
    /// Its version in the stream.
    pub version: u64,
    /// What kind of meeting.
    pub kind: MeetingKind,
}

/// A gift as the register keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GiftRecord {
    /// When it was given.
    pub at: Timestamp,
    /// Its version in the stream.
    pub version: u64,
    /// The event that records it.
    pub event_id: EventId,
    /// Who of ours gave it.
    pub giver: StaffId,
    /// To whom.
    pub recipient: ContactId,
    /// What it was (personal: sealed under the recipient's key).
    pub description: Personal,
    /// What it was worth.
    pub value: Money,
    /// The internal approval, if any.
    pub approval_ref: Option<String>,
}

/// An outcome as the projection keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutcomeRecord {
    /// When it was recorded as happening.
    pub at: Timestamp,
    /// Its version in the stream.
    pub version: u64,
    /// What kind of outcome.
    pub kind: OutcomeKind,
    /// Its title.
    pub title: String,
    /// Its value, if given.
    pub value: Option<Money>,
}

/// A piece of feedback as the projection keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedbackRecord {
    /// When it was given.
    pub at: Timestamp,
    /// Its version in the stream.
    pub version: u64,
    /// From whom; `None` for the organisation.
    pub contact: Option<ContactId>,
    /// 0 to 10.
    pub score: SatisfactionScore,
    /// What they said (personal when a contact said it).
    pub text: Personal,
}

impl AccountProjection {
    /// The projection of a stream's first event, or `None` if it is not an `AccountOpened`.
    pub fn open(id: AccountId, folded: Folded<'_>) -> Option<AccountProjection> {
        let account = Account::open(id, folded.event)?;
        Some(AccountProjection {
            account,
            position: folded.position,
            recorded_at: folded.recorded_at,
            tier_history: Vec::new(),
            contacts: BTreeMap::new(),
            meetings: Vec::new(),
            meetings_by_kind: BTreeMap::new(),
            gifts: Vec::new(),
            gift_totals: BTreeMap::new(),
            outcomes: Vec::new(),
            feedback: Vec::new(),
            handover_note: None,
        })
    }

    /// Folds the next event of the stream.
    ///
    /// A retraction only marks its target here, as [`Account::apply`] does; undoing the
    /// target's effect takes the whole stream, which [`AccountProjection::replay`] has.
    pub fn apply(&mut self, folded: Folded<'_>, rules: &RuleSet) {
        self.account.apply(folded.event);
        self.record(folded, rules);
    }

    /// Folds the next event of the stream into everything but [`AccountProjection::account`],
    /// for a caller that has folded the account already (the writer, whose `decide` returns
    /// the account after the batch). Equivalent to [`AccountProjection::apply`] once the
    /// account is set, because what this reads of the account (which contacts were ever
    /// added, the latest activity) is the same after a valid batch as during it.
    pub fn record(&mut self, folded: Folded<'_>, rules: &RuleSet) {
        self.position = folded.position;
        self.recorded_at = folded.recorded_at;
        self.record_event(folded);
        self.trim(rules);
    }

    /// This projection with `account` in place of its account: the start of a batch the
    /// caller folds with [`AccountProjection::record`].
    pub fn with_account(&self, account: Account) -> AccountProjection {
        AccountProjection {
            account,
            position: self.position,
            recorded_at: self.recorded_at,
            tier_history: self.tier_history.clone(),
            contacts: self.contacts.clone(),
            meetings: self.meetings.clone(),
            meetings_by_kind: self.meetings_by_kind.clone(),
            gifts: self.gifts.clone(),
            gift_totals: self.gift_totals.clone(),
            outcomes: self.outcomes.clone(),
            feedback: self.feedback.clone(),
            handover_note: self.handover_note.clone(),
        }
    }

    /// Folds a whole stream, oldest first, leaving out the events that later retractions name.
    /// Returns `None` if the stream does not begin with an `AccountOpened`.
    pub fn replay(id: AccountId, stream: &[Folded<'_>], rules: &RuleSet) -> Option<AccountProjection> {
        let retracted: BTreeSet<EventId> = stream
            .iter()
            .filter_map(|f| match &f.event.body {
                EventBody::EventRetracted(retraction) => Some(retraction.target),
                _ => None,
            })
            .collect();
        let (first, rest) = stream.split_first()?;
        let mut projection = AccountProjection::open(id, *first)?;
        for folded in rest {
            if retracted.contains(&folded.event.id) {
                // Still a version of the stream; only its effect is gone.
                projection.account.version += 1;
                projection.position = folded.position;
                projection.recorded_at = folded.recorded_at;
            } else {
                projection.apply(*folded, rules);
            }
        }
        // The retractions themselves were applied and marked their targets.
        Some(projection)
    }

    fn record_event(&mut self, folded: Folded<'_>) {
        let event = folded.event;
        let at = event.occurred_at;
        let version = folded.version;
        match &event.body {
            EventBody::TierAssigned(assigned) => {
                let tier = TierState { tier: assigned.tier, reason: assigned.reason.clone(), since: at };
                insert_sorted(&mut self.tier_history, tier, |t| t.since);
            }
            EventBody::SupportSignal(signal) => {
                let history = &mut self.contacts.entry(signal.contact_id.clone()).or_default().assessments;
                let entry = Assessment {
                    assessment: ContactAssessment { support: signal.support, intimacy: signal.intimacy, at },
                    version,
                };
                insert_sorted(history, entry, |a| (a.assessment.at, a.version));
                keep_latest(history, ASSESSMENT_HISTORY);
            }
            EventBody::MeetingHeld(meeting) => {
                *self.meetings_by_kind.entry(meeting.kind).or_default() += 1;
                insert_sorted(&mut self.meetings, MeetingRecord { at, version, kind: meeting.kind }, |m| {
                    (m.at, m.version)
                });
                for contact_id in &meeting.contact_ids {
                    if !self.account.contacts.contains_key(contact_id) {
                        continue;
                    }
                    let activity = self.contacts.entry(contact_id.clone()).or_default();
                    for person in &meeting.staff {
                        touch(activity, person, LastTouch { at, kind: TouchKind::Meeting });
                    }
                }
            }
            EventBody::GiftGiven(gift) => {
                if self.account.contacts.contains_key(&gift.recipient) {
                    let activity = self.contacts.entry(gift.recipient.clone()).or_default();
                    touch(activity, &gift.giver, LastTouch { at, kind: TouchKind::Gift });
                }
                let total = self
                    .gift_totals
                    .entry(gift.recipient.clone())
                    .or_default()
                    .entry(year_of(at))
                    .or_default()
                    .entry(gift.value.currency().code().to_owned())
                    .or_default();
                *total = total.saturating_add(gift.value.minor());
                insert_sorted(
                    &mut self.gifts,
                    GiftRecord {
                        at,
                        version,
                        event_id: event.id,
                        giver: gift.giver.clone(),
                        recipient: gift.recipient.clone(),
                        description: gift.description.clone(),
                        value: gift.value,
                        approval_ref: gift.approval_ref.as_ref().map(|r| r.as_str().to_owned()),
                    },
                    |g| (g.at, g.version),
                );
            }
            EventBody::OutcomeRecorded(outcome) => {
                insert_sorted(
                    &mut self.outcomes,
                    OutcomeRecord {
                        at,
                        version,
                        kind: outcome.kind,
                        title: outcome.title.as_str().to_owned(),
                        value: outcome.value,
                    },
                    |o| (o.at, o.version),
                );
            }
            EventBody::FeedbackReceived(feedback) => {
                insert_sorted(
                    &mut self.feedback,
                    FeedbackRecord {
                        at,
                        version,
                        contact: feedback.contact_id.clone(),
                        score: feedback.score,
                        text: feedback.text.clone(),
                    },
                    |f| (f.at, f.version),
                );
                keep_latest(&mut self.feedback, FEEDBACK_HISTORY);
            }
            EventBody::OwnerChanged(change) => {
                let note = change.handover_note.as_str();
                self.handover_note = (!note.is_empty()).then(|| note.to_owned());
            }
            // The register and the feedback keep their records; what was personal in them is gone.
            EventBody::ContactForgotten(erasure) => {
                for gift in self.gifts.iter_mut().filter(|g| g.recipient == erasure.contact_id) {
                    gift.description = Personal::Forgotten;
                }
                for feedback in self.feedback.iter_mut().filter(|f| f.contact.as_ref() == Some(&erasure.contact_id)) {
                    feedback.text = Personal::Forgotten;
                }
            }
            EventBody::AccountOpened(_)
            | EventBody::ContactAdded(_)
            | EventBody::ContactUpdated(_)
            | EventBody::ContactLeft(_)
            | EventBody::TeamMemberJoined(_)
            | EventBody::TeamMemberLeft(_)
            | EventBody::EventRetracted(_) => {}
        }
    }

    /// Drops what no window of the rule set can see any more. The cut-off only moves forward
    /// (the latest activity never goes back), so what is kept does not depend on the order the
    /// events came in.
    fn trim(&mut self, rules: &RuleSet) {
        let cutoff = self.account.last_activity_at.saturating_add_nanos(-rules.horizon_nanos());
        drop_before(&mut self.meetings, cutoff, |m| m.at);
        drop_before(&mut self.gifts, cutoff, |g| g.at);
        // Outcomes are rare and worth showing: the latest few stay whatever their age.
        let old = self.outcomes.partition_point(|o| o.at < cutoff);
        let keep_old = OUTCOME_HISTORY.saturating_sub(self.outcomes.len() - old);
        self.outcomes.drain(..old.saturating_sub(keep_old));
    }
}

fn touch(activity: &mut ContactActivity, person: &StaffId, touch: LastTouch) {
    match activity.touched_by.get_mut(person) {
        Some(latest) if latest.at > touch.at => {}
        Some(latest) => *latest = touch,
        None => {
            activity.touched_by.insert(person.clone(), touch);
        }
    }
}

fn insert_sorted<T, K: Ord>(records: &mut Vec<T>, record: T, key: impl Fn(&T) -> K) {
    let k = key(&record);
    // Most events arrive in business-time order, so this is usually a push.
    let at = records.partition_point(|r| key(r) <= k);
    records.insert(at, record);
}

fn keep_latest<T>(records: &mut Vec<T>, most: usize) {
    if records.len() > most {
        records.drain(..records.len() - most);
    }
}

fn drop_before<T>(records: &mut Vec<T>, cutoff: Timestamp, at: impl Fn(&T) -> Timestamp) {
    let old = records.partition_point(|r| at(r) < cutoff);
    records.drain(..old);
}
