//! The portfolio kept scored: each account's marks at one instant, and the accounts in each
//! order a listing has asked for, so that a page is read rather than computed.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use rapport_domain::{AccountId, Timestamp};

use super::{Marks, PortfolioOrder, PortfolioPage, PortfolioQuery, Ranked};
use crate::account::AccountProjection;
use crate::rules::RuleSet;
use crate::scores::scores;

/// Every account of a build scored at one instant, kept current one account at a time.
///
/// A page of a listing scored at that instant reads the accounts in the listing's order from
/// a sorted set, and scores only the page's accounts again for their explanations (the same
/// inputs, so the same scores). Without filters, a page costs its own accounts plus the
/// `offset` skipped before it, whatever the size of the portfolio; a filter walks the marks
/// of every account in order (no scoring), to count the matches. The set of an order is made
/// the first time a listing asks for it, and kept from then on.
#[derive(Debug, Clone)]
pub struct PortfolioIndex {
    instant: Timestamp,
    accounts: HashMap<AccountId, Arc<Listed>>,
    orders: HashMap<(PortfolioOrder, bool), BTreeSet<Ranked<Arc<Listed>>>>,
    health_distribution: [u32; 10],
}

/// One account as the index holds it: the projection it scored, and its marks.
#[derive(Debug)]
struct Listed {
    projection: Arc<AccountProjection>,
    marks: Marks,
}

impl PortfolioIndex {
    /// An empty index scored at `instant`.
    pub fn new(instant: Timestamp) -> PortfolioIndex {
        PortfolioIndex { instant, accounts: HashMap::new(), orders: HashMap::new(), health_distribution: [0; 10] }
    }

    /// The instant every account is scored at.
    pub fn instant(&self) -> Timestamp {
        self.instant
    }

    /// How many accounts the index holds.
    pub fn len(&self) -> usize {
        self.accounts.len()
    }

    /// Whether the index holds no account.
    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
    }

    /// Scores `projection` at the index's instant under `rules` (the rule set of every account
    /// here), in place of the account's earlier state if the index held one.
    pub fn update(&mut self, projection: Arc<AccountProjection>, rules: &RuleSet) {
        let marks = Marks::of(&scores(&projection, rules, self.instant));
        let listed = Arc::new(Listed { projection, marks });
        let previous = self.accounts.insert(listed.projection.account.id.clone(), Arc::clone(&listed));
        if let Some(previous) = &previous {
            self.health_distribution[previous.marks.health_band] -= 1;
        }
        self.health_distribution[listed.marks.health_band] += 1;
        for (&(order, ascending), sorted) in &mut self.orders {
            if let Some(previous) = &previous {
                sorted.remove(&ranked(order, ascending, previous));
            }
            sorted.insert(ranked(order, ascending, &listed));
        }
    }

    /// The page `query` asks for, as [`PortfolioQuery::run`] would answer it over the same
    /// accounts; `None` when the query is scored at another instant than the index.
    pub fn run(&mut self, query: &PortfolioQuery, rules: &RuleSet) -> Option<PortfolioPage<'_>> {
        if query.as_of != self.instant {
            return None;
        }
        let PortfolioIndex { instant, accounts, orders, health_distribution } = self;
        let sorted = orders.entry((query.sort_by, query.ascending)).or_insert_with(|| {
            accounts.values().map(|listed| ranked(query.sort_by, query.ascending, listed)).collect()
        });
        let (page, total, health_distribution): (Vec<&Listed>, usize, [u32; 10]) = if query.keeps_all() {
            let page = sorted.iter().skip(query.offset).take(query.page_size).map(|r| r.item.as_ref()).collect();
            (page, accounts.len(), *health_distribution)
        } else {
            let mut page = Vec::new();
            let mut total = 0;
            let mut distribution = [0u32; 10];
            for listed in sorted.iter().map(|r| r.item.as_ref()) {
                if !query.keeps(&listed.projection, &listed.marks) {
                    continue;
                }
                if total >= query.offset && page.len() < query.page_size {
                    page.push(listed);
                }
                total += 1;
                distribution[listed.marks.health_band] += 1;
            }
            (page, total, distribution)
        };
        let end = query.offset.saturating_add(page.len());
        let accounts = page
            .into_iter()
            .map(|listed| (listed.projection.as_ref(), scores(&listed.projection, rules, *instant)))
            .collect();
        Some(PortfolioPage { accounts, total, next_offset: (end < total).then_some(end), health_distribution })
    }
}

fn ranked(order: PortfolioOrder, ascending: bool, listed: &Arc<Listed>) -> Ranked<Arc<Listed>> {
    Ranked::new(order, ascending, &listed.projection, &listed.marks, Arc::clone(listed))
}
