//! Credit and what works. [`contributions`]: who of ours built an account's relationships in a
//! period, so that credit is shared beyond the owner; [`Playbook`]: across the portfolio, which
//! kinds of meeting are followed by a contact's stance or closeness improving.
//!
//! Both read what the projection keeps (the rule set's horizon back from the account's latest
//! activity, and each contact's latest support signals), and both are pure functions of it,
//! the rule set and the period.

use std::collections::{BTreeMap, BTreeSet};

use rapport_domain::{ContactId, MeetingKind, StaffId, TeamRole, Tier, Timestamp};
use serde::{Deserialize, Serialize};

use crate::account::AccountProjection;
use crate::practice::{Reach, practice, reaches};
use crate::rules::{RuleSet, days_to_nanos};
use crate::scores::{Factor, round2, round4};

/// A support signal that raised a contact's stance or closeness over their previous one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Improvement<'a> {
    pub contact: &'a ContactId,
    pub at: Timestamp,
    /// Stance steps plus closeness steps gained (each axis counted only when it rose).
    pub steps: u32,
}

/// The improvements that occurred in `from..=to`, by business time. A contact's first signal
/// the projection keeps is where they start, not an improvement.
pub(crate) fn improvements(projection: &AccountProjection, from: Timestamp, to: Timestamp) -> Vec<Improvement<'_>> {
    let mut all = Vec::new();
    for (contact, activity) in &projection.contacts {
        for pair in activity.assessments.windows(2) {
            let (before, after) = (&pair[0].assessment, &pair[1].assessment);
            if after.at < from || after.at > to {
                continue;
            }
            let support = (i32::from(after.support.value()) - i32::from(before.support.value())).max(0);
            let intimacy = (i32::from(after.intimacy.value()) - i32::from(before.intimacy.value())).max(0);
            let steps = (support + intimacy) as u32;
            if steps > 0 {
                all.push(Improvement { contact, at: after.at, steps });
            }
        }
    }
    all.sort_by_key(|i| i.at);
    all
}

/// Who built an account's (or the portfolio's) relationships in a period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contributions {
    /// The period's start (inclusive).
    pub from: Timestamp,
    /// Its end (inclusive): the instant it is taken at.
    pub to: Timestamp,
    /// The relationship progress in the period: stance and closeness steps gained.
    pub progress: u32,
    /// Each of our people who did anything counted, most points first.
    pub people: Vec<Contribution>,
}

/// One person's part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contribution {
    /// Who.
    pub staff: StaffId,
    /// Touches: contacts met (per contact per meeting) and gifts given.
    pub touches: u32,
    /// Key contacts they touched in the period.
    pub key_contacts: u32,
    /// Departments whose first touch ever was theirs, in the period.
    pub departments_opened: u32,
    /// Improvements of contacts they touched in the credit days before.
    pub improvements: u32,
    /// Plans achieved in the period with them as the owner.
    pub plans_achieved: u32,
    /// Gifts they gave.
    pub gifts: u32,
    /// Their points: the weighted sum of the counts above.
    pub points: f64,
    /// Their share of everyone's points, 0 to 1.
    pub share: f64,
    /// Their share of the progress, in steps (their share times the progress, unrounded, so
    /// that a portfolio's sum keeps the shares).
    pub progress: f64,
    /// How the points were made, one factor per count.
    pub factors: Vec<Factor>,
}

#[derive(Debug, Default)]
struct Counts {
    touches: u32,
    key_contacts: BTreeSet<ContactId>,
    departments_opened: u32,
    improvements: u32,
    plans_achieved: u32,
    gifts: u32,
}

/// Who of ours built the account's relationships in `from..=to`, under `rules.contribution`.
pub fn contributions(projection: &AccountProjection, rules: &RuleSet, from: Timestamp, to: Timestamp) -> Contributions {
    let credit = days_to_nanos(rules.contribution.credit_days);
    let mut counts: BTreeMap<StaffId, Counts> = BTreeMap::new();
    let in_period = |at: Timestamp| at >= from && at <= to;
    let reached = reaches(projection, from.saturating_add_nanos(-credit), to);
    for reach in reached.iter().filter(|r| in_period(r.at)) {
        let person = counts.entry(reach.staff.clone()).or_default();
        person.touches += 1;
        if projection.account.contacts.get(reach.contact).is_some_and(|c| c.key) {
            person.key_contacts.insert(reach.contact.clone());
        }
    }
    for gift in projection.gifts.iter().filter(|g| in_period(g.at)) {
        counts.entry(gift.giver.clone()).or_default().gifts += 1;
    }
    for opened in projection.departments_opened.values().filter(|d| in_period(d.at)) {
        counts.entry(opened.by.clone()).or_default().departments_opened += 1;
    }
    let improved = improvements(projection, from, to);
    let progress = improved.iter().map(|i| i.steps).sum();
    for improvement in &improved {
        let start = improvement.at.saturating_add_nanos(-credit);
        let creditors: BTreeSet<&StaffId> = reached
            .iter()
            .filter(|r: &&Reach<'_>| r.contact == improvement.contact && r.at >= start && r.at <= improvement.at)
            .map(|r| r.staff)
            .collect();
        for person in creditors {
            counts.entry(person.clone()).or_default().improvements += 1;
        }
    }
    for plan in practice(projection, rules, to).plans {
        if plan.achieved_at.is_some_and(in_period) {
            counts.entry(plan.plan.owner.clone()).or_default().plans_achieved += 1;
        }
    }
    let mut people: Vec<Contribution> = counts
        .into_iter()
        .map(|(staff, c)| {
            let tally = Tally {
                touches: c.touches,
                key_contacts: c.key_contacts.len() as u32,
                departments_opened: c.departments_opened,
                improvements: c.improvements,
                plans_achieved: c.plans_achieved,
                gifts: c.gifts,
            };
            scored(staff, tally, rules)
        })
        .collect();
    let total: f64 = people.iter().map(|p| p.points).sum();
    for person in &mut people {
        person.share = if total > 0.0 { round4(person.points / total) } else { 0.0 };
        person.progress = person.share * f64::from(progress);
    }
    sort(&mut people);
    Contributions { from, to, progress, people }
}

/// What one person did in a period, counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Tally {
    touches: u32,
    key_contacts: u32,
    departments_opened: u32,
    improvements: u32,
    plans_achieved: u32,
    gifts: u32,
}

impl Tally {
    fn of(person: &Contribution) -> Tally {
        Tally {
            touches: person.touches,
            key_contacts: person.key_contacts,
            departments_opened: person.departments_opened,
            improvements: person.improvements,
            plans_achieved: person.plans_achieved,
            gifts: person.gifts,
        }
    }

    fn plus(self, other: Tally) -> Tally {
        Tally {
            touches: self.touches + other.touches,
            key_contacts: self.key_contacts + other.key_contacts,
            departments_opened: self.departments_opened + other.departments_opened,
            improvements: self.improvements + other.improvements,
            plans_achieved: self.plans_achieved + other.plans_achieved,
            gifts: self.gifts + other.gifts,
        }
    }
}

/// A person's counts with their points and factors (share and progress still to come).
fn scored(staff: StaffId, t: Tally, rules: &RuleSet) -> Contribution {
    let w = &rules.contribution;
    let factor = |key: &str, what: &str, count: u32, weight: f64| Factor {
        key: key.to_owned(),
        detail: format!("{count} {what} × {weight:.2}"),
        points: round2(f64::from(count) * weight),
    };
    let factors = vec![
        factor("touches", "touches", t.touches, w.touch),
        factor("key_contacts", "key contacts touched", t.key_contacts, w.key_contact),
        factor("departments_opened", "departments opened", t.departments_opened, w.department_opened),
        factor("improvements", "improvements credited", t.improvements, w.improvement),
        factor("plans_achieved", "plans achieved as owner", t.plans_achieved, w.plan_achieved),
        factor("gifts", "gifts given", t.gifts, w.gift),
    ];
    let points = round2(factors.iter().map(|f| f.points).sum());
    Contribution {
        staff,
        touches: t.touches,
        key_contacts: t.key_contacts,
        departments_opened: t.departments_opened,
        improvements: t.improvements,
        plans_achieved: t.plans_achieved,
        gifts: t.gifts,
        points,
        share: 0.0,
        progress: 0.0,
        factors,
    }
}

impl Contributions {
    /// No one, no progress: the start of a portfolio's sum.
    pub fn empty(from: Timestamp, to: Timestamp) -> Contributions {
        Contributions { from, to, progress: 0, people: Vec::new() }
    }

    /// Adds another account's contributions over the same period, under the same rules.
    /// Counts, points and progress add up (a key contact of two accounts counts twice); each
    /// person's share becomes their progress over the total progress, or, while there is no
    /// progress, their points over all points.
    pub fn add(&mut self, other: &Contributions, rules: &RuleSet) {
        self.progress += other.progress;
        for theirs in &other.people {
            let (tally, progress) = match self.people.iter().position(|p| p.staff == theirs.staff) {
                Some(index) => {
                    let ours = self.people.swap_remove(index);
                    (Tally::of(&ours).plus(Tally::of(theirs)), ours.progress + theirs.progress)
                }
                None => (Tally::of(theirs), theirs.progress),
            };
            let mut person = scored(theirs.staff.clone(), tally, rules);
            person.progress = progress;
            self.people.push(person);
        }
        let total_points: f64 = self.people.iter().map(|p| p.points).sum();
        for person in &mut self.people {
            person.share = match self.progress {
                0 if total_points > 0.0 => round4(person.points / total_points),
                0 => 0.0,
                progress => round4(person.progress / f64::from(progress)),
            };
        }
        sort(&mut self.people);
    }
}

fn sort(people: &mut [Contribution]) {
    people.sort_by(|a, b| b.points.total_cmp(&a.points).then_with(|| a.staff.cmp(&b.staff)));
}

/// One contact met in one meeting, for the playbook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaybookTouch {
    /// The meeting's kind.
    pub kind: MeetingKind,
    /// An executive visit, or one our executive sponsor of the account attended.
    pub executive: bool,
    /// The contact's stance or closeness improved within the follow days after it.
    pub improved: bool,
}

/// Every contact met in a meeting in `from..=to`, and whether they improved after it (by
/// `to`, within `rules.playbook.follow_days`).
pub fn playbook_touches(
    projection: &AccountProjection,
    rules: &RuleSet,
    from: Timestamp,
    to: Timestamp,
) -> Vec<PlaybookTouch> {
    let follow = days_to_nanos(rules.playbook.follow_days);
    let improved = improvements(projection, from, to);
    let sponsor = |person: &StaffId, at: Timestamp| {
        projection.team_history.iter().any(|t| {
            &t.member == person && t.role == TeamRole::ExecutiveSponsor && t.from <= at && t.to.is_none_or(|to| at < to)
        })
    };
    let mut touches = Vec::new();
    for meeting in projection.meetings.iter().filter(|m| m.at >= from && m.at <= to) {
        let executive =
            meeting.kind == MeetingKind::ExecutiveVisit || meeting.staff.iter().any(|p| sponsor(p, meeting.at));
        let until = meeting.at.saturating_add_nanos(follow);
        for contact in &meeting.contacts {
            let improved = improved.iter().any(|i| i.contact == contact && i.at > meeting.at && i.at <= until);
            touches.push(PlaybookTouch { kind: meeting.kind, executive, improved });
        }
    }
    touches
}

/// What works, across the portfolio: for each meeting kind (executive or not), the share of
/// contacts met whose stance or closeness improved within the follow days, against the base
/// rate of all meetings; for all accounts and for each tier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Playbook {
    /// The window's start (inclusive).
    pub from: Timestamp,
    /// Its end (inclusive).
    pub to: Timestamp,
    /// The follow days of the rule set.
    pub follow_days: f64,
    /// Every row with at least one touch: all tiers first, then S, A, B, C; by kind, then
    /// not executive before executive.
    pub rows: Vec<PlaybookRow>,
    counts: BTreeMap<(Option<Tier>, MeetingKind, bool), (u32, u32)>,
}

/// One line of the playbook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlaybookRow {
    /// The tier of the accounts counted; `None` for all accounts (untiered ones count only
    /// there).
    pub tier: Option<Tier>,
    /// The meeting kind.
    pub kind: MeetingKind,
    /// Executive meetings, or not.
    pub executive: bool,
    /// Contacts met.
    pub touches: u32,
    /// Of those, improved within the follow days.
    pub improved: u32,
    /// `improved / touches`, 0 to 1.
    pub rate: f64,
    /// The same over every meeting of the tier (or of all accounts).
    pub base_rate: f64,
    /// `rate / base_rate`; `None` when nothing improved after any meeting.
    pub lift: Option<f64>,
}

impl Playbook {
    /// An empty playbook of the window `from..=to`.
    pub fn new(rules: &RuleSet, from: Timestamp, to: Timestamp) -> Playbook {
        Playbook { from, to, follow_days: rules.playbook.follow_days, rows: Vec::new(), counts: BTreeMap::new() }
    }

    /// Counts one account's touches, under its tier.
    pub fn add(&mut self, tier: Option<Tier>, touches: &[PlaybookTouch]) {
        for touch in touches {
            let groups = [Some(None), tier.map(Some)];
            for group in groups.into_iter().flatten() {
                let (all, improved) = self.counts.entry((group, touch.kind, touch.executive)).or_default();
                *all += 1;
                *improved += u32::from(touch.improved);
            }
        }
    }

    /// The rows, computed from what was added.
    pub fn finish(mut self) -> Playbook {
        let mut base: BTreeMap<Option<Tier>, (u32, u32)> = BTreeMap::new();
        for (&(tier, _, _), &(all, improved)) in &self.counts {
            let entry = base.entry(tier).or_default();
            entry.0 += all;
            entry.1 += improved;
        }
        self.rows = self
            .counts
            .iter()
            .map(|(&(tier, kind, executive), &(touches, improved))| {
                let (base_all, base_improved) = base.get(&tier).copied().unwrap_or_default();
                let rate = ratio(improved, touches);
                let base_rate = ratio(base_improved, base_all);
                let lift = (base_rate > 0.0).then(|| round4(rate / base_rate));
                PlaybookRow { tier, kind, executive, touches, improved, rate, base_rate, lift }
            })
            .collect();
        self
    }
}

fn ratio(part: u32, whole: u32) -> f64 {
    if whole == 0 { 0.0 } else { round4(f64::from(part) / f64::from(whole)) }
}
