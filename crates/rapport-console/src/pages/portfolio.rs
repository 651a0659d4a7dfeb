//! The portfolio: every account with health, the four scores, coordination, value class, tier
//! and owner; sorted by any score, filtered by tier, owner and risk, a page at a time; and how
//! health is spread across the accounts shown.

use axum::extract::{Query, State};
use axum::response::Response;
use maud::{Markup, html};
use rapport_projection::ScoreKind;
use rapport_proto::v1 as pb;
use serde::Deserialize;

use super::{Console, Refusal, Viewer, page};
use crate::chart;

/// The page's query: what people pick in its form and its column headers.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Listing {
    /// The score to sort by, by its short name (`health`, `risk`, ...).
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

impl Listing {
    fn sort(&self) -> ScoreKind {
        let named = self.sort.as_deref().unwrap_or("health");
        ScoreKind::ALL.iter().copied().find(|k| k.short() == named).unwrap_or(ScoreKind::Health)
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

    /// This listing's link, sorted by `kind`: the other way round when it is sorted by it
    /// already; highest first otherwise, but for risk, where lowest is best.
    fn sorted_by(&self, kind: ScoreKind) -> String {
        let ascending = if kind == self.sort() { !self.ascending() } else { kind == ScoreKind::PersonalisationRisk };
        let mut link = format!("/?sort={}&order={}", kind.short(), if ascending { "asc" } else { "desc" });
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
}

pub(crate) async fn page_handler(
    State(console): State<Console>,
    viewer: Viewer,
    Query(listing): Query<Listing>,
) -> Result<Response, Refusal> {
    let api = viewer.api(&console)?;
    let request = pb::ListAccountsRequest {
        tier: listing.filter("tier").to_owned(),
        owner: listing.filter("owner").to_owned(),
        at_risk: listing.at_risk.is_some(),
        sort_by: rapport_wire::score_kind_to_wire(listing.sort()) as i32,
        ascending: listing.ascending(),
        page_size: PAGE_SIZE,
        page_token: listing.page.clone().unwrap_or_default(),
        ..Default::default()
    };
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
                caption { "Sorted by " (sort.label()) ", " (if listing.ascending() { "lowest first" } else { "highest first" }) }
                thead { tr {
                    th scope="col" { "Account" }
                    th scope="col" { "Tier" }
                    th scope="col" { "Owner" }
                    @for kind in columns() {
                        th scope="col" aria-sort=(aria_sort(listing, kind)) {
                            a href=(listing.sorted_by(kind)) { (kind.label()) (arrow(listing, kind)) }
                        }
                    }
                    th scope="col" { "Value class" }
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
            @if listing.page.is_some() { a href=(first_page(listing)) { "First page" } }
            @if !listed.next_page_token.is_empty() {
                a href=(format!("{}&page={}", first_page(listing), super::login::encode(&listed.next_page_token))) { "Next page" }
            }
        }
    }
}

fn first_page(listing: &Listing) -> String {
    let sort = listing.sort();
    // The link for the current sort, in the current order.
    let link = listing.sorted_by(sort);
    let flipped = if listing.ascending() { "order=desc" } else { "order=asc" };
    link.replacen(flipped, if listing.ascending() { "order=asc" } else { "order=desc" }, 1)
}

fn aria_sort(listing: &Listing, kind: ScoreKind) -> &'static str {
    match (kind == listing.sort(), listing.ascending()) {
        (false, _) => "none",
        (true, true) => "ascending",
        (true, false) => "descending",
    }
}

fn arrow(listing: &Listing, kind: ScoreKind) -> &'static str {
    match (kind == listing.sort(), listing.ascending()) {
        (false, _) => "",
        (true, true) => " ▲",
        (true, false) => " ▼",
    }
}
