//! The MCR scores of an account under a rule set, as of an instant, each with the factors
//! that make it up.
//!
//! Scores are a pure function of the projection, the rule set and the as-of instant: the
//! clock is an input, so scores of an idle account fade as the instant moves on, and the same
//! inputs give the same bits on every machine (see `decay`). Every value is rounded to
//! hundredths of a point, so that what is compared, shown and hashed is exactly what was
//! computed.

use std::collections::BTreeSet;

use rapport_domain::{Contact, Currency, Money, OutcomeKind, StaffId, Timestamp};
use serde::{Deserialize, Serialize};

use crate::account::{AccountProjection, ContactActivity};
use crate::calendar::date_of;
use crate::decay::fade;
use crate::practice::{IRON_TRIANGLE, Practice, practice};
use crate::rules::{RuleSet, days_to_nanos};

/// Every score of an account at one instant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    /// The instant the scores are taken at.
    pub as_of: Timestamp,
    /// Stance and closeness of key contacts.
    pub key_relationship: Score,
    /// Coverage of departments and breadth of our people in touch.
    pub general_relationship: Score,
    /// Tier, executive-level meetings, strategic outcomes.
    pub organisational_relationship: Score,
    /// The share of key relationships held by one of our people only (higher is worse).
    pub personalisation_risk: Score,
    /// Touches through the account team, and our business units in contact coordinated.
    pub coordination: Score,
    /// The weighted combination.
    pub health: Score,
    /// Health `trend_days` before `as_of`, taken from the same projection.
    pub health_before: f64,
    /// Current profit × future potential, where the inputs exist.
    pub value_class: Option<ValueClass>,
    /// Why the value class is what it is (or is missing).
    pub value_factors: Vec<Factor>,
    /// Why the account is at risk; empty when it is not.
    pub at_risk: Vec<String>,
    /// Plans, cadence, coordination, the iron triangle and the competition at `as_of`.
    pub practice: Practice,
}

/// Declares [`ScoreKind`] and [`ScoreKind::ALL`] from one list, so a new score is one line here
/// and the compiler then walks through every `match` that must handle it.
macro_rules! score_kinds {
    ($($(#[$doc:meta])* $variant:ident => ($key:literal, $label:literal, $short:literal)),+ $(,)?) => {
        /// The scores every account has: one per field of [`Scores`] that holds a [`Score`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum ScoreKind {
            $($(#[$doc])* $variant),+
        }

        impl ScoreKind {
            /// Every score, in the order they are compared and hashed (the contract's order).
            pub const ALL: &'static [ScoreKind] = &[$(ScoreKind::$variant),+];

            /// The score's key, as the rule file and the contract spell it (`key_relationship`).
            pub fn key(self) -> &'static str {
                match self {
                    $(ScoreKind::$variant => $key),+
                }
            }

            /// The score's name as people read it (`key relationship`).
            pub fn label(self) -> &'static str {
                match self {
                    $(ScoreKind::$variant => $label),+
                }
            }

            /// The one word people type for it (`rapport accounts --sort key`).
            pub fn short(self) -> &'static str {
                match self {
                    $(ScoreKind::$variant => $short),+
                }
            }
        }
    };
}

score_kinds! {
    /// Stance and closeness of key contacts.
    KeyRelationship => ("key_relationship", "key relationship", "key"),
    /// Coverage of departments and breadth of our people in touch.
    GeneralRelationship => ("general_relationship", "general relationship", "general"),
    /// Tier, executive-level meetings, strategic outcomes.
    OrganisationalRelationship => ("organisational_relationship", "organisational relationship", "organisational"),
    /// The share of key relationships held by one of our people only (higher is worse).
    PersonalisationRisk => ("personalisation_risk", "personalisation risk", "risk"),
    /// The weighted combination of the others.
    Health => ("health", "health", "health"),
    /// Touches through the account team, and our business units coordinated.
    Coordination => ("coordination", "coordination", "coordination"),
}

impl Scores {
    /// One score of the account.
    pub fn get(&self, kind: ScoreKind) -> &Score {
        match kind {
            ScoreKind::KeyRelationship => &self.key_relationship,
            ScoreKind::GeneralRelationship => &self.general_relationship,
            ScoreKind::OrganisationalRelationship => &self.organisational_relationship,
            ScoreKind::PersonalisationRisk => &self.personalisation_risk,
            ScoreKind::Health => &self.health,
            ScoreKind::Coordination => &self.coordination,
        }
    }
}

/// One score, 0 to 100, and what made it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Score {
    /// The score, in hundredths of a point.
    pub value: f64,
    /// The inputs and how many points each contributed.
    pub factors: Vec<Factor>,
}

/// One input of a score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Factor {
    /// A stable key: `contact:<id>`, `coverage`, `breadth`, `tier`, `meetings`, `outcomes`,
    /// `key_relationship`, ... Comparisons match factors by key.
    pub key: String,
    /// What the input was, in words.
    pub detail: String,
    /// Points contributed to the score.
    pub points: f64,
}

/// The value class of a customer (current profit × future potential).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ValueClass {
    /// Profitable now and with potential.
    Champion,
    /// Potential, little profit yet.
    FutureStar,
    /// Profitable now, little potential.
    Harvest,
    /// Neither.
    Cost,
}

impl ValueClass {
    /// Every class.
    pub const ALL: [ValueClass; 4] =
        [ValueClass::Champion, ValueClass::FutureStar, ValueClass::Harvest, ValueClass::Cost];

    /// The class's name as people read it.
    pub fn name(self) -> &'static str {
        match self {
            ValueClass::Champion => "champion",
            ValueClass::FutureStar => "future star",
            ValueClass::Harvest => "harvest",
            ValueClass::Cost => "cost",
        }
    }
}

/// Rounds to hundredths, the precision every score is kept at.
pub fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

/// Rounds to ten-thousandths, the precision shares and rates are kept at.
pub(crate) fn round4(value: f64) -> f64 {
    (value * 10_000.0).round() / 10_000.0
}

fn factor(key: impl Into<String>, detail: impl Into<String>, points: f64) -> Factor {
    Factor { key: key.into(), detail: detail.into(), points: round2(points) }
}

fn score(value: f64, factors: Vec<Factor>) -> Score {
    Score { value: round2(value.clamp(0.0, 100.0)), factors }
}

/// Whether `at` lies in the window of `window_days` that ends at `as_of`.
pub(crate) fn within(at: Timestamp, as_of: Timestamp, window_days: f64) -> bool {
    at <= as_of && at >= as_of.saturating_add_nanos(-days_to_nanos(window_days))
}

/// The account's current contacts at `as_of`, by id.
pub(crate) fn current_at(projection: &AccountProjection, as_of: Timestamp) -> impl Iterator<Item = &Contact> {
    projection.account.contacts.values().filter(move |c| c.left_at.is_none_or(|left| left > as_of))
}

/// Our people who touched a contact in the window.
fn touchers(activity: Option<&ContactActivity>, as_of: Timestamp, window_days: f64) -> BTreeSet<&StaffId> {
    activity
        .into_iter()
        .flat_map(|a| a.touched_by.iter())
        .filter(|(_, touch)| within(touch.at, as_of, window_days))
        .map(|(person, _)| person)
        .collect()
}

/// The population the personalisation risk looks at: current key contacts, or every current
/// contact when none is key.
pub(crate) fn risk_population(projection: &AccountProjection, as_of: Timestamp) -> Vec<&Contact> {
    let key: Vec<&Contact> = current_at(projection, as_of).filter(|c| c.key).collect();
    if key.is_empty() { current_at(projection, as_of).collect() } else { key }
}

/// Every score of `projection` under `rules` as of `as_of`.
pub fn scores(projection: &AccountProjection, rules: &RuleSet, as_of: Timestamp) -> Scores {
    let Components { key, general, organisational, risk, coordination, health, practice } =
        components(projection, rules, as_of);
    let before = as_of.saturating_add_nanos(-days_to_nanos(rules.at_risk.trend_days));
    let health_before = components(projection, rules, before).health.value;
    let (value_class, value_factors) = value_class(projection, rules, as_of, health.value);
    let mut at_risk = Vec::new();
    if risk.value >= rules.at_risk.risk_at_least {
        at_risk.push(format!("personalisation risk {:.2} is at least {:.2}", risk.value, rules.at_risk.risk_at_least));
    }
    if health_before - health.value >= rules.at_risk.health_drop {
        at_risk.push(format!(
            "health fell from {:.2} to {:.2} in {} days",
            health_before, health.value, rules.at_risk.trend_days
        ));
    }
    Scores {
        as_of,
        key_relationship: key,
        general_relationship: general,
        organisational_relationship: organisational,
        personalisation_risk: risk,
        coordination,
        health,
        health_before,
        value_class,
        value_factors,
        at_risk,
        practice,
    }
}

/// The scores at one instant, and the practice figures they were made from.
struct Components {
    key: Score,
    general: Score,
    organisational: Score,
    risk: Score,
    coordination: Score,
    health: Score,
    practice: Practice,
}

fn components(projection: &AccountProjection, rules: &RuleSet, as_of: Timestamp) -> Components {
    let practice = practice(projection, rules, as_of);
    let key = key_relationship(projection, rules, as_of, &practice);
    let general = general_relationship(projection, rules, as_of);
    let organisational = organisational_relationship(projection, rules, as_of, &practice);
    let risk = personalisation_risk(projection, rules, as_of);
    let coordination = coordination(rules, &practice);
    let health = health(rules, &key, &general, &organisational, &risk, &coordination, practice.plan_attainment);
    Components { key, general, organisational, risk, coordination, health, practice }
}

fn key_relationship(projection: &AccountProjection, rules: &RuleSet, as_of: Timestamp, practice: &Practice) -> Score {
    let r = &rules.key_relationship;
    let total = r.support_weight + r.intimacy_weight;
    let (support_weight, intimacy_weight) = (r.support_weight / total, r.intimacy_weight / total);
    let half_life = days_to_nanos(r.half_life_days);
    let key: Vec<&Contact> = current_at(projection, as_of).filter(|c| c.key).collect();
    if key.is_empty() {
        return score(0.0, vec![factor("key_contacts", "the account has no current key contact", 0.0)]);
    }
    let share = 100.0 / key.len() as f64;
    let mut sum = 0.0;
    let mut factors = Vec::with_capacity(key.len());
    for contact in key {
        let latest = projection.contacts.get(&contact.id).and_then(|a| a.assessment_at(as_of));
        let (value, detail) = match latest {
            None => (support_weight * 0.5, format!("{}: never assessed (counts as a neutral stranger)", contact.id)),
            Some(a) => {
                let faded = fade(as_of.unix_nanos() - a.at.unix_nanos(), half_life);
                let stance = 0.5 + ((f64::from(a.support.value()) + 2.0) / 4.0 - 0.5) * faded;
                let closeness = f64::from(a.intimacy.value()) / 4.0 * faded;
                (
                    support_weight * stance + intimacy_weight * closeness,
                    format!(
                        "{}: {} and {} on {} (weight {:.2} after decay)",
                        contact.id,
                        a.support.name(),
                        a.intimacy.name(),
                        date_of(a.at),
                        faded
                    ),
                )
            }
        };
        let points = value * share;
        sum += points;
        factors.push(factor(format!("contact:{}", contact.id), detail, points));
    }
    let key_contacts = practice.competition.len().max(1) as f64;
    let cadence = &practice.cadence;
    let cadence_points = -r.cadence_points * cadence.overdue.len() as f64 / key_contacts;
    factors.push(factor(
        "cadence",
        format!(
            "{} of {} key contacts past their {}-day cadence",
            cadence.overdue.len(),
            cadence.key_contacts,
            cadence.key_contact_days
        ),
        cadence_points,
    ));
    let behind: Vec<String> = practice
        .competition
        .iter()
        .filter(|p| p.behind)
        .map(|p| match &p.strongest {
            Some((competitor, _)) => format!("{} ({competitor})", p.contact_id),
            None => p.contact_id.to_string(),
        })
        .collect();
    let competition_points = -r.competition_points * behind.len() as f64 / key_contacts;
    factors.push(factor(
        "competition",
        if behind.is_empty() {
            "no competitor stands better than we do with a key contact".to_owned()
        } else {
            format!("a competitor stands better than we do with {}", behind.join(", "))
        },
        competition_points,
    ));
    score(sum + round2(cadence_points) + round2(competition_points), factors)
}

/// The departments of an account's current contacts, and who of ours touched them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Coverage<'a> {
    /// Every department of a current contact.
    pub known: BTreeSet<&'a str>,
    /// The departments with a current contact touched in the general relationship window.
    pub touched: BTreeSet<&'a str>,
    /// Our people who touched any current contact in that window.
    pub people: BTreeSet<&'a StaffId>,
}

/// Which departments and people the general relationship window sees, as of `as_of`.
pub fn coverage<'a>(projection: &'a AccountProjection, rules: &RuleSet, as_of: Timestamp) -> Coverage<'a> {
    let mut coverage = Coverage::default();
    for contact in current_at(projection, as_of) {
        let department = contact.department.as_str();
        let by = touchers(projection.contacts.get(&contact.id), as_of, rules.general_relationship.window_days);
        if !department.is_empty() {
            coverage.known.insert(department);
            if !by.is_empty() {
                coverage.touched.insert(department);
            }
        }
        coverage.people.extend(by);
    }
    coverage
}

fn general_relationship(projection: &AccountProjection, rules: &RuleSet, as_of: Timestamp) -> Score {
    let r = &rules.general_relationship;
    let total = r.coverage_weight + r.breadth_weight;
    let Coverage { known, touched, people } = coverage(projection, rules, as_of);
    let coverage = if known.is_empty() { 0.0 } else { touched.len() as f64 / known.len() as f64 };
    let breadth = (people.len() as f64 / f64::from(r.breadth_target)).min(1.0);
    let coverage_points = 100.0 * r.coverage_weight / total * coverage;
    let breadth_points = 100.0 * r.breadth_weight / total * breadth;
    let untouched: Vec<&str> = known.difference(&touched).copied().collect();
    let factors = vec![
        factor(
            "coverage",
            format!(
                "{} of {} departments touched in {} days{}",
                touched.len(),
                known.len(),
                r.window_days,
                if untouched.is_empty() { String::new() } else { format!(" (not: {})", untouched.join(", ")) }
            ),
            coverage_points,
        ),
        factor(
            "breadth",
            format!(
                "{} of our people in touch in {} days (full marks at {})",
                people.len(),
                r.window_days,
                r.breadth_target
            ),
            breadth_points,
        ),
    ];
    score(coverage_points + breadth_points, factors)
}

fn organisational_relationship(
    projection: &AccountProjection,
    rules: &RuleSet,
    as_of: Timestamp,
    practice: &Practice,
) -> Score {
    let r = &rules.organisational_relationship;
    let mut factors = Vec::with_capacity(5);
    let tier_points = match &projection.account.tier {
        Some(tier) if tier.since <= as_of => {
            let points = rules.tier_points(tier.tier);
            factors.push(factor("tier", format!("tier {}", tier.tier), points));
            points
        }
        _ => {
            factors.push(factor("tier", "no tier assigned", 0.0));
            0.0
        }
    };
    let mut meeting_sum = 0.0;
    let mut meetings = 0;
    for meeting in projection.meetings.iter().filter(|m| within(m.at, as_of, r.window_days)) {
        let points = rules.meeting_points(meeting.kind);
        if points > 0.0 {
            meetings += 1;
            meeting_sum += points;
        }
    }
    let meeting_points = meeting_sum.min(r.meeting_points_cap);
    factors.push(factor(
        "meetings",
        format!(
            "{meetings} weighted meetings in {} days worth {:.2} (cap {:.2})",
            r.window_days,
            round2(meeting_sum),
            r.meeting_points_cap
        ),
        meeting_points,
    ));
    let mut outcome_sum = 0.0;
    let mut outcomes = Vec::new();
    for outcome in projection.outcomes.iter().filter(|o| within(o.at, as_of, r.window_days)) {
        let points = rules.outcome_points(outcome.kind);
        if points > 0.0 {
            outcomes.push(outcome.kind.name());
            outcome_sum += points;
        }
    }
    let outcome_points = outcome_sum.min(r.outcome_points_cap);
    factors.push(factor(
        "outcomes",
        format!(
            "{} in {} days worth {:.2} (cap {:.2})",
            if outcomes.is_empty() { "no weighted outcome".to_owned() } else { outcomes.join(", ") },
            r.window_days,
            round2(outcome_sum),
            r.outcome_points_cap
        ),
        outcome_points,
    ));
    let triangle = &practice.iron_triangle;
    let triangle_points = r.iron_triangle_points * triangle.covered.len() as f64 / IRON_TRIANGLE.len() as f64;
    let roles = |roles: &[rapport_domain::TeamRole]| roles.iter().map(|r| r.name()).collect::<Vec<_>>().join(", ");
    factors.push(factor(
        "iron_triangle",
        if triangle.missing.is_empty() {
            format!("the team covers {}", roles(&triangle.covered))
        } else {
            format!("the team covers {}; missing: {}", roles(&triangle.covered), roles(&triangle.missing))
        },
        triangle_points,
    ));
    let cadence = &practice.cadence;
    let (executive_points, executive_detail) = match cadence.executive_overdue_days {
        Some(days) => (
            -r.executive_cadence_points,
            format!("executive visits {days} days past their {}-day cadence", cadence.executive_days),
        ),
        None => (0.0, format!("executive visits within their {}-day cadence", cadence.executive_days)),
    };
    factors.push(factor("executive_cadence", executive_detail, executive_points));
    score(tier_points + meeting_points + outcome_points + round2(triangle_points) + round2(executive_points), factors)
}

fn coordination(rules: &RuleSet, practice: &Practice) -> Score {
    let r = &rules.coordination;
    let total = r.team_weight + r.units_weight;
    let c = &practice.coordination;
    let team_share = if c.touches == 0 { 1.0 } else { f64::from(c.team_touches) / f64::from(c.touches) };
    let coordinated = c.units.iter().filter(|u| u.on_team).count();
    let units_share = if c.units.is_empty() { 1.0 } else { coordinated as f64 / c.units.len() as f64 };
    let team_points = 100.0 * r.team_weight / total * team_share;
    let units_points = 100.0 * r.units_weight / total * units_share;
    let outside: Vec<&str> = c.units.iter().filter(|u| !u.on_team).map(|u| u.unit.as_str()).collect();
    let factors = vec![
        factor(
            "team_touches",
            if c.touches == 0 {
                format!("no touch in {} days", r.window_days)
            } else {
                format!(
                    "{} of {} touches in {} days through the account team",
                    c.team_touches, c.touches, r.window_days
                )
            },
            team_points,
        ),
        factor(
            "units",
            if c.units.is_empty() {
                "no business unit of ours known in contact".to_owned()
            } else if outside.is_empty() {
                format!("{} business units in contact, each with someone on the team", c.units.len())
            } else {
                format!(
                    "{} of {} business units in contact have someone on the team (not: {})",
                    coordinated,
                    c.units.len(),
                    outside.join(", ")
                )
            },
            units_points,
        ),
    ];
    score(team_points + units_points, factors)
}

pub(crate) fn personalisation_risk(projection: &AccountProjection, rules: &RuleSet, as_of: Timestamp) -> Score {
    let window = rules.personalisation_risk.window_days;
    let population = risk_population(projection, as_of);
    if population.is_empty() {
        return score(0.0, vec![factor("contacts", "the account has no current contact", 0.0)]);
    }
    let share = 100.0 / population.len() as f64;
    let mut sum = 0.0;
    let mut factors = Vec::with_capacity(population.len());
    for contact in population {
        let by = touchers(projection.contacts.get(&contact.id), as_of, window);
        let (points, detail) = match by.len() {
            0 => (0.0, format!("{}: not touched in {window} days", contact.id)),
            1 => (share, format!("{}: held by {} alone in {window} days", contact.id, join(&by))),
            n => (0.0, format!("{}: in touch with {n} of our people ({})", contact.id, join(&by))),
        };
        sum += points;
        factors.push(factor(format!("contact:{}", contact.id), detail, points));
    }
    score(sum, factors)
}

fn join(people: &BTreeSet<&StaffId>) -> String {
    people.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", ")
}

fn health(
    rules: &RuleSet,
    key: &Score,
    general: &Score,
    organisational: &Score,
    risk: &Score,
    coordination: &Score,
    plan_attainment: Option<f64>,
) -> Score {
    let h = &rules.health;
    // Without plans, attainment takes no part: the other weights share its place.
    let attainment_weight = if plan_attainment.is_some() { h.plan_attainment } else { 0.0 };
    let total = h.key_relationship
        + h.general_relationship
        + h.organisational_relationship
        + h.personalisation_safety
        + h.coordination
        + attainment_weight;
    let safety = 100.0 - risk.value;
    let mut parts = vec![
        (
            ScoreKind::KeyRelationship.key(),
            h.key_relationship,
            key.value,
            ScoreKind::KeyRelationship.label().to_owned(),
        ),
        (
            ScoreKind::GeneralRelationship.key(),
            h.general_relationship,
            general.value,
            ScoreKind::GeneralRelationship.label().to_owned(),
        ),
        (
            ScoreKind::OrganisationalRelationship.key(),
            h.organisational_relationship,
            organisational.value,
            ScoreKind::OrganisationalRelationship.label().to_owned(),
        ),
        (
            "personalisation_safety",
            h.personalisation_safety,
            safety,
            format!("personalisation safety (100 - risk {:.2})", risk.value),
        ),
        (ScoreKind::Coordination.key(), h.coordination, coordination.value, ScoreKind::Coordination.label().to_owned()),
    ];
    if let Some(attainment) = plan_attainment {
        parts.push(("plan_attainment", h.plan_attainment, attainment, "plan attainment".to_owned()));
    }
    let mut sum = 0.0;
    let factors = parts
        .iter()
        .map(|(key, weight, value, what)| {
            let points = weight / total * value;
            sum += points;
            factor(*key, format!("{what} {value:.2} × weight {:.4}", weight / total), points)
        })
        .collect();
    score(sum, factors)
}

/// An amount of a currency as people read it (`USD 120.00`); the codes here come from
/// validated events, so the fallback only guards against a stored total out of range.
fn money(code: &str, minor: i64) -> String {
    Currency::parse(code)
        .and_then(|currency| Money::new(minor, currency))
        .map_or_else(|_| format!("{code} {minor} (minor units)"), |money| money.to_string())
}

fn value_class(
    projection: &AccountProjection,
    rules: &RuleSet,
    as_of: Timestamp,
    health: f64,
) -> (Option<ValueClass>, Vec<Factor>) {
    let window = rules.value.window_days;
    let in_window: Vec<_> = projection.outcomes.iter().filter(|o| within(o.at, as_of, window)).collect();
    if in_window.is_empty() {
        return (None, vec![factor("profit", format!("no outcome recorded in {window} days"), 0.0)]);
    }
    let mut totals: std::collections::BTreeMap<&str, i64> = std::collections::BTreeMap::new();
    for outcome in &in_window {
        if let (OutcomeKind::DealWon | OutcomeKind::Renewal, Some(value)) = (outcome.kind, outcome.value) {
            let total = totals.entry(value.currency().code()).or_default();
            *total = total.saturating_add(value.minor());
        }
    }
    let profitable = totals
        .iter()
        .any(|(code, total)| rules.value.profit_threshold.get(*code).is_some_and(|threshold| total >= threshold));
    let potential = health >= rules.value.potential_health;
    let class = match (profitable, potential) {
        (true, true) => ValueClass::Champion,
        (false, true) => ValueClass::FutureStar,
        (true, false) => ValueClass::Harvest,
        (false, false) => ValueClass::Cost,
    };
    let totals_text = if totals.is_empty() {
        "no won or renewed value".to_owned()
    } else {
        totals.iter().map(|(code, total)| money(code, *total)).collect::<Vec<_>>().join(", ")
    };
    let factors = vec![
        factor(
            "profit",
            format!("{} in {window} days: {}", totals_text, if profitable { "high" } else { "below the threshold" }),
            0.0,
        ),
        factor(
            "potential",
            format!(
                "health {health:.2} {} {:.2}",
                if potential { "at or above" } else { "below" },
                rules.value.potential_health
            ),
            0.0,
        ),
    ];
    (Some(class), factors)
}
