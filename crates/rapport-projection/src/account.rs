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
use std::sync::Arc;

use imbl::OrdMap;

use rapport_domain::{
    Account, AccountId, ContactAssessment, ContactId, Event, EventBody, EventId, Label, MeetingKind, Money,
    OutcomeKind, Personal, SatisfactionScore, StaffId, Support, TeamRole, TierState, Timestamp, Touch, TouchKind,
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

/// Gift totals per recipient, calendar year (UTC) and currency (ISO 4217 code), in minor units.
pub type GiftTotals = OrdMap<ContactId, BTreeMap<i32, BTreeMap<String, i64>>>;

/// Records kept in business-time order, shared between copies of a picture until one of them
/// changes them: the writer copies an account's picture for every request it folds (the
/// published one stays as readers hold it), and only the histories the request touches are
/// copied then. A `Vec` inside, because late events land anywhere in it and a `Vec` takes them
/// with one move.
pub type History<T> = Arc<Vec<T>>;

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
    pub tier_history: History<TierState>,
    /// What each contact did with us, by contact id (former contacts included).
    pub contacts: OrdMap<ContactId, ContactActivity>,
    /// Meetings within the horizon, by business time.
    pub meetings: History<MeetingRecord>,
    /// Meetings ever held, by kind.
    pub meetings_by_kind: BTreeMap<MeetingKind, u64>,
    /// Gifts within the horizon, by business time.
    pub gifts: History<GiftRecord>,
    /// Gift totals per recipient, calendar year (UTC) and currency, for all time.
    pub gift_totals: GiftTotals,
    /// Outcomes within the horizon, and at least the latest few, by business time.
    pub outcomes: History<OutcomeRecord>,
    /// The latest feedback, by business time.
    pub feedback: History<FeedbackRecord>,
    /// The note left with the latest owner change.
    pub handover_note: Option<String>,
    /// Every time one of our people was on the account team beyond the owner, by when it began.
    pub team_history: History<TeamTenure>,
    /// The business unit of each of our people, as the staff directory (`StaffAssigned`) and
    /// team joins give it: the latest by business time.
    pub staff_units: OrdMap<StaffId, StaffUnit>,
    /// The first touch of each department of the customer: who of ours opened it, and when.
    pub departments_opened: OrdMap<Label, DepartmentOpened>,
    /// The organisation's stance towards each competitor (signals naming no contact).
    pub competitors: BTreeMap<Label, CompetitorStance>,
    /// The latest executive visit ever, for the executive cadence beyond the horizon.
    pub last_executive_visit: Option<Timestamp>,
}

/// A time one of our people was on the account team.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamTenure {
    /// Who.
    pub member: StaffId,
    /// In which role.
    pub role: TeamRole,
    /// From when.
    pub from: Timestamp,
    /// Until when; `None` while they are on the team.
    pub to: Option<Timestamp>,
}

/// One of our people's business unit, and since when the records say so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaffUnit {
    /// The unit.
    pub unit: Label,
    /// When it was recorded as happening.
    pub at: Timestamp,
    /// The version that recorded it, which orders records of equal time.
    pub version: u64,
}

/// The first touch of one of the customer's departments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DepartmentOpened {
    /// Who of ours touched it first (a meeting's lead, a gift's giver).
    pub by: StaffId,
    /// When.
    pub at: Timestamp,
    /// The version of that touch, which orders touches of equal time.
    pub version: u64,
}

/// The latest stance towards one competitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompetitorStance {
    /// The stance, on our scale.
    pub stance: Support,
    /// When it was observed.
    pub at: Timestamp,
    /// The version of the signal, which orders signals of equal time.
    pub version: u64,
}

impl CompetitorStance {
    fn later_than(&self, other: &CompetitorStance) -> bool {
        (self.at, self.version) > (other.at, other.version)
    }
}

/// What one contact did with us.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContactActivity {
    /// The latest support signals, oldest first.
    pub assessments: History<Assessment>,
    /// The latest touch by each of our people.
    pub touched_by: BTreeMap<StaffId, LastTouch>,
    /// When they were last added (business time): the start of their cadence while untouched.
    pub added_at: Option<Timestamp>,
    /// Their latest stance towards each competitor.
    pub competitors: BTreeMap<Label, CompetitorStance>,
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

/// A meeting as the projection keeps it: what the organisational score counts, and who met
/// whom for coordination, contribution and the playbook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeetingRecord {
    /// When it took place.
    pub at: Timestamp,
    /// Its version in the stream.
    pub version: u64,
    /// What kind of meeting.
    pub kind: MeetingKind,
    /// Our people present, the lead first.
    pub staff: Vec<StaffId>,
    /// The account's contacts present (those that were its contacts when it was folded).
    pub contacts: Vec<ContactId>,
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
            tier_history: History::default(),
            contacts: OrdMap::new(),
            meetings: History::default(),
            meetings_by_kind: BTreeMap::new(),
            gifts: History::default(),
            gift_totals: OrdMap::new(),
            outcomes: History::default(),
            feedback: History::default(),
            handover_note: None,
            team_history: History::default(),
            staff_units: OrdMap::new(),
            departments_opened: OrdMap::new(),
            competitors: BTreeMap::new(),
            last_executive_visit: None,
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
            team_history: self.team_history.clone(),
            staff_units: self.staff_units.clone(),
            departments_opened: self.departments_opened.clone(),
            competitors: self.competitors.clone(),
            last_executive_visit: self.last_executive_visit,
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
                if meeting.kind == MeetingKind::ExecutiveVisit {
                    self.last_executive_visit = Some(self.last_executive_visit.map_or(at, |last| last.max(at)));
                }
                let contacts: Vec<ContactId> =
                    meeting.contact_ids.iter().filter(|c| self.account.contacts.contains_key(*c)).cloned().collect();
                for contact_id in &contacts {
                    let activity = self.contacts.entry(contact_id.clone()).or_default();
                    for person in &meeting.staff {
                        touch(activity, person, LastTouch { at, kind: TouchKind::Meeting });
                    }
                    if let Some(lead) = meeting.staff.first() {
                        self.open_department(contact_id, lead, at, version);
                    }
                }
                let record = MeetingRecord { at, version, kind: meeting.kind, staff: meeting.staff.clone(), contacts };
                insert_sorted(&mut self.meetings, record, |m| (m.at, m.version));
            }
            EventBody::GiftGiven(gift) => {
                if self.account.contacts.contains_key(&gift.recipient) {
                    let activity = self.contacts.entry(gift.recipient.clone()).or_default();
                    touch(activity, &gift.giver, LastTouch { at, kind: TouchKind::Gift });
                    self.open_department(&gift.recipient, &gift.giver, at, version);
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
                for gift in Arc::make_mut(&mut self.gifts).iter_mut().filter(|g| g.recipient == erasure.contact_id) {
                    gift.description = Personal::Forgotten;
                }
                let feedback_records = Arc::make_mut(&mut self.feedback);
                for feedback in feedback_records.iter_mut().filter(|f| f.contact.as_ref() == Some(&erasure.contact_id))
                {
                    feedback.text = Personal::Forgotten;
                }
            }
            EventBody::ContactAdded(added) => {
                let activity = self.contacts.entry(added.contact_id.clone()).or_default();
                activity.added_at = Some(activity.added_at.map_or(at, |added_at| added_at.max(at)));
            }
            EventBody::TeamMemberJoined(joined) => {
                // The domain fold replaces a member who joins again; so does the history.
                close_tenure(&mut self.team_history, &joined.member, at);
                let tenure = TeamTenure { member: joined.member.clone(), role: joined.role, from: at, to: None };
                insert_sorted(&mut self.team_history, tenure, |t| t.from);
                if !joined.business_unit.is_empty() {
                    self.assign_unit(&joined.member, &joined.business_unit, at, version);
                }
            }
            EventBody::TeamMemberLeft(left) => close_tenure(&mut self.team_history, &left.member, at),
            EventBody::StaffAssigned(assigned) => {
                self.assign_unit(&assigned.staff, &assigned.business_unit, at, version);
            }
            EventBody::CompetitorSignal(signal) => {
                let stance = CompetitorStance { stance: signal.stance, at, version };
                let stances = match &signal.contact_id {
                    Some(contact_id) => &mut self.contacts.entry(contact_id.clone()).or_default().competitors,
                    None => &mut self.competitors,
                };
                match stances.get_mut(&signal.competitor) {
                    Some(latest) if !stance.later_than(latest) => {}
                    Some(latest) => *latest = stance,
                    None => {
                        stances.insert(signal.competitor.clone(), stance);
                    }
                }
            }
            // Plans live in the domain's account (their state decides later events); their
            // progress is read from the support signals.
            EventBody::AccountOpened(_)
            | EventBody::ContactUpdated(_)
            | EventBody::ContactLeft(_)
            | EventBody::EventRetracted(_)
            | EventBody::RelationshipPlanned(_)
            | EventBody::PlanRevised(_)
            | EventBody::PlanClosed(_) => {}
        }
    }

    /// Records `person` as the opener of the contact's department if this touch is its first.
    fn open_department(&mut self, contact_id: &ContactId, person: &StaffId, at: Timestamp, version: u64) {
        let Some(contact) = self.account.contacts.get(contact_id) else { return };
        if contact.department.is_empty() {
            return;
        }
        let opened = DepartmentOpened { by: person.clone(), at, version };
        match self.departments_opened.get_mut(&contact.department) {
            Some(first) if (first.at, first.version) <= (at, version) => {}
            Some(first) => *first = opened,
            None => {
                self.departments_opened.insert(contact.department.clone(), opened);
            }
        }
    }

    fn assign_unit(&mut self, person: &StaffId, unit: &Label, at: Timestamp, version: u64) {
        let assigned = StaffUnit { unit: unit.clone(), at, version };
        match self.staff_units.get_mut(person) {
            Some(latest) if (latest.at, latest.version) > (at, version) => {}
            Some(latest) => *latest = assigned,
            None => {
                self.staff_units.insert(person.clone(), assigned);
            }
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
        drop_first(&mut self.outcomes, old.saturating_sub(keep_old));
    }
}

fn close_tenure(history: &mut History<TeamTenure>, member: &StaffId, at: Timestamp) {
    let open = |t: &TeamTenure| &t.member == member && t.to.is_none();
    if !history.iter().any(open) {
        return;
    }
    for tenure in Arc::make_mut(history).iter_mut().filter(|t| open(t)) {
        tenure.to = Some(at.max(tenure.from));
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

fn insert_sorted<T: Clone, K: Ord>(records: &mut History<T>, record: T, key: impl Fn(&T) -> K) {
    let k = key(&record);
    // Most events arrive in business-time order, so this is usually a push.
    let at = records.partition_point(|r| key(r) <= k);
    Arc::make_mut(records).insert(at, record);
}

/// Drops the first `count` records. Nothing to drop copies nothing.
fn drop_first<T: Clone>(records: &mut History<T>, count: usize) {
    if count > 0 {
        Arc::make_mut(records).drain(..count);
    }
}

fn keep_latest<T: Clone>(records: &mut History<T>, most: usize) {
    drop_first(records, records.len().saturating_sub(most));
}

fn drop_before<T: Clone>(records: &mut History<T>, cutoff: Timestamp, at: impl Fn(&T) -> Timestamp) {
    drop_first(records, records.partition_point(|r| at(r) < cutoff));
}
