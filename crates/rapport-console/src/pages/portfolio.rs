//! The portfolio: every account with health, the four scores, coordination, value class, tier
//! and owner; sorted by any score, filtered by tier, owner and risk, a page at a time; and how
//! health is spread across the accounts shown.

use axum::extract::{Query, State};
use axum::response::Response;
use maud::{Markup, html};
use rapport_projection::{PortfolioOrder, ScoreKind};
use rapport_proto::v1 as pb;
use serde::Deserialize;

use super::{Console, Refusal, Viewer, page};
use crate::chart;

/// The page's query: what people pick in its form and its column headers.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Listing {
    /// The column to sort by, by its short name (`health`, `risk`, `name`, `value-class`, ...).
    sort: Option<String>,
    /// `asc` for lowest first.
    order: Option<String>,
    tier: Option<String>,
    owner: Option<String>,
    /// Any value: only accounts at risk.
    at_risk: Option<String>,
    /// The page token of the page to show.
    page: Option<String>,
}

const PAGE_SIZE: u32 = 25;

/// The columns of scores, in the order of the table.
pub(crate) fn columns() -> impl Iterator<Item = ScoreKind> {
    [
        ScoreKind::Health,
        ScoreKind::KeyRelationship,
        ScoreKind::GeneralRelationship,
        ScoreKind::OrganisationalRelationship,
        ScoreKind::PersonalisationRisk,
        ScoreKind::Coordination,
    ]
    .into_iter()
}

/// The sortable columns, in the order of the table: the account's name, tier and owner, the
/// scores, the value class.
fn sortable() -> impl Iterator<Item = PortfolioOrder> {
    let [name, tier, owner, value_class] = PortfolioOrder::FIELDS;
    [name, tier, owner].into_iter().chain(columns().map(PortfolioOrder::Score)).chain([value_class])
}

impl Listing {
    fn sort(&self) -> PortfolioOrder {
        self.sort.as_deref().and_then(PortfolioOrder::named).unwrap_or(PortfolioOrder::Score(ScoreKind::Health))
    }

    fn ascending(&self) -> bool {
        self.order.as_deref() == Some("asc")
    }

    fn filter(&self, name: &str) -> &str {
        match name {
            "tier" => self.tier.as_deref(),
            "owner" => self.owner.as_deref(),
            _ => None,
        }
        .unwrap_or("")
    }

    /// This listing's link, sorted by `column`: the other way round when it is sorted by it
    /// already, best first otherwise.
    fn sorted_by(&self, column: PortfolioOrder) -> String {
        let ascending = if column == self.sort() { !self.ascending() } else { column.best_ascending() };
        self.link(column, ascending)
    }

    /// This listing's link, sorted by `column` in the given order, with its filters.
    fn link(&self, column: PortfolioOrder, ascending: bool) -> String {
        let mut link = format!("/?sort={}&order={}", column.short(), if ascending { "asc" } else { "desc" });
        for (name, value) in [("tier", self.filter("tier")), ("owner", self.filter("owner"))] {
            if !value.is_empty() {
                link.push_str(&format!("&{name}={}", super::login::encode(value)));
            }
        }
        if self.at_risk.is_some() {
            link.push_str("&at_risk=on");
        }
        link
    }

    /// The link to this listing's first page.
    fn first_page(&self) -> String {
        self.link(self.sort(), self.ascending())
    }
}

pub(crate) async fn page_handler(
    State(console): State<Console>,
    viewer: Viewer,
    Query(listing): Query<Listing>,
) -> Result<Response, Refusal> {
    let api = viewer.api(&console)?;
    let mut request = pb::ListAccountsRequest {
        tier: listing.filter("tier").to_owned(),
        owner: listing.filter("owner").to_owned(),
        at_risk: listing.at_risk.is_some(),
        ascending: listing.ascending(),
        page_size: PAGE_SIZE,
        page_token: listing.page.clone().unwrap_or_default(),
        ..Default::default()
    };
    rapport_wire::requests::sort_listing_by(&mut request, listing.sort());
    let listed = pb::accounts_client::AccountsClient::new(api)
        .list_accounts(viewer.request(request))
        .await
        .map_err(|status| viewer.refused(status))?
        .into_inner();
    Ok(axum::response::IntoResponse::into_response(page("Portfolio", &viewer, render(&listing, &listed))))
}

fn render(listing: &Listing, listed: &pb::ListAccountsResponse) -> Markup {
    let sort = listing.sort();
    html! {
        h1 { "Portfolio" }
        p.lead {
            (listed.total) " accounts under " strong { (listed.rule_set) } ", scored as of " (super::instant(listed.as_of.as_ref()))
        }
        section.distribution aria-label="Health across these accounts" {
            h2 { "Health across these accounts" }
            (chart::distribution(&listed.health_distribution))
        }
        form.filters method="get" action="/" {
            input type="hidden" name="sort" value=(sort.short());
            input type="hidden" name="order" value=(if listing.ascending() { "asc" } else { "desc" });
            label { "Tier "
                select name="tier" {
                    option value="" { "any" }
                    @for tier in ["S", "A", "B", "C"] {
                        option value=(tier) selected[listing.filter("tier") == tier] { (tier) }
                    }
                }
            }
            label { "Owner " input type="text" name="owner" value=(listing.filter("owner")) placeholder="staff id"; }
            label.check { input type="checkbox" name="at_risk" checked[listing.at_risk.is_some()]; " at risk only" }
            button type="submit" { "Show" }
        }
        div.table-wrap {
            table.portfolio {
                caption { "Sorted by " (sort.label()) ", " (order_words(sort, listing.ascending())) }
                thead { tr {
                    @for column in sortable() {
                        th scope="col" aria-sort=(aria_sort(listing, column)) {
                            a href=(listing.sorted_by(column)) { (column.label()) (arrow(listing, column)) }
                        }
                    }
                    th scope="col" { "Risk" }
                } }
                tbody {
                    @for a in &listed.accounts {
                        tr data-account=(a.account_id) {
                            th scope="row" { a href=(format!("/accounts/{}", super::login::encode(&a.account_id))) { (a.name) } br; small { (a.account_id) } }
                            td { (a.tier) }
                            td { (a.owner) }
                            @for kind in columns() {
                                td.num data-score=(kind.short()) { (format!("{:.1}", rapport_wire::scores::summary_score(a, kind))) }
                            }
                            td { (a.value_class) }
                            td { @if a.at_risk.is_empty() { "–" } @else { span.risk title=(a.at_risk.join("; ")) { "⚠ at risk" } } }
                        }
                    }
                }
            }
        }
        nav.pages aria-label="Pages" {
            @if listing.page.is_some() { a href=(listing.first_page()) { "First page" } }
            @if !listed.next_page_token.is_empty() {
                a href=(format!("{}&page={}", listing.first_page(), super::login::encode(&listed.next_page_token))) { "Next page" }
            }
        }
    }
}

fn order_words(sort: PortfolioOrder, ascending: bool) -> &'static str {
    match (sort, ascending) {
        (PortfolioOrder::Score(_), true) => "lowest first",
        (PortfolioOrder::Score(_), false) => "highest first",
        (_, true) => "ascending",
        (_, false) => "descending",
    }
}

fn aria_sort(listing: &Listing, column: PortfolioOrder) -> &'static str {
    match (column == listing.sort(), listing.ascending()) {
        (false, _) => "none",
        (true, true) => "ascending",
        (true, false) => "descending",
    }
}

fn arrow(listing: &Listing, column: PortfolioOrder) -> &'static str {
    match (column == listing.sort(), listing.ascending()) {
        (false, _) => "",
        (true, true) => " ▲",
        (true, false) => " ▼",
    }
}
