//! The portfolio: accounts filtered and sorted by their scores, a page at a time.
//!
//! Every page of one listing is scored at the same instant (the caller carries it from page
//! to page), so that pages agree with each other while time moves on.

use rapport_domain::{TeamRole, Tier, Timestamp};

use crate::account::AccountProjection;
use crate::rules::RuleSet;
use crate::scores::{ScoreKind, Scores, ValueClass, scores};

/// Which accounts a listing shows, in which order, and which page of them.
#[derive(Debug, Clone, PartialEq)]
pub struct PortfolioQuery {
    /// Only accounts of this tier.
    pub tier: Option<Tier>,
    /// Only accounts this person of ours owns.
    pub owner: Option<String>,
    /// Only accounts of this value class.
    pub value_class: Option<ValueClass>,
    /// Only accounts whose score lies in each of these inclusive ranges.
    pub ranges: Vec<ScoreRange>,
    /// Only accounts at risk.
    pub at_risk: bool,
    /// Only accounts with a key contact or executive visits past their cadence.
    pub overdue: bool,
    /// Only accounts where touches bypassed the account team.
    pub uncoordinated: bool,
    /// Only accounts whose team lacks this role of the iron triangle.
    pub missing_role: Option<TeamRole>,
    /// Only accounts whose team lacks any role of the iron triangle.
    pub team_incomplete: bool,
    /// What to sort by.
    pub sort_by: PortfolioOrder,
    /// Lowest first (otherwise highest first); ties go by account id.
    pub ascending: bool,
    /// Accounts per page, at least 1.
    pub page_size: usize,
    /// How many matching accounts come before this page.
    pub offset: usize,
    /// The instant every page is scored at.
    pub as_of: Timestamp,
}

/// What a listing is sorted by: one of the scores, or a field of the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortfolioOrder {
    /// A score's value.
    Score(ScoreKind),
    /// The account's name.
    Name,
    /// The tier: ascending is S, A, B, C, then accounts without one.
    Tier,
    /// The owner's staff id.
    Owner,
    /// The value class by name: ascending ends with accounts without one.
    ValueClass,
}

impl PortfolioOrder {
    /// The fields of the account a listing can be sorted by, in the order of a portfolio table.
    pub const FIELDS: [PortfolioOrder; 4] =
        [PortfolioOrder::Name, PortfolioOrder::Tier, PortfolioOrder::Owner, PortfolioOrder::ValueClass];

    /// The word people type for it: a score's short name, or `name`, `tier`, `owner` or
    /// `value-class`.
    pub fn short(self) -> &'static str {
        match self {
            PortfolioOrder::Score(kind) => kind.short(),
            PortfolioOrder::Name => "name",
            PortfolioOrder::Tier => "tier",
            PortfolioOrder::Owner => "owner",
            PortfolioOrder::ValueClass => "value-class",
        }
    }

    /// Its name in a table's header.
    pub fn label(self) -> &'static str {
        match self {
            PortfolioOrder::Score(kind) => kind.label(),
            PortfolioOrder::Name => "Account",
            PortfolioOrder::Tier => "Tier",
            PortfolioOrder::Owner => "Owner",
            PortfolioOrder::ValueClass => "Value class",
        }
    }

    /// The order whose [`short`](Self::short) word is `name`.
    pub fn named(name: &str) -> Option<PortfolioOrder> {
        let mut all = Self::FIELDS.into_iter().chain(ScoreKind::ALL.iter().copied().map(PortfolioOrder::Score));
        all.find(|order| order.short() == name)
    }

    /// Whether the best come first in ascending order: scores are best high, but for risk;
    /// names, owners and value classes read from the top of the alphabet, tiers from S.
    pub fn best_ascending(self) -> bool {
        !matches!(self, PortfolioOrder::Score(kind) if kind != ScoreKind::PersonalisationRisk)
    }
}

/// An inclusive range of one score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoreRange {
    /// The score.
    pub kind: ScoreKind,
    /// Lowest value kept.
    pub min: f64,
    /// Highest value kept.
    pub max: f64,
}

/// One page of a listing.
#[derive(Debug, Clone)]
pub struct PortfolioPage<'a> {
    /// The page's accounts with their scores, in order.
    pub accounts: Vec<(&'a AccountProjection, Scores)>,
    /// How many accounts match in all.
    pub total: usize,
    /// The offset of the next page, if there is one.
    pub next_offset: Option<usize>,
    /// How many matching accounts have health in [0, 10), [10, 20), ... [90, 100].
    pub health_distribution: [u32; 10],
}

impl PortfolioQuery {
    /// Scores every account at the query's instant, filters, sorts and cuts the page.
    pub fn run<'a>(
        &self,
        accounts: impl IntoIterator<Item = &'a AccountProjection>,
        rules: &RuleSet,
    ) -> PortfolioPage<'a> {
        let mut matching: Vec<(&AccountProjection, Scores)> = accounts
            .into_iter()
            .filter(|p| self.tier.is_none_or(|t| p.account.tier.as_ref().is_some_and(|s| s.tier == t)))
            .filter(|p| self.owner.as_deref().is_none_or(|owner| p.account.owner.as_str() == owner))
            .map(|p| (p, scores(p, rules, self.as_of)))
            .filter(|(_, s)| self.value_class.is_none_or(|c| s.value_class == Some(c)))
            .filter(|(_, s)| !self.at_risk || !s.at_risk.is_empty())
            .filter(|(_, s)| self.keeps_practice(s))
            .filter(|(_, s)| self.ranges.iter().all(|r| (r.min..=r.max).contains(&s.get(r.kind).value)))
            .collect();
        matching.sort_by(|(a, x), (b, y)| {
            let order = match self.sort_by {
                PortfolioOrder::Score(kind) => x.get(kind).value.total_cmp(&y.get(kind).value),
                PortfolioOrder::Name => a.account.name.as_str().cmp(b.account.name.as_str()),
                // `None` sorts before `Some`: the key is "has no tier", then the tier.
                PortfolioOrder::Tier => {
                    let tier = |p: &AccountProjection| p.account.tier.as_ref().map(|t| t.tier);
                    (tier(a).is_none(), tier(a)).cmp(&(tier(b).is_none(), tier(b)))
                }
                PortfolioOrder::Owner => a.account.owner.cmp(&b.account.owner),
                PortfolioOrder::ValueClass => {
                    let name = |s: &Scores| s.value_class.map(|c| c.name());
                    (name(x).is_none(), name(x)).cmp(&(name(y).is_none(), name(y)))
                }
            };
            let order = if self.ascending { order } else { order.reverse() };
            order.then_with(|| a.account.id.cmp(&b.account.id))
        });
        let mut health_distribution = [0u32; 10];
        for (_, s) in &matching {
            // Health is 0 to 100; 100 falls in the top band.
            let band = (s.health.value / 10.0).floor().clamp(0.0, 9.0) as usize;
            health_distribution[band] += 1;
        }
        let total = matching.len();
        let end = self.offset.saturating_add(self.page_size).min(total);
        let accounts = if self.offset < end { matching.drain(self.offset..end).collect() } else { Vec::new() };
        PortfolioPage { accounts, total, next_offset: (end < total).then_some(end), health_distribution }
    }

    fn keeps_practice(&self, scores: &Scores) -> bool {
        let p = &scores.practice;
        let overdue = !p.cadence.overdue.is_empty() || p.cadence.executive_overdue_days.is_some();
        (!self.overdue || overdue)
            && (!self.uncoordinated || p.coordination.flagged)
            && self.missing_role.is_none_or(|role| p.iron_triangle.missing.contains(&role))
            && (!self.team_incomplete || !p.iron_triangle.missing.is_empty())
    }
}
