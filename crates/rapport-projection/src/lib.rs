//! Rapport's projections, pure: what the log adds up to under a rule set.
//!
//! - [`RuleSet`]: the scoring rules as data, read from TOML (`rules/default.toml` documents
//!   every key), refused whole with the offending key named when anything is wrong.
//! - [`AccountProjection`]: one account's picture, folded event by event under a rule set;
//!   bounded by the rule set's horizon, independent of the order late events arrive in.
//! - [`scores`]: the key, general and organisational relationship scores, the personalisation
//!   risk, health and the value class as of an instant, each with its factors.
//! - [`gift_register`], [`handover`], [`compare`]: what compliance, a new owner and an analyst
//!   read from a projection.
//! - [`ProjectionDigest`]: one value that two builds of a projection can be compared by.
//!
//! Like the domain, this crate does no I/O and reads no clock: the instant is always an input,
//! and the arithmetic gives the same bits on every machine.

mod account;
mod calendar;
mod compare;
mod contribution;
mod decay;
mod digest;
mod past;
mod portfolio;
mod practice;
mod register;
mod relationships;
mod rules;
mod scores;

pub use account::{
    ASSESSMENT_HISTORY, AccountProjection, Assessment, CompetitorStance, ContactActivity, DepartmentOpened,
    FEEDBACK_HISTORY, FeedbackRecord, Folded, GiftRecord, GiftTotals, LastTouch, MeetingRecord, OUTCOME_HISTORY,
    OutcomeRecord, StaffUnit, TeamTenure,
};
pub use calendar::date_of;
pub use compare::{Movement, compare};
pub use contribution::{
    Contribution, Contributions, Playbook, PlaybookRow, PlaybookTouch, contributions, playbook_touches,
};
pub use decay::fade;
pub use digest::{AccountDigest, ProjectionDigest};
pub use past::Cut;
pub use portfolio::{PortfolioIndex, PortfolioOrder, PortfolioPage, PortfolioQuery, ScoreRange};
pub use practice::{
    BypassingTouch, Cadence, CompetitivePosition, Coordination, IRON_TRIANGLE, IronTriangle, OverdueContact,
    PlanStatus, PlanView, Practice, Standing, UnitInContact, practice,
};
pub use register::{GiftFlag, GiftRegister, HandoverContact, HandoverReport, RegisteredGift, gift_register, handover};
pub use relationships::{Relationship, relationships};
pub use rules::{
    ADDED_KEYS, AddedKey, AtRiskRules, CadenceRules, ContributionRules, CoordinationRules, DEFAULT_RULES, FORMAT,
    GeneralRelationshipRules, GiftRules, HealthRules, KeyRelationshipRules, MeetingPoints, OrganisationalRules,
    OutcomePoints, PlanRules, PlaybookRules, Resolved, RiskRules, RuleSet, RuleSetError, TierDays, TierPoints,
    ValueRules,
};
pub use scores::{Coverage, Factor, Score, ScoreKind, Scores, ValueClass, coverage, round2, scores};

/// The version of the stored encoding of [`AccountProjection`]; a stored projection of another
/// version is rebuilt from the log rather than read. 4: personal text is sealed, clear or
/// forgotten ([`rapport_domain::Personal`]); 5: plans, team history, staff units, departments
/// opened, competitors, and who met whom.
pub const ENCODING_VERSION: u8 = 5;

/// The oldest encoding whose checkpoints still decode: a checkpoint's own layout has not
/// changed since, only that of the accounts stored beside it.
const OLDEST_CHECKPOINT_ENCODING: u8 = 3;

/// Encodes a projection for storage (and for digests): a version byte, then postcard.
pub fn encode(projection: &AccountProjection) -> Vec<u8> {
    let mut bytes = vec![ENCODING_VERSION];
    // Plain structs, maps, strings and numbers: serialising cannot fail.
    if let Ok(body) = postcard::to_allocvec(projection) {
        bytes.extend_from_slice(&body);
    }
    bytes
}

/// Decodes what [`encode`] wrote.
pub fn decode(bytes: &[u8]) -> Result<AccountProjection, DecodeError> {
    match bytes.split_first() {
        Some((&ENCODING_VERSION, body)) => postcard::from_bytes(body).map_err(|e| DecodeError(e.to_string())),
        Some((version, _)) => Err(DecodeError(format!(
            "encoding version {version}, but this build reads version {ENCODING_VERSION}; rebuild the projection"
        ))),
        None => Err(DecodeError("no bytes".to_owned())),
    }
}

/// A stored projection that does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a stored account projection does not decode: {0}")]
pub struct DecodeError(String);

#[cfg(test)]
mod tests;

/// What a stored projection reflects: the rule set it was built under and the last log event
/// folded into it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Checkpoint {
    /// The rule set, as TOML (re-read and re-checked when loaded).
    pub rules: String,
    /// The position of the last event folded in (0: none).
    pub position: u64,
    /// The recording time of that event.
    pub recorded_at: rapport_domain::Timestamp,
    /// The encoding version it was stored with, which is that of the accounts stored with it
    /// (not itself stored: it is the leading byte).
    #[serde(skip)]
    pub encoding: u8,
}

impl Checkpoint {
    /// Encodes for storage: a version byte, then postcard.
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = vec![ENCODING_VERSION];
        if let Ok(body) = postcard::to_allocvec(self) {
            bytes.extend_from_slice(&body);
        }
        bytes
    }

    /// Decodes what [`Checkpoint::encode`] wrote, and re-reads its rule set.
    pub fn decode(bytes: &[u8]) -> Result<(Checkpoint, RuleSet), DecodeError> {
        let checkpoint: Checkpoint = match bytes.split_first() {
            Some((&version, body)) if (OLDEST_CHECKPOINT_ENCODING..=ENCODING_VERSION).contains(&version) => {
                let checkpoint: Checkpoint = postcard::from_bytes(body).map_err(|e| DecodeError(e.to_string()))?;
                Checkpoint { encoding: version, ..checkpoint }
            }
            _ => return Err(DecodeError("a checkpoint of another encoding version; rebuild the projection".into())),
        };
        let rules = RuleSet::parse(&checkpoint.rules).map_err(|e| DecodeError(e.to_string()))?;
        Ok((checkpoint, rules))
    }
}
