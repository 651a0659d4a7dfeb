//! The portfolio: accounts filtered and sorted by their scores, a page at a time.
//!
//! Every page of one listing is scored at the same instant (the caller carries it from page
//! to page), so that pages agree with each other while time moves on. [`PortfolioQuery::run`]
//! scores every account it is given; [`PortfolioIndex`] keeps each account's scores at one
//! instant, so that a page costs the same whatever the size of the portfolio.

mod index;

pub use index::PortfolioIndex;

use std::cmp::Ordering;

use rapport_domain::{AccountId, StaffId, TeamRole, Tier, Timestamp};

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
    /// Scores every account at the query's instant, filters, sorts and cuts the page. Its cost
    /// grows with the number of accounts; [`PortfolioIndex`] answers the same query from
    /// scores it keeps.
    pub fn run<'a>(
        &self,
        accounts: impl IntoIterator<Item = &'a AccountProjection>,
        rules: &RuleSet,
    ) -> PortfolioPage<'a> {
        let mut matching: Vec<Ranked<(&AccountProjection, Scores)>> = accounts
            .into_iter()
            .filter(|p| self.keeps_account(p))
            .filter_map(|p| {
                let scores = scores(p, rules, self.as_of);
                let marks = Marks::of(&scores);
                self.keeps_marks(&marks).then(|| Ranked::new(self.sort_by, self.ascending, p, &marks, (p, scores)))
            })
            .collect();
        matching.sort();
        let mut health_distribution = [0u32; 10];
        for ranked in &matching {
            health_distribution[health_band(&ranked.item.1)] += 1;
        }
        let total = matching.len();
        let end = self.offset.saturating_add(self.page_size).min(total);
        let accounts =
            if self.offset < end { matching.drain(self.offset..end).map(|r| r.item).collect() } else { Vec::new() };
        PortfolioPage { accounts, total, next_offset: (end < total).then_some(end), health_distribution }
    }

    /// Whether the query filters nothing out, so that every account matches.
    pub(crate) fn keeps_all(&self) -> bool {
        let PortfolioQuery {
            tier,
            owner,
            value_class,
            ranges,
            at_risk,
            overdue,
            uncoordinated,
            missing_role,
            team_incomplete,
            sort_by: _,
            ascending: _,
            page_size: _,
            offset: _,
            as_of: _,
        } = self;
        tier.is_none()
            && owner.is_none()
            && value_class.is_none()
            && ranges.is_empty()
            && !at_risk
            && !overdue
            && !uncoordinated
            && missing_role.is_none()
            && !team_incomplete
    }

    /// The filters on the account itself, which need no scores.
    fn keeps_account(&self, p: &AccountProjection) -> bool {
        self.tier.is_none_or(|t| p.account.tier.as_ref().is_some_and(|s| s.tier == t))
            && self.owner.as_deref().is_none_or(|owner| p.account.owner.as_str() == owner)
    }

    /// The filters on the scores.
    fn keeps_marks(&self, marks: &Marks) -> bool {
        self.value_class.is_none_or(|c| marks.value_class == Some(c))
            && (!self.at_risk || marks.at_risk)
            && (!self.overdue || marks.overdue)
            && (!self.uncoordinated || marks.uncoordinated)
            && self.missing_role.is_none_or(|role| marks.missing.contains(&role))
            && (!self.team_incomplete || !marks.missing.is_empty())
            && self.ranges.iter().all(|r| (r.min..=r.max).contains(&marks.value(r.kind)))
    }

    /// Whether an account with these marks is in the listing.
    pub(crate) fn keeps(&self, p: &AccountProjection, marks: &Marks) -> bool {
        self.keeps_account(p) && self.keeps_marks(marks)
    }
}

/// Which tenth of the health range `scores` falls in; 100 falls in the top band.
fn health_band(scores: &Scores) -> usize {
    (scores.health.value / 10.0).floor().clamp(0.0, 9.0) as usize
}

/// What the filters and orders of a listing read of an account's scores: the values and the
/// flags, without the explanations, so that an index can keep them for every account.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Marks {
    values: [f64; ScoreKind::ALL.len()],
    value_class: Option<ValueClass>,
    at_risk: bool,
    overdue: bool,
    uncoordinated: bool,
    missing: Vec<TeamRole>,
    pub(crate) health_band: usize,
}

impl Marks {
    pub(crate) fn of(scores: &Scores) -> Marks {
        let practice = &scores.practice;
        Marks {
            values: std::array::from_fn(|i| scores.get(ScoreKind::ALL[i]).value),
            value_class: scores.value_class,
            at_risk: !scores.at_risk.is_empty(),
            overdue: !practice.cadence.overdue.is_empty() || practice.cadence.executive_overdue_days.is_some(),
            uncoordinated: practice.coordination.flagged,
            missing: practice.iron_triangle.missing.clone(),
            health_band: health_band(scores),
        }
    }

    fn value(&self, kind: ScoreKind) -> f64 {
        // `ALL` lists the kinds in declaration order, so a kind's number is its place there.
        self.values[kind as usize]
    }
}

/// What one account is sorted by in one order.
#[derive(Debug, Clone)]
enum SortKey {
    Score(f64),
    Name(String),
    Tier(Option<Tier>),
    Owner(StaffId),
    ValueClass(Option<&'static str>),
}

impl SortKey {
    fn of(order: PortfolioOrder, p: &AccountProjection, marks: &Marks) -> SortKey {
        match order {
            PortfolioOrder::Score(kind) => SortKey::Score(marks.value(kind)),
            PortfolioOrder::Name => SortKey::Name(p.account.name.as_str().to_owned()),
            PortfolioOrder::Tier => SortKey::Tier(p.account.tier.as_ref().map(|t| t.tier)),
            PortfolioOrder::Owner => SortKey::Owner(p.account.owner.clone()),
            PortfolioOrder::ValueClass => SortKey::ValueClass(marks.value_class.map(ValueClass::name)),
        }
    }

    fn cmp(&self, other: &SortKey) -> Ordering {
        match (self, other) {
            (SortKey::Score(a), SortKey::Score(b)) => a.total_cmp(b),
            (SortKey::Name(a), SortKey::Name(b)) => a.cmp(b),
            // `None` sorts after `Some`: the key is "has none", then the value.
            (SortKey::Tier(a), SortKey::Tier(b)) => (a.is_none(), a).cmp(&(b.is_none(), b)),
            (SortKey::Owner(a), SortKey::Owner(b)) => a.cmp(b),
            (SortKey::ValueClass(a), SortKey::ValueClass(b)) => (a.is_none(), a).cmp(&(b.is_none(), b)),
            // One listing sorts by one order, so its keys are all of one kind.
            (a, b) => a.rank().cmp(&b.rank()),
        }
    }

    fn rank(&self) -> u8 {
        match self {
            SortKey::Score(_) => 0,
            SortKey::Name(_) => 1,
            SortKey::Tier(_) => 2,
            SortKey::Owner(_) => 3,
            SortKey::ValueClass(_) => 4,
        }
    }
}

/// An account in a listing's order: by its key, highest first unless ascending, then by
/// account id (lowest first either way); `item` is carried along and not compared.
#[derive(Debug, Clone)]
pub(crate) struct Ranked<T> {
    key: SortKey,
    ascending: bool,
    id: AccountId,
    pub(crate) item: T,
}

impl<T> Ranked<T> {
    pub(crate) fn new(order: PortfolioOrder, ascending: bool, p: &AccountProjection, marks: &Marks, item: T) -> Self {
        Ranked { key: SortKey::of(order, p, marks), ascending, id: p.account.id.clone(), item }
    }
}

impl<T> Ord for Ranked<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        let order = self.key.cmp(&other.key);
        let order = if self.ascending { order } else { order.reverse() };
        order.then_with(|| self.id.cmp(&other.id))
    }
}

impl<T> PartialOrd for Ranked<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<T> PartialEq for Ranked<T> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl<T> Eq for Ranked<T> {}
