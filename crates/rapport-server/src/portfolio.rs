//! `ListAccounts`: the portfolio filtered and sorted by scores, a page at a time.
//!
//! Every page of one listing is scored at the same instant (carried in the page token), so
//! that pages agree with each other while time moves on.

use std::sync::Arc;

use rapport_domain::{InvalidValue, Tier, Timestamp};
use rapport_projection::{AccountProjection, RuleSet, Scores, ValueClass, scores};
use rapport_proto::v1 as pb;

use crate::convert::{summary_to_wire, timestamp_to_wire};
use crate::error::ReadError;

const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1_000;

/// A parsed portfolio request.
#[derive(Debug, Clone)]
pub(crate) struct PortfolioQuery {
    tier: Option<Tier>,
    owner: String,
    value_class: Option<ValueClass>,
    ranges: Vec<(pb::ScoreKind, f64, f64)>,
    at_risk: bool,
    sort_by: pb::ScoreKind,
    ascending: bool,
    page_size: usize,
    offset: usize,
    as_of: Timestamp,
}

fn invalid(field: &str, reason: String) -> ReadError {
    ReadError::Invalid(InvalidValue::new(reason).at(field))
}

fn score_kind(value: i32, field: &str) -> Result<pb::ScoreKind, ReadError> {
    pb::ScoreKind::try_from(value).map_err(|_| {
        invalid(field, format!("{value} is not a score kind; use health, key, general, organisational or risk"))
    })
}

impl PortfolioQuery {
    /// Checks the request; `now` is the instant a first page is scored at.
    pub fn from_wire(request: &pb::ListAccountsRequest, now: Timestamp) -> Result<PortfolioQuery, ReadError> {
        let tier = match request.tier.as_str() {
            "" => None,
            text => Some(Tier::ALL.iter().copied().find(|t| t.name() == text).ok_or_else(|| {
                invalid("tier", format!("{text:?} is not a tier; use S, A, B or C, or leave it empty for any"))
            })?),
        };
        let value_class = match request.value_class.as_str() {
            "" => None,
            text => Some(
                [ValueClass::Champion, ValueClass::FutureStar, ValueClass::Harvest, ValueClass::Cost]
                    .into_iter()
                    .find(|c| c.name() == text)
                    .ok_or_else(|| {
                        invalid(
                            "value_class",
                            format!("{text:?} is not a value class; use champion, future star, harvest or cost"),
                        )
                    })?,
            ),
        };
        let mut ranges = Vec::with_capacity(request.ranges.len());
        for (i, range) in request.ranges.iter().enumerate() {
            let kind = score_kind(range.score, &format!("ranges[{i}].score"))?;
            if kind == pb::ScoreKind::Unspecified {
                return Err(invalid(&format!("ranges[{i}].score"), "is required; name the score to filter".into()));
            }
            if !(range.min.is_finite() && range.max.is_finite() && range.min <= range.max) {
                return Err(invalid(
                    &format!("ranges[{i}]"),
                    format!("min {} and max {} must be numbers with min <= max", range.min, range.max),
                ));
            }
            ranges.push((kind, range.min, range.max));
        }
        let sort_by = match score_kind(request.sort_by, "sort_by")? {
            pb::ScoreKind::Unspecified => pb::ScoreKind::Health,
            kind => kind,
        };
        let page_size = match request.page_size as usize {
            0 => DEFAULT_PAGE,
            n if n > MAX_PAGE => {
                return Err(invalid("page_size", format!("{n} is more than {MAX_PAGE}; ask for fewer per page")));
            }
            n => n,
        };
        let (as_of, offset) = if request.page_token.is_empty() {
            (now, 0)
        } else {
            parse_token(&request.page_token).ok_or_else(|| {
                invalid(
                    "page_token",
                    format!(
                        "{:?} is not a page token of this listing; pass next_page_token unchanged",
                        request.page_token
                    ),
                )
            })?
        };
        Ok(PortfolioQuery {
            tier,
            owner: request.owner.clone(),
            value_class,
            ranges,
            at_risk: request.at_risk,
            sort_by,
            ascending: request.ascending,
            page_size,
            offset,
            as_of,
        })
    }

    /// Scores every account at the query's instant, filters, sorts and cuts the page.
    pub fn run(&self, accounts: &[Arc<AccountProjection>], rules: &RuleSet) -> pb::ListAccountsResponse {
        let mut matching: Vec<(&AccountProjection, Scores)> = accounts
            .iter()
            .filter(|p| self.tier.is_none_or(|t| p.account.tier.as_ref().is_some_and(|s| s.tier == t)))
            .filter(|p| self.owner.is_empty() || p.account.owner.as_str() == self.owner)
            .map(|p| (p.as_ref(), scores(p, rules, self.as_of)))
            .filter(|(_, s)| self.value_class.is_none_or(|c| s.value_class == Some(c)))
            .filter(|(_, s)| !self.at_risk || !s.at_risk.is_empty())
            .filter(|(_, s)| self.ranges.iter().all(|(kind, min, max)| (*min..=*max).contains(&value(s, *kind))))
            .collect();
        matching.sort_by(|(a, x), (b, y)| {
            let order = value(x, self.sort_by).total_cmp(&value(y, self.sort_by));
            let order = if self.ascending { order } else { order.reverse() };
            order.then_with(|| a.account.id.cmp(&b.account.id))
        });
        let total = matching.len();
        let end = (self.offset + self.page_size).min(total);
        let page = matching.get(self.offset..end).unwrap_or_default();
        pb::ListAccountsResponse {
            accounts: page.iter().map(|(p, s)| summary_to_wire(p, s)).collect(),
            next_page_token: if end < total { token(self.as_of, end) } else { String::new() },
            total: total as u64,
            rule_set: rules.id(),
            as_of: Some(timestamp_to_wire(self.as_of)),
        }
    }
}

fn value(scores: &Scores, kind: pb::ScoreKind) -> f64 {
    match kind {
        pb::ScoreKind::Unspecified | pb::ScoreKind::Health => scores.health.value,
        pb::ScoreKind::KeyRelationship => scores.key_relationship.value,
        pb::ScoreKind::GeneralRelationship => scores.general_relationship.value,
        pb::ScoreKind::OrganisationalRelationship => scores.organisational_relationship.value,
        pb::ScoreKind::PersonalisationRisk => scores.personalisation_risk.value,
    }
}

fn token(as_of: Timestamp, offset: usize) -> String {
    format!("p1.{}.{offset}", as_of.unix_nanos())
}

fn parse_token(token: &str) -> Option<(Timestamp, usize)> {
    let mut parts = token.strip_prefix("p1.")?.split('.');
    let as_of = parts.next()?.parse().ok().map(Timestamp::from_unix_nanos)?;
    let offset = parts.next()?.parse().ok()?;
    parts.next().is_none().then_some((as_of, offset))
}
