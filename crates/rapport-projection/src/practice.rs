//! The practice beyond recording: what an account manager acts on this week. Relationship
//! plans and their progress, the cadence of touches, coordination of our people through the
//! account team, the iron triangle of roles, and where competitors stand better than we do.
//!
//! Like the scores, every figure is a pure function of the projection, the rule set and the
//! as-of instant; the scores take several of them as factors (see `scores`).

use std::collections::{BTreeMap, BTreeSet};

use rapport_domain::{
    ContactAssessment, ContactId, Intimacy, Label, MeetingKind, Plan, PlanOutcome, StaffId, Support, TeamRole,
    Timestamp, TouchKind,
};
use serde::{Deserialize, Serialize};

use crate::account::AccountProjection;
use crate::decay::fade;
use crate::rules::{RuleSet, days_to_nanos};
use crate::scores::{current_at, round2, round4};

const NANOS_PER_DAY: i64 = 86_400 * 1_000_000_000;

/// The roles of the iron triangle: the account team should cover all three.
pub const IRON_TRIANGLE: [TeamRole; 3] = [TeamRole::Sales, TeamRole::Solution, TeamRole::Delivery];

/// The practice figures of one account at one instant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Practice {
    /// Every plan made by the instant, in plan id order.
    pub plans: Vec<PlanView>,
    /// The mean progress of the plans not abandoned, 0 to 100; `None` without such plans.
    pub plan_attainment: Option<f64>,
    /// Key contacts and executive visits past their longest allowed gap.
    pub cadence: Cadence,
    /// Touches through the account team, and our business units in contact.
    pub coordination: Coordination,
    /// Which of sales, solution and delivery the team covers.
    pub iron_triangle: IronTriangle,
    /// Our stance against the strongest competitor's, per current key contact.
    pub competition: Vec<CompetitivePosition>,
}

/// Where a plan stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PlanStatus {
    /// Open, and its progress keeps up with its time.
    OnTrack,
    /// Open, and its progress trails its time by more than the rule set allows (or its
    /// contact left).
    AtRisk,
    /// Open past its due date.
    Overdue,
    /// Its target was reached (or it was closed as achieved).
    Achieved,
    /// Closed as abandoned.
    Abandoned,
}

impl PlanStatus {
    /// Every status.
    pub const ALL: [PlanStatus; 5] =
        [PlanStatus::OnTrack, PlanStatus::AtRisk, PlanStatus::Overdue, PlanStatus::Achieved, PlanStatus::Abandoned];

    /// The status as people read it.
    pub fn name(self) -> &'static str {
        match self {
            PlanStatus::OnTrack => "on track",
            PlanStatus::AtRisk => "at risk",
            PlanStatus::Overdue => "overdue",
            PlanStatus::Achieved => "achieved",
            PlanStatus::Abandoned => "abandoned",
        }
    }
}

/// A stance and a closeness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Standing {
    /// Stance.
    pub support: Support,
    /// Closeness.
    pub intimacy: Intimacy,
}

impl Standing {
    fn of(assessment: &ContactAssessment) -> Standing {
        Standing { support: assessment.support, intimacy: assessment.intimacy }
    }

    fn reaches(self, target: Standing) -> bool {
        self.support >= target.support && self.intimacy >= target.intimacy
    }
}

/// One plan at the instant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanView {
    /// The plan as its events leave it.
    pub plan: Plan,
    /// Where it stands.
    pub status: PlanStatus,
    /// How much of the distance from its start to its target is closed, 0 to 1.
    pub progress: f64,
    /// The contact's standing when the plan was made (a neutral stranger if never assessed).
    pub start: Standing,
    /// Their latest standing by the instant.
    pub latest: Standing,
    /// When it was achieved, if it was.
    pub achieved_at: Option<Timestamp>,
    /// Why the status is what it is, in words.
    pub detail: String,
}

/// Cadence: who is past their longest allowed gap.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cadence {
    /// The longest gap allowed for key contacts at the account's tier, in days.
    pub key_contact_days: f64,
    /// Current key contacts past it, most overdue first.
    pub overdue: Vec<OverdueContact>,
    /// The number of current key contacts.
    pub key_contacts: u32,
    /// The longest gap allowed between executive visits, in days.
    pub executive_days: f64,
    /// The latest executive visit by the instant.
    pub last_executive_visit: Option<Timestamp>,
    /// Whole days past the executive gap; `None` while within it.
    pub executive_overdue_days: Option<i64>,
}

/// A key contact past their cadence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverdueContact {
    /// The contact.
    pub contact_id: ContactId,
    /// Their latest touch by the instant; `None` if never touched.
    pub last_touch: Option<Timestamp>,
    /// When the next touch was due.
    pub due_at: Timestamp,
    /// Whole days past that.
    pub days_overdue: i64,
}

/// Coordination of our people through the account team.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Coordination {
    /// Touches of the customer's contacts in the window.
    pub touches: u32,
    /// Of those, by the owner or a team member at the time.
    pub team_touches: u32,
    /// The others: touches that bypassed the team, latest first.
    pub bypassing: Vec<BypassingTouch>,
    /// Our business units in contact in the window, by name.
    pub units: Vec<UnitInContact>,
    /// Our people in contact in the window whose unit is not known.
    pub unknown_unit: u32,
    /// Touches bypassed the team in the window.
    pub flagged: bool,
}

/// A touch of a contact by one of our people who was not on the account team.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BypassingTouch {
    /// Who of ours.
    pub staff: StaffId,
    /// Their business unit, if known.
    pub unit: Option<Label>,
    /// Whom they reached.
    pub contact_id: ContactId,
    /// When.
    pub at: Timestamp,
    /// How.
    pub kind: TouchKind,
}

/// One of our business units in contact with the customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitInContact {
    /// The unit.
    pub unit: Label,
    /// Our people of it who touched the customer in the window.
    pub people: u32,
    /// Whether the owner or a team member belongs to it.
    pub on_team: bool,
}

/// The account team's cover of the iron triangle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IronTriangle {
    /// The roles covered (the owner covers sales), in the triangle's order.
    pub covered: Vec<TeamRole>,
    /// The roles missing.
    pub missing: Vec<TeamRole>,
}

/// Our stance with one key contact against the strongest competitor's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompetitivePosition {
    /// The contact.
    pub contact_id: ContactId,
    /// Our stance, -2 to +2, faded towards neutral with the key relationship half-life.
    pub ours: f64,
    /// The competitor standing best with them, and its stance faded alike.
    pub strongest: Option<(Label, f64)>,
    /// A competitor stands better than we do.
    pub behind: bool,
}

/// Every practice figure of `projection` under `rules` at `as_of`.
pub fn practice(projection: &AccountProjection, rules: &RuleSet, as_of: Timestamp) -> Practice {
    let plans: Vec<PlanView> = projection
        .account
        .plans
        .values()
        .filter(|plan| plan.planned_at <= as_of)
        .map(|plan| plan_view(projection, rules, plan, as_of))
        .collect();
    let counted: Vec<f64> = plans.iter().filter(|p| p.status != PlanStatus::Abandoned).map(|p| p.progress).collect();
    let plan_attainment =
        (!counted.is_empty()).then(|| round2(100.0 * counted.iter().sum::<f64>() / counted.len() as f64));
    Practice {
        plans,
        plan_attainment,
        cadence: cadence(projection, rules, as_of),
        coordination: coordination(projection, rules, as_of),
        iron_triangle: iron_triangle(projection, as_of),
        competition: competition(projection, rules, as_of),
    }
}

/// The contact's signals that occurred by `as_of`, oldest first, as the history keeps them.
fn signals_by<'a>(
    projection: &'a AccountProjection,
    contact: &ContactId,
    as_of: Timestamp,
) -> impl Iterator<Item = &'a ContactAssessment> {
    projection
        .contacts
        .get(contact)
        .into_iter()
        .flat_map(|a| a.assessments.iter())
        .map(|a| &a.assessment)
        .filter(move |a| a.at <= as_of)
}

fn plan_view(projection: &AccountProjection, rules: &RuleSet, plan: &Plan, as_of: Timestamp) -> PlanView {
    let neutral = Standing { support: Support::default(), intimacy: Intimacy::default() };
    let start = signals_by(projection, &plan.contact_id, plan.planned_at).last().map_or(neutral, Standing::of);
    let latest = signals_by(projection, &plan.contact_id, as_of).last().map_or(start, Standing::of);
    let target = Standing { support: plan.target.support, intimacy: plan.target.intimacy };
    let closed = plan.closed.filter(|(_, at)| *at <= as_of);
    // Signals count from the plan's making until it was closed.
    let open_until = closed.map_or(as_of, |(_, at)| at);
    let reached = signals_by(projection, &plan.contact_id, open_until)
        .find(|a| a.at >= plan.planned_at && Standing::of(a).reaches(target))
        .map(|a| a.at)
        .or_else(|| start.reaches(target).then_some(plan.planned_at));
    let achieved_at = match closed {
        Some((PlanOutcome::Achieved, at)) => Some(reached.map_or(at, |r| r.min(at))),
        _ => reached,
    };
    let distance = axis_gap(start.support.value(), target.support.value())
        + axis_gap(start.intimacy.value() as i8, target.intimacy.value() as i8);
    let gained = axis_gain(start.support.value(), latest.support.value(), target.support.value())
        + axis_gain(start.intimacy.value() as i8, latest.intimacy.value() as i8, target.intimacy.value() as i8);
    let progress = match achieved_at {
        Some(_) => 1.0,
        None if distance == 0 => 1.0,
        None => round4(f64::from(gained) / f64::from(distance)),
    };
    let span = (plan.due_at.unix_nanos() - plan.planned_at.unix_nanos()).max(1) as f64;
    let elapsed = ((as_of.unix_nanos() - plan.planned_at.unix_nanos()) as f64 / span).clamp(0.0, 1.0);
    let contact_left =
        projection.account.contacts.get(&plan.contact_id).and_then(|c| c.left_at).filter(|left| *left <= as_of);
    let (status, detail) = match (achieved_at, closed) {
        (Some(at), _) if at <= plan.due_at => (
            PlanStatus::Achieved,
            format!("achieved on {}, {} before it was due", date(at), days_text(plan.due_at, at)),
        ),
        (Some(at), _) => {
            (PlanStatus::Achieved, format!("achieved on {}, {} after it was due", date(at), days_text(at, plan.due_at)))
        }
        (None, Some((_, at))) => (PlanStatus::Abandoned, format!("abandoned on {}", date(at))),
        (None, None) if as_of > plan.due_at => (
            PlanStatus::Overdue,
            format!(
                "due on {}, {} ago, at {:.0}% of the way",
                date(plan.due_at),
                days_text(as_of, plan.due_at),
                progress * 100.0
            ),
        ),
        (None, None) if contact_left.is_some() => (PlanStatus::AtRisk, "the contact has left the customer".to_owned()),
        (None, None) if progress + rules.plans.at_risk_margin < elapsed => (
            PlanStatus::AtRisk,
            format!(
                "{:.0}% of the way with {:.0}% of its time gone (allowed to trail by {:.0} points)",
                progress * 100.0,
                elapsed * 100.0,
                rules.plans.at_risk_margin * 100.0
            ),
        ),
        (None, None) => (
            PlanStatus::OnTrack,
            format!("{:.0}% of the way with {:.0}% of its time gone", progress * 100.0, elapsed * 100.0),
        ),
    };
    PlanView { plan: plan.clone(), status, progress, start, latest, achieved_at, detail }
}

fn axis_gap(start: i8, target: i8) -> u8 {
    (target - start).max(0) as u8
}

fn axis_gain(start: i8, latest: i8, target: i8) -> u8 {
    (latest.min(target) - start).max(0) as u8
}

fn date(at: Timestamp) -> String {
    crate::calendar::date_of(at)
}

/// The whole days from `earlier` to `later`, in words.
fn days_text(later: Timestamp, earlier: Timestamp) -> String {
    match whole_days(later, earlier) {
        1 => "1 day".to_owned(),
        days => format!("{days} days"),
    }
}

fn whole_days(later: Timestamp, earlier: Timestamp) -> i64 {
    (later.unix_nanos() - earlier.unix_nanos()).div_euclid(NANOS_PER_DAY)
}

/// The latest touch of a contact by any of our people by `as_of`: from the meetings and gifts
/// the projection keeps, and beyond its horizon from the latest touch by each person.
pub(crate) fn last_touch(projection: &AccountProjection, contact: &ContactId, as_of: Timestamp) -> Option<Timestamp> {
    let meetings = projection.meetings.iter().filter(|m| m.at <= as_of && m.contacts.contains(contact)).map(|m| m.at);
    let gifts = projection.gifts.iter().filter(|g| g.at <= as_of && &g.recipient == contact).map(|g| g.at);
    let latest_by_person = projection
        .contacts
        .get(contact)
        .into_iter()
        .flat_map(|a| a.touched_by.values())
        .filter(|t| t.at <= as_of)
        .map(|t| t.at);
    meetings.chain(gifts).chain(latest_by_person).max()
}

fn cadence(projection: &AccountProjection, rules: &RuleSet, as_of: Timestamp) -> Cadence {
    let tier = projection.account.tier.as_ref().filter(|t| t.since <= as_of).map(|t| t.tier);
    let key_contact_days = rules.cadence.key_contact_days.of(tier);
    let gap = days_to_nanos(key_contact_days);
    let mut overdue = Vec::new();
    let mut key_contacts = 0;
    for contact in current_at(projection, as_of).filter(|c| c.key) {
        key_contacts += 1;
        let touched = last_touch(projection, &contact.id, as_of);
        let added = projection.contacts.get(&contact.id).and_then(|a| a.added_at).filter(|at| *at <= as_of);
        let since = touched.or(added).unwrap_or(projection.account.opened_at);
        let due_at = since.saturating_add_nanos(gap);
        if as_of > due_at {
            overdue.push(OverdueContact {
                contact_id: contact.id.clone(),
                last_touch: touched,
                due_at,
                days_overdue: whole_days(as_of, due_at),
            });
        }
    }
    overdue.sort_by(|a, b| b.days_overdue.cmp(&a.days_overdue).then_with(|| a.contact_id.cmp(&b.contact_id)));
    let executive_days = rules.cadence.executive_days.of(tier);
    let last_executive_visit = projection
        .meetings
        .iter()
        .filter(|m| m.kind == MeetingKind::ExecutiveVisit && m.at <= as_of)
        .map(|m| m.at)
        .chain(projection.last_executive_visit.filter(|at| *at <= as_of))
        .max();
    let due = last_executive_visit
        .unwrap_or(projection.account.opened_at)
        .saturating_add_nanos(days_to_nanos(executive_days));
    Cadence {
        key_contact_days,
        overdue,
        key_contacts,
        executive_days,
        last_executive_visit,
        executive_overdue_days: (as_of > due).then(|| whole_days(as_of, due)),
    }
}

/// One of our people reaching one contact: each person present at a meeting reaches each
/// contact present; a gift reaches its recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reach<'a> {
    pub staff: &'a StaffId,
    pub contact: &'a ContactId,
    pub at: Timestamp,
    pub kind: TouchKind,
}

/// Every reach of a contact that occurred in `from..=to`, by business time.
pub(crate) fn reaches(projection: &AccountProjection, from: Timestamp, to: Timestamp) -> Vec<Reach<'_>> {
    let mut all = Vec::new();
    for meeting in projection.meetings.iter().filter(|m| m.at >= from && m.at <= to) {
        for staff in &meeting.staff {
            for contact in &meeting.contacts {
                all.push(Reach { staff, contact, at: meeting.at, kind: TouchKind::Meeting });
            }
        }
    }
    for gift in projection.gifts.iter().filter(|g| g.at >= from && g.at <= to) {
        all.push(Reach { staff: &gift.giver, contact: &gift.recipient, at: gift.at, kind: TouchKind::Gift });
    }
    all.sort_by_key(|r| r.at);
    all
}

/// Whether `person` was the owner or on the account team at `at`.
pub(crate) fn on_team(projection: &AccountProjection, person: &StaffId, at: Timestamp) -> bool {
    let covers = |from: Timestamp, to: Option<Timestamp>| from <= at && to.is_none_or(|to| at < to);
    projection.account.owner_history.iter().any(|t| &t.owner == person && covers(t.from, t.to))
        || projection.team_history.iter().any(|t| &t.member == person && covers(t.from, t.to))
}

/// The owner and the team members at `at`, with their roles (the owner's is sales).
fn team_at(projection: &AccountProjection, at: Timestamp) -> Vec<(&StaffId, TeamRole)> {
    let covers = |from: Timestamp, to: Option<Timestamp>| from <= at && to.is_none_or(|to| at < to);
    let owner =
        projection.account.owner_history.iter().filter(|t| covers(t.from, t.to)).map(|t| (&t.owner, TeamRole::Sales));
    let members = projection.team_history.iter().filter(|t| covers(t.from, t.to)).map(|t| (&t.member, t.role));
    owner.chain(members).collect()
}

fn coordination(projection: &AccountProjection, rules: &RuleSet, as_of: Timestamp) -> Coordination {
    let from = as_of.saturating_add_nanos(-days_to_nanos(rules.coordination.window_days));
    let unit_of = |person: &StaffId| projection.staff_units.get(person).filter(|u| u.at <= as_of).map(|u| &u.unit);
    let (mut touches, mut team_touches) = (0, 0);
    let mut bypassing = Vec::new();
    let mut people = BTreeSet::new();
    for reach in reaches(projection, from, as_of) {
        touches += 1;
        people.insert(reach.staff);
        if on_team(projection, reach.staff, reach.at) {
            team_touches += 1;
        } else {
            bypassing.push(BypassingTouch {
                staff: reach.staff.clone(),
                unit: unit_of(reach.staff).cloned(),
                contact_id: reach.contact.clone(),
                at: reach.at,
                kind: reach.kind,
            });
        }
    }
    bypassing.reverse();
    let team_units: BTreeSet<&Label> = team_at(projection, as_of).into_iter().filter_map(|(p, _)| unit_of(p)).collect();
    let mut units: BTreeMap<&Label, u32> = BTreeMap::new();
    let mut unknown_unit = 0;
    for person in people {
        match unit_of(person) {
            Some(unit) => *units.entry(unit).or_default() += 1,
            None => unknown_unit += 1,
        }
    }
    let units = units
        .into_iter()
        .map(|(unit, people)| UnitInContact { unit: unit.clone(), people, on_team: team_units.contains(unit) })
        .collect();
    Coordination { touches, team_touches, flagged: !bypassing.is_empty(), bypassing, units, unknown_unit }
}

fn iron_triangle(projection: &AccountProjection, as_of: Timestamp) -> IronTriangle {
    let roles: BTreeSet<TeamRole> = team_at(projection, as_of).into_iter().map(|(_, role)| role).collect();
    let (covered, missing) = IRON_TRIANGLE.iter().partition(|role| roles.contains(role));
    IronTriangle { covered, missing }
}

/// A stance faded towards neutral with the key relationship half-life, on the -2 .. +2 scale.
fn faded_stance(stance: Support, at: Timestamp, as_of: Timestamp, rules: &RuleSet) -> f64 {
    let half_life = days_to_nanos(rules.key_relationship.half_life_days);
    f64::from(stance.value()) * fade(as_of.unix_nanos() - at.unix_nanos(), half_life)
}

fn competition(projection: &AccountProjection, rules: &RuleSet, as_of: Timestamp) -> Vec<CompetitivePosition> {
    let mut positions = Vec::new();
    for contact in current_at(projection, as_of).filter(|c| c.key) {
        let activity = projection.contacts.get(&contact.id);
        let ours =
            activity.and_then(|a| a.assessment_at(as_of)).map_or(0.0, |a| faded_stance(a.support, a.at, as_of, rules));
        // The contact's own signal about a competitor; the organisation's where they have none.
        let mut stances: BTreeMap<&Label, f64> = BTreeMap::new();
        let own = activity.into_iter().flat_map(|a| a.competitors.iter());
        for (competitor, stance) in projection.competitors.iter().chain(own) {
            if stance.at <= as_of {
                stances.insert(competitor, faded_stance(stance.stance, stance.at, as_of, rules));
            }
        }
        let strongest = stances
            .into_iter()
            .max_by(|(a, x), (b, y)| x.total_cmp(y).then_with(|| b.cmp(a)))
            .map(|(competitor, stance)| (competitor.clone(), round4(stance)));
        let behind = strongest.as_ref().is_some_and(|(_, theirs)| *theirs > round4(ours));
        positions.push(CompetitivePosition { contact_id: contact.id.clone(), ours: round4(ours), strongest, behind });
    }
    positions
}
