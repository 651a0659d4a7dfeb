//! The gift register: gifts and hospitality of the rolling window with totals, and its flags —
//! above the threshold for its currency, no threshold for the currency, no approval reference.
//! One account's register, or every account's flagged gifts.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use rapport_proto::v1 as pb;
use serde::Deserialize;

use super::{Console, Refusal, Viewer, instant, page};

/// The page's query.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Which {
    /// One account's register; none for the flags across the portfolio.
    account: Option<String>,
}

pub(crate) async fn page_handler(
    State(console): State<Console>,
    viewer: Viewer,
    Query(which): Query<Which>,
) -> Result<Response, Refusal> {
    let api = viewer.api(&console)?;
    let mut accounts = pb::accounts_client::AccountsClient::new(api);
    let body = match which.account.as_deref().filter(|a| !a.is_empty()) {
        Some(account_id) => {
            let request = pb::GiftRegisterRequest { account_id: account_id.to_owned(), ..Default::default() };
            let register =
                accounts.gift_register(viewer.request(request)).await.map_err(|s| viewer.refused(s))?.into_inner();
            one_account(&register)
        }
        None => {
            // Every account's register, a page of the portfolio at a time; its cost grows with
            // the portfolio, as the portfolio's own listing does.
            let mut registers = Vec::new();
            let mut page_token = String::new();
            loop {
                let request = pb::ListAccountsRequest {
                    order_by: pb::AccountField::Name as i32,
                    ascending: true,
                    page_size: 1_000,
                    page_token,
                    ..Default::default()
                };
                let listed =
                    accounts.list_accounts(viewer.request(request)).await.map_err(|s| viewer.refused(s))?.into_inner();
                for account in &listed.accounts {
                    let request =
                        pb::GiftRegisterRequest { account_id: account.account_id.clone(), ..Default::default() };
                    let register = accounts
                        .gift_register(viewer.request(request))
                        .await
                        .map_err(|s| viewer.refused(s))?
                        .into_inner();
                    registers.push((account.name.clone(), register));
                }
                if listed.next_page_token.is_empty() {
                    break;
                }
                page_token = listed.next_page_token;
            }
            portfolio(&registers)
        }
    };
    Ok(page("Gift register", &viewer, body).into_response())
}

fn flagged(gift: &pb::RegisteredGift) -> bool {
    gift.above_threshold > 0 || gift.no_threshold || gift.no_approval
}

fn one_account(register: &pb::GiftRegisterView) -> Markup {
    html! {
        h1 { "Gift register of " a href=(format!("/accounts/{}", super::login::encode(&register.account_id))) { code { (register.account_id) } } }
        p.lead { "The " (register.window_days) " days up to " (instant(register.as_of.as_ref())) ", under " (register.rule_set) }
        p { "Totals: " @for (i, t) in register.totals.iter().enumerate() { @if i > 0 { ", " } strong { (rapport_wire::money_text(t.minor, &t.currency)) } } @if register.totals.is_empty() { "none" } }
        (gift_table(register.gifts.iter().map(|g| (g.gift.as_ref().unwrap_or(&EMPTY), Some(g)))))
        @if !register.totals_by_contact.is_empty() {
            h2 { "By contact" }
            ul.plain { @for t in &register.totals_by_contact {
                li { code { (t.contact_id) } ": " (t.total.as_ref().map(|m| rapport_wire::money_text(m.minor, &m.currency)).unwrap_or_default()) }
            } }
        }
    }
}

fn portfolio(registers: &[(String, pb::GiftRegisterView)]) -> Markup {
    let flagged_gifts: Vec<(&str, &pb::GiftRegisterView, &pb::RegisteredGift)> = registers
        .iter()
        .flat_map(|(name, r)| r.gifts.iter().filter(|g| flagged(g)).map(move |g| (name.as_str(), r, g)))
        .collect();
    html! {
        h1 { "Gift register" }
        p.lead { (flagged_gifts.len()) " flagged gifts across " (registers.len()) " accounts, each account's window up to now" }
        @if flagged_gifts.is_empty() { p.ok { "No gift is above its threshold or without an approval reference." } }
        @else {
            div.table-wrap { table.gifts {
                thead { tr { th scope="col" { "Account" } th scope="col" { "When" } th scope="col" { "Giver" } th scope="col" { "To" }
                    th scope="col" { "What" } th.num scope="col" { "Value" } th scope="col" { "Approval" } th scope="col" { "Flags" } } }
                tbody { @for (name, register, g) in &flagged_gifts {
                    @let gift = g.gift.clone().unwrap_or_default();
                    tr data-event=(gift.event_id) {
                        td { a href=(format!("/gifts?account={}", super::login::encode(&register.account_id))) { (name) } }
                        (gift_cells(&gift, Some(g)))
                    }
                } }
            } }
        }
        h2 { "Each account" }
        ul.plain { @for (name, r) in registers {
            li { a href=(format!("/gifts?account={}", super::login::encode(&r.account_id))) { (name) } ": " (r.gifts.len()) " gifts, " (r.gifts.iter().filter(|g| flagged(g)).count()) " flagged" }
        } }
    }
}

static EMPTY: pb::GiftView = pb::GiftView {
    event_id: String::new(),
    at: None,
    giver: String::new(),
    recipient_contact_id: String::new(),
    description: String::new(),
    value: None,
    approval_ref: String::new(),
    recipient_forgotten: false,
};

/// Gifts as a table; with their register entries, their flags too.
pub(crate) fn gift_table<'a>(
    gifts: impl Iterator<Item = (&'a pb::GiftView, Option<&'a pb::RegisteredGift>)>,
) -> Markup {
    let gifts: Vec<_> = gifts.collect();
    html! {
        @if gifts.is_empty() { p { "No gifts in the window." } }
        @else {
            div.table-wrap { table.gifts {
                thead { tr { th scope="col" { "When" } th scope="col" { "Giver" } th scope="col" { "To" } th scope="col" { "What" }
                    th.num scope="col" { "Value" } th scope="col" { "Approval" } th scope="col" { "Flags" } } }
                tbody { @for (gift, entry) in &gifts { tr data-event=(gift.event_id) { (gift_cells(gift, *entry)) } } }
            } }
        }
    }
}

fn gift_cells(gift: &pb::GiftView, entry: Option<&pb::RegisteredGift>) -> Markup {
    let value = gift.value.as_ref().map(|m| rapport_wire::money_text(m.minor, &m.currency)).unwrap_or_default();
    let currency = gift.value.as_ref().map_or("", |m| m.currency.as_str());
    html! {
        td { (instant(gift.at.as_ref())) }
        td { (gift.giver) }
        td { code { (gift.recipient_contact_id) } @if gift.recipient_forgotten { " (forgotten)" } }
        td { @if gift.recipient_forgotten { "–" } @else { (gift.description) } }
        td.num { (value) }
        td { @if gift.approval_ref.is_empty() { "–" } @else { (gift.approval_ref) } }
        td.flags {
            @if let Some(e) = entry {
                @if e.above_threshold > 0 { span.flag data-flag="above-threshold" { "⚑ above the threshold of " (rapport_wire::money_text(e.above_threshold, currency)) } br; }
                @if e.no_threshold { span.flag data-flag="no-threshold" { "⚑ no threshold for " (currency) } br; }
                @if e.no_approval { span.flag data-flag="no-approval" { "⚑ no approval reference" } }
            }
        }
    }
}
