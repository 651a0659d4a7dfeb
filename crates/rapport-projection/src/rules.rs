//! Rule sets: the scoring rules as data, read from a TOML file.
//!
//! Every key of a file's format is required, so a rule file says everything it means and a
//! typo cannot fall back to a default unnoticed; unknown keys are refused for the same reason.
//! A file either loads whole and valid or not at all. `rules/default.toml` documents every key.
//!
//! Rule files evolve by formats. A file states its format (`format = 1`; a file without it is
//! format 1). Each later format adds keys, listed once in [`ADDED_KEYS`] with the value a file
//! of an older format gets; so an analyst's file, and the rule set a stored build was made
//! under, load in every later Rapport with the rules they meant. A key of a later format in an
//! older file is refused, saying which format added it.

use std::collections::BTreeMap;

use rapport_domain::{Currency, MeetingKind, OutcomeKind, Tier};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

const NANOS_PER_DAY: i64 = 86_400 * 1_000_000_000;

/// Longest window or half-life a rule set may give, in days (100 years).
const MAX_DAYS: f64 = 36_500.0;

/// The rule file format this build reads and writes; it reads every earlier one too.
pub const FORMAT: u32 = 2;

/// A key a rule format added, with the value a file of an older format gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddedKey {
    /// The format that added it (2 or later).
    pub format: u32,
    /// Its dotted path, such as `health.plan_attainment`.
    pub key: &'static str,
    /// The value older files get, as TOML (`0.0`, `"any"`, `[]`).
    pub default: &'static str,
}

/// Every key added since format 1, in the order of their formats: the only list of them.
/// Format 1 is the keys of `rules/fixtures/format-1.toml`.
pub const ADDED_KEYS: &[AddedKey] = &[
    added(2, "health.coordination", "0.1"),
    added(2, "health.plan_attainment", "0.1"),
    added(2, "key_relationship.cadence_points", "10.0"),
    added(2, "key_relationship.competition_points", "10.0"),
    added(2, "organisational_relationship.iron_triangle_points", "10.0"),
    added(2, "organisational_relationship.executive_cadence_points", "5.0"),
    added(2, "cadence.key_contact_days", "{ S = 14.0, A = 30.0, B = 60.0, C = 90.0 }"),
    added(2, "cadence.executive_days", "{ S = 90.0, A = 180.0, B = 365.0, C = 730.0 }"),
    added(2, "coordination.window_days", "90.0"),
    added(2, "coordination.team_weight", "0.6"),
    added(2, "coordination.units_weight", "0.4"),
    added(2, "plans.at_risk_margin", "0.25"),
    added(2, "contribution.credit_days", "30.0"),
    added(2, "contribution.touch", "1.0"),
    added(2, "contribution.key_contact", "2.0"),
    added(2, "contribution.department_opened", "3.0"),
    added(2, "contribution.improvement", "3.0"),
    added(2, "contribution.plan_achieved", "5.0"),
    added(2, "contribution.gift", "0.5"),
    added(2, "playbook.follow_days", "30.0"),
];

const fn added(format: u32, key: &'static str, default: &'static str) -> AddedKey {
    AddedKey { format, key, default }
}

/// A named, versioned set of scoring rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSet {
    /// The rule file format, as the file gave it; a parsed rule set is always resolved to
    /// [`FORMAT`]. Not part of the fingerprint: equal rules are equal whatever format they were
    /// written in.
    #[serde(default = "first_format", skip_serializing)]
    pub format: u32,
    /// The rule set's name: letters, digits, `-` and `_`.
    pub name: String,
    /// Its version, from 1; a changed rule set under the same name takes a new version.
    pub version: u32,
    /// How the four scores combine into health.
    pub health: HealthRules,
    /// The key relationship score.
    pub key_relationship: KeyRelationshipRules,
    /// The general relationship score.
    pub general_relationship: GeneralRelationshipRules,
    /// The organisational relationship score.
    pub organisational_relationship: OrganisationalRules,
    /// The personalisation risk.
    pub personalisation_risk: RiskRules,
    /// When an account counts as at risk.
    pub at_risk: AtRiskRules,
    /// The value class.
    pub value: ValueRules,
    /// The gift register.
    pub gifts: GiftRules,
    /// The longest allowed gaps between touches (format 2).
    pub cadence: CadenceRules,
    /// The coordination score (format 2).
    pub coordination: CoordinationRules,
    /// Relationship plans (format 2).
    pub plans: PlanRules,
    /// How credit for relationship progress is shared among our people (format 2).
    pub contribution: ContributionRules,
    /// The playbook (format 2).
    pub playbook: PlaybookRules,
}

/// Weights of the scores in health; normalised by their sum.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthRules {
    /// Weight of the key relationship score.
    pub key_relationship: f64,
    /// Weight of the general relationship score.
    pub general_relationship: f64,
    /// Weight of the organisational relationship score.
    pub organisational_relationship: f64,
    /// Weight of `100 - personalisation risk`.
    pub personalisation_safety: f64,
    /// Weight of the coordination score (format 2).
    pub coordination: f64,
    /// Weight of the plan attainment, for accounts with plans (format 2); without plans it
    /// takes no part and the other weights share its place.
    pub plan_attainment: f64,
}

/// Stance and closeness of key contacts, fading with the age of the signal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRelationshipRules {
    /// Days after which a signal counts half as much (stance fades towards neutral,
    /// closeness towards stranger).
    pub half_life_days: f64,
    /// Share of stance in a contact's score.
    pub support_weight: f64,
    /// Share of closeness in a contact's score.
    pub intimacy_weight: f64,
    /// Points lost when every key contact is past its cadence, in proportion to the share that
    /// is (format 2).
    pub cadence_points: f64,
    /// Points lost when a competitor stands better than we do with every key contact, in
    /// proportion to the share where one does (format 2).
    pub competition_points: f64,
}

/// Coverage of the customer's departments and breadth of our people in touch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneralRelationshipRules {
    /// Days back from the as-of instant in which a touch counts.
    pub window_days: f64,
    /// Share of department coverage in the score.
    pub coverage_weight: f64,
    /// Share of breadth (our people in touch) in the score.
    pub breadth_weight: f64,
    /// Number of our people in touch that earns full breadth.
    pub breadth_target: u32,
}

/// Tier, executive-level meetings and strategic outcomes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrganisationalRules {
    /// Days back from the as-of instant in which meetings and outcomes count.
    pub window_days: f64,
    /// Points from the tier alone.
    pub tier_base: TierPoints,
    /// Points per meeting in the window, by kind.
    pub meeting_points: MeetingPoints,
    /// Most points meetings can add.
    pub meeting_points_cap: f64,
    /// Points per outcome in the window, by kind.
    pub outcome_points: OutcomePoints,
    /// Most points outcomes can add.
    pub outcome_points_cap: f64,
    /// Points when the account team covers sales, solution and delivery (the iron triangle),
    /// a third for each role covered (format 2).
    pub iron_triangle_points: f64,
    /// Points lost while executive-level meetings are past their cadence (format 2).
    pub executive_cadence_points: f64,
}

/// Points per tier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(non_snake_case)]
pub struct TierPoints {
    /// Strategic.
    pub S: f64,
    /// Partner.
    pub A: f64,
    /// B.
    pub B: f64,
    /// C.
    pub C: f64,
}

/// Days per tier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(non_snake_case)]
pub struct TierDays {
    /// Strategic.
    pub S: f64,
    /// Partner.
    pub A: f64,
    /// B.
    pub B: f64,
    /// C, and accounts without a tier.
    pub C: f64,
}

impl TierDays {
    /// The days for a tier; an account without one counts as C.
    pub fn of(&self, tier: Option<Tier>) -> f64 {
        match tier {
            Some(Tier::S) => self.S,
            Some(Tier::A) => self.A,
            Some(Tier::B) => self.B,
            Some(Tier::C) | None => self.C,
        }
    }
}

/// The longest allowed gaps between touches, by the account's tier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CadenceRules {
    /// Between touches of each current key contact (from when they were added, while
    /// untouched).
    pub key_contact_days: TierDays,
    /// Between executive visits (from the account's opening, before the first).
    pub executive_days: TierDays,
}

/// Coordination: touches of the customer through the account team, and our business units in
/// contact that the team has no one of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoordinationRules {
    /// Days back from the as-of instant in which touches count.
    pub window_days: f64,
    /// Share of team touches (over all touches) in the score.
    pub team_weight: f64,
    /// Share of coordinated units (over all units in contact) in the score.
    pub units_weight: f64,
}

/// Relationship plans.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanRules {
    /// An open plan is at risk when its progress trails the share of its time gone by more
    /// than this (0 to 1).
    pub at_risk_margin: f64,
}

/// How credit for an account's relationship progress is shared: each person's points are the
/// weighted sum of what they did in the period, and their share is their points over everyone's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContributionRules {
    /// A stance or closeness improvement is credited to each of our people who touched the
    /// contact in this many days before it.
    pub credit_days: f64,
    /// Points per touch (a contact met, a gift given).
    pub touch: f64,
    /// Points per key contact touched in the period.
    pub key_contact: f64,
    /// Points per department opened (its first touch ever).
    pub department_opened: f64,
    /// Points per improvement credited.
    pub improvement: f64,
    /// Points per plan achieved as its owner.
    pub plan_achieved: f64,
    /// Points per gift given.
    pub gift: f64,
}

/// The playbook: which meetings are followed by improvements.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaybookRules {
    /// A touch counts as followed by an improvement when the contact's stance or closeness
    /// improves within this many days after it.
    pub follow_days: f64,
}

/// Points per meeting kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct MeetingPoints {
    pub visit: f64,
    pub executive_visit: f64,
    pub dinner: f64,
    pub technical_exchange: f64,
    pub call: f64,
    pub event: f64,
    pub workshop: f64,
}

/// Points per outcome kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct OutcomePoints {
    pub deal_won: f64,
    pub deal_lost: f64,
    pub strategic_agreement: f64,
    pub renewal: f64,
    pub joint_initiative: f64,
}

/// The personalisation risk: the share of key contacts held by one of our people only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskRules {
    /// Days back from the as-of instant in which a touch counts.
    pub window_days: f64,
}

/// When an account is listed as at risk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AtRiskRules {
    /// Personalisation risk at or above this is at risk.
    pub risk_at_least: f64,
    /// Health is compared with its value this many days earlier.
    pub trend_days: f64,
    /// A fall of health by at least this many points over `trend_days` is at risk.
    pub health_drop: f64,
}

/// The value class: current profit × future potential.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValueRules {
    /// Days back in which won deals and renewals count as current profit.
    pub window_days: f64,
    /// Health at or above this means high future potential.
    pub potential_health: f64,
    /// Won and renewed value in the window, in minor units, at or above which current profit
    /// is high; per currency code.
    pub profit_threshold: BTreeMap<String, i64>,
}

/// The gift register.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GiftRules {
    /// Days of the rolling register (365: twelve months).
    pub window_days: f64,
    /// A gift above this value, in minor units, is flagged; per currency code.
    pub threshold: BTreeMap<String, i64>,
}

/// Why a rule file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleSetError {
    /// The file is not valid TOML, or a key is unknown, missing or of the wrong type. The
    /// message names the key and the line.
    #[error("the rule file does not parse: {0}")]
    Syntax(String),
    /// A key has a value outside what it allows.
    #[error("rule `{key}` {reason}")]
    Invalid {
        /// The dotted key, such as `general_relationship.window_days`.
        key: String,
        /// What is wrong and what is allowed.
        reason: String,
    },
}

fn invalid(key: &str, reason: impl Into<String>) -> RuleSetError {
    RuleSetError::Invalid { key: key.to_owned(), reason: reason.into() }
}

impl RuleSet {
    /// The rule set that ships with Rapport (`rules/default.toml`).
    pub fn default_rules() -> RuleSet {
        // Checked by a unit test; the file is part of the crate.
        match RuleSet::parse(DEFAULT_RULES) {
            Ok(rules) => rules,
            Err(error) => unreachable!("the shipped rule set is invalid: {error}"),
        }
    }

    /// Reads a rule set from TOML text of any format up to [`FORMAT`] and checks every value.
    pub fn parse(text: &str) -> Result<RuleSet, RuleSetError> {
        RuleSet::resolve(text).map(|resolved| resolved.rules)
    }

    /// Reads a rule set as [`RuleSet::parse`] does, and says which keys the file's format did
    /// not have and so took their defaults.
    pub fn resolve(text: &str) -> Result<Resolved, RuleSetError> {
        let mut table: toml::Table = text.parse().map_err(syntax)?;
        let format = file_format(&table, FORMAT)?;
        let (mut rules, defaulted) = if format == FORMAT {
            // Read from the text itself, so that an error names the line as well as the key.
            (toml::from_str::<RuleSet>(text).map_err(syntax)?, Vec::new())
        } else {
            let defaulted = fill_defaults(&mut table, format, ADDED_KEYS)?;
            match RuleSet::deserialize(table) {
                Ok(rules) => (rules, defaulted),
                // The filled table has lost the text's lines: find the key's again.
                Err(error) => return Err(syntax(with_line(error.to_string().trim(), text))),
            }
        };
        rules.format = FORMAT;
        rules.validate()?;
        Ok(Resolved { rules, format, defaulted })
    }

    /// `name@version`: how the rule set and its projection are named.
    pub fn id(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }

    /// SHA-256 over the rule set's canonical encoding: equal for files that differ only in
    /// comments, layout or key order, different for any change of a value.
    pub fn fingerprint(&self) -> [u8; 32] {
        // Serialising plain structs, maps and numbers cannot fail.
        let bytes = postcard::to_allocvec(self).unwrap_or_default();
        Sha256::digest(&bytes).into()
    }

    /// The TOML text of this rule set in [`FORMAT`], every key given (without the comments of
    /// the file it came from).
    pub fn to_toml(&self) -> String {
        format!("format = {FORMAT}\n{}", toml::to_string(self).unwrap_or_default())
    }

    /// How far back from an account's latest activity the projection keeps records: the
    /// longest window plus the trend period, so that every score at or after the latest
    /// activity, and the trend comparison, see every record they need.
    pub fn horizon_nanos(&self) -> i64 {
        // Cadence needs no records: the latest touch of each contact by each person, and the
        // latest executive visit, are kept whatever their age.
        let longest = [
            self.general_relationship.window_days,
            self.organisational_relationship.window_days,
            self.personalisation_risk.window_days,
            self.value.window_days,
            self.gifts.window_days,
            self.coordination.window_days,
        ]
        .into_iter()
        .fold(0.0, f64::max);
        // Contribution and the playbook look back a further credit or follow period.
        let lookback = self.contribution.credit_days.max(self.playbook.follow_days);
        days_to_nanos(longest + lookback + self.at_risk.trend_days)
    }

    /// Points for a meeting of this kind.
    pub fn meeting_points(&self, kind: MeetingKind) -> f64 {
        let points = &self.organisational_relationship.meeting_points;
        match kind {
            MeetingKind::Visit => points.visit,
            MeetingKind::ExecutiveVisit => points.executive_visit,
            MeetingKind::Dinner => points.dinner,
            MeetingKind::TechnicalExchange => points.technical_exchange,
            MeetingKind::Call => points.call,
            MeetingKind::Event => points.event,
            MeetingKind::Workshop => points.workshop,
        }
    }

    /// Points for an outcome of this kind.
    pub fn outcome_points(&self, kind: OutcomeKind) -> f64 {
        let points = &self.organisational_relationship.outcome_points;
        match kind {
            OutcomeKind::DealWon => points.deal_won,
            OutcomeKind::DealLost => points.deal_lost,
            OutcomeKind::StrategicAgreement => points.strategic_agreement,
            OutcomeKind::Renewal => points.renewal,
            OutcomeKind::JointInitiative => points.joint_initiative,
        }
    }

    /// Points from the tier alone.
    pub fn tier_points(&self, tier: Tier) -> f64 {
        let base = &self.organisational_relationship.tier_base;
        match tier {
            Tier::S => base.S,
            Tier::A => base.A,
            Tier::B => base.B,
            Tier::C => base.C,
        }
    }

    /// The gift threshold for a currency, in minor units, if the rule set gives one.
    pub fn gift_threshold(&self, currency: Currency) -> Option<i64> {
        self.gifts.threshold.get(currency.code()).copied()
    }

    fn validate(&self) -> Result<(), RuleSetError> {
        if self.name.is_empty()
            || self.name.len() > 64
            || !self.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(invalid("name", format!("is {:?}; give 1 to 64 ASCII letters, digits, '-' or '_'", self.name)));
        }
        if self.version == 0 {
            return Err(invalid("version", "is 0; versions start at 1"));
        }
        let h = &self.health;
        weights(
            "health",
            &[
                ("key_relationship", h.key_relationship),
                ("general_relationship", h.general_relationship),
                ("organisational_relationship", h.organisational_relationship),
                ("personalisation_safety", h.personalisation_safety),
                ("coordination", h.coordination),
                ("plan_attainment", h.plan_attainment),
            ],
        )?;
        let k = &self.key_relationship;
        days("key_relationship.half_life_days", k.half_life_days)?;
        weights("key_relationship", &[("support_weight", k.support_weight), ("intimacy_weight", k.intimacy_weight)])?;
        points("key_relationship.cadence_points", k.cadence_points)?;
        points("key_relationship.competition_points", k.competition_points)?;
        let g = &self.general_relationship;
        days("general_relationship.window_days", g.window_days)?;
        weights(
            "general_relationship",
            &[("coverage_weight", g.coverage_weight), ("breadth_weight", g.breadth_weight)],
        )?;
        if g.breadth_target == 0 {
            return Err(invalid("general_relationship.breadth_target", "is 0; give the number of people (1 or more)"));
        }
        let o = &self.organisational_relationship;
        days("organisational_relationship.window_days", o.window_days)?;
        for (tier, value) in [("S", o.tier_base.S), ("A", o.tier_base.A), ("B", o.tier_base.B), ("C", o.tier_base.C)] {
            points(&format!("organisational_relationship.tier_base.{tier}"), value)?;
        }
        let m = &o.meeting_points;
        for (kind, value) in [
            ("visit", m.visit),
            ("executive_visit", m.executive_visit),
            ("dinner", m.dinner),
            ("technical_exchange", m.technical_exchange),
            ("call", m.call),
            ("event", m.event),
            ("workshop", m.workshop),
        ] {
            points(&format!("organisational_relationship.meeting_points.{kind}"), value)?;
        }
        points("organisational_relationship.meeting_points_cap", o.meeting_points_cap)?;
        let p = &o.outcome_points;
        for (kind, value) in [
            ("deal_won", p.deal_won),
            ("deal_lost", p.deal_lost),
            ("strategic_agreement", p.strategic_agreement),
            ("renewal", p.renewal),
            ("joint_initiative", p.joint_initiative),
        ] {
            points(&format!("organisational_relationship.outcome_points.{kind}"), value)?;
        }
        points("organisational_relationship.outcome_points_cap", o.outcome_points_cap)?;
        points("organisational_relationship.iron_triangle_points", o.iron_triangle_points)?;
        points("organisational_relationship.executive_cadence_points", o.executive_cadence_points)?;
        days("personalisation_risk.window_days", self.personalisation_risk.window_days)?;
        points("at_risk.risk_at_least", self.at_risk.risk_at_least)?;
        days("at_risk.trend_days", self.at_risk.trend_days)?;
        points("at_risk.health_drop", self.at_risk.health_drop)?;
        days("value.window_days", self.value.window_days)?;
        points("value.potential_health", self.value.potential_health)?;
        amounts("value.profit_threshold", &self.value.profit_threshold)?;
        days("gifts.window_days", self.gifts.window_days)?;
        amounts("gifts.threshold", &self.gifts.threshold)?;
        let c = &self.cadence;
        for (table, gaps) in
            [("cadence.key_contact_days", &c.key_contact_days), ("cadence.executive_days", &c.executive_days)]
        {
            for (tier, value) in [("S", gaps.S), ("A", gaps.A), ("B", gaps.B), ("C", gaps.C)] {
                days(&format!("{table}.{tier}"), value)?;
            }
        }
        let co = &self.coordination;
        days("coordination.window_days", co.window_days)?;
        weights("coordination", &[("team_weight", co.team_weight), ("units_weight", co.units_weight)])?;
        if !(0.0..=1.0).contains(&self.plans.at_risk_margin) {
            return Err(invalid(
                "plans.at_risk_margin",
                format!("is {}; give a share from 0 to 1", self.plans.at_risk_margin),
            ));
        }
        let p = &self.contribution;
        days("contribution.credit_days", p.credit_days)?;
        weights(
            "contribution",
            &[
                ("touch", p.touch),
                ("key_contact", p.key_contact),
                ("department_opened", p.department_opened),
                ("improvement", p.improvement),
                ("plan_achieved", p.plan_achieved),
                ("gift", p.gift),
            ],
        )?;
        days("playbook.follow_days", self.playbook.follow_days)?;
        Ok(())
    }
}

/// A rule file read and resolved to the current format.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// The rule set, in [`FORMAT`].
    pub rules: RuleSet,
    /// The format the file was written in.
    pub format: u32,
    /// The keys the file's format did not have, which took their defaults.
    pub defaulted: Vec<AddedKey>,
}

fn first_format() -> u32 {
    1
}

/// A message about a key of a table (`unknown field `x`, ... in `a.b``), with the line of the
/// text that gives that key, when one does.
fn with_line(message: &str, text: &str) -> String {
    fn quoted<'a>(after: Option<(&'a str, &'a str)>) -> Option<&'a str> {
        after.and_then(|(_, rest)| rest.split_once('`')).map(|(q, _)| q)
    }
    let Some(key) = quoted(message.split_once('`')) else { return message.to_owned() };
    let table = quoted(message.rsplit_once("in `")).unwrap_or_default();
    let mut current = String::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.split_once(']')).map(|(h, _)| h.trim()) {
            current = header.to_owned();
        } else if current == table && line.strip_prefix(key).is_some_and(|rest| rest.trim_start().starts_with('=')) {
            return format!("{message} (line {})", number + 1);
        }
    }
    message.to_owned()
}

fn syntax(error: impl std::fmt::Display) -> RuleSetError {
    RuleSetError::Syntax(error.to_string().trim().to_owned())
}

/// The format a rule file states (none is format 1), if this build reads it.
pub(crate) fn file_format(table: &toml::Table, current: u32) -> Result<u32, RuleSetError> {
    let Some(value) = table.get("format") else { return Ok(1) };
    match value.as_integer().and_then(|n| u32::try_from(n).ok()).filter(|&n| n >= 1) {
        Some(format) if format <= current => Ok(format),
        Some(format) => Err(invalid(
            "format",
            format!("is {format}, but this build of Rapport reads rule formats 1 to {current}; upgrade Rapport"),
        )),
        None => Err(invalid("format", format!("is {value}; give a format number from 1 to {current}"))),
    }
}

/// Gives a file of `format` the defaults of every key a later format added, refusing a key of
/// a later format the file gives itself. Returns the keys defaulted.
pub(crate) fn fill_defaults(
    table: &mut toml::Table,
    format: u32,
    added: &[AddedKey],
) -> Result<Vec<AddedKey>, RuleSetError> {
    let mut defaulted = Vec::new();
    for key in added.iter().filter(|key| key.format > format) {
        let (path, leaf) = key.key.rsplit_once('.').map_or((None, key.key), |(path, leaf)| (Some(path), leaf));
        let mut parent = &mut *table;
        for part in path.into_iter().flat_map(|p| p.split('.')) {
            let entry = parent.entry(part).or_insert_with(|| toml::Value::Table(toml::Table::new()));
            parent = entry.as_table_mut().ok_or_else(|| invalid(part, "must be a table".to_owned()))?;
        }
        if parent.contains_key(leaf) {
            return Err(invalid(
                key.key,
                format!(
                    "was added in rule format {}, but the file is format {format}; set format = {} to use it",
                    key.format, key.format
                ),
            ));
        }
        let not_toml =
            |why: String| invalid(key.key, format!("has a default that is not TOML ({why}); this is a bug in Rapport"));
        let mut default: toml::Table =
            format!("value = {}", key.default).parse().map_err(|e| not_toml(format!("{e}")))?;
        let value = default.remove("value").ok_or_else(|| not_toml("no value".to_owned()))?;
        parent.insert(leaf.to_owned(), value);
        defaulted.push(*key);
    }
    table.insert("format".to_owned(), toml::Value::Integer(i64::from(FORMAT)));
    Ok(defaulted)
}

/// Converts days to nanoseconds (rounded to the nanosecond).
pub(crate) fn days_to_nanos(days: f64) -> i64 {
    (days * NANOS_PER_DAY as f64).round() as i64
}

fn days(key: &str, value: f64) -> Result<(), RuleSetError> {
    if !(value.is_finite() && value > 0.0 && value <= MAX_DAYS) {
        return Err(invalid(key, format!("is {value}; give a number of days above 0 and at most {MAX_DAYS}")));
    }
    Ok(())
}

fn points(key: &str, value: f64) -> Result<(), RuleSetError> {
    if !(value.is_finite() && (0.0..=100.0).contains(&value)) {
        return Err(invalid(key, format!("is {value}; give points from 0 to 100")));
    }
    Ok(())
}

fn weights(table: &str, values: &[(&str, f64)]) -> Result<(), RuleSetError> {
    for (key, value) in values {
        if !(value.is_finite() && *value >= 0.0) {
            return Err(invalid(&format!("{table}.{key}"), format!("is {value}; a weight is a number of at least 0")));
        }
    }
    if values.iter().all(|(_, value)| *value == 0.0) {
        let keys: Vec<&str> = values.iter().map(|(key, _)| *key).collect();
        return Err(invalid(
            table,
            format!("has all weights at 0 ({}); at least one must be above 0", keys.join(", ")),
        ));
    }
    Ok(())
}

fn amounts(table: &str, values: &BTreeMap<String, i64>) -> Result<(), RuleSetError> {
    for (code, value) in values {
        let key = format!("{table}.{code}");
        Currency::parse(code).map_err(|e| invalid(&key, format!("does not name a currency: {e}")))?;
        if *value <= 0 {
            return Err(invalid(&key, format!("is {value}; give an amount in minor units above 0")));
        }
    }
    Ok(())
}

/// The text of `rules/default.toml`.
pub const DEFAULT_RULES: &str = include_str!("../../../rules/default.toml");
