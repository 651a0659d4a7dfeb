//! The handover report: what a new owner inherits — the previous tenure and its note, the key
//! contacts and who of ours holds them, recent gifts, running commitments, and the risk if
//! the owner left.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use maud::html;
use rapport_proto::v1 as pb;

use super::{Console, Refusal, Viewer, instant, page};
use crate::chart;

pub(crate) async fn page_handler(
    State(console): State<Console>,
    viewer: Viewer,
    Path(account_id): Path<String>,
) -> Result<Response, Refusal> {
    let request = pb::HandoverRequest { account_id: account_id.clone(), ..Default::default() };
    let report = pb::accounts_client::AccountsClient::new(viewer.api(&console)?)
        .handover(viewer.request(request))
        .await
        .map_err(|s| viewer.refused(s))?
        .into_inner();
    let base = format!("/accounts/{}", super::login::encode(&account_id));
    let risk = report.personalisation_risk.as_ref().map_or(0.0, |s| s.value);
    let body = html! {
        h1 { "Handover of " a href=(base) { code { (report.account_id) } } }
        p.lead { "Owned by " strong { (report.owner) } " · under " (report.rule_set) " · as of " (instant(report.as_of.as_ref())) }
        div.grid {
            section.card {
                h2 { "From the previous owner" }
                @match &report.previous {
                    Some(previous) => {
                        p { strong { (previous.owner) } " owned it from " (instant(previous.from.as_ref())) " to " (instant(previous.to.as_ref())) "." }
                        @if report.handover_note.is_empty() { p { "No handover note was left." } }
                        @else { blockquote.note { (report.handover_note) } }
                    }
                    None => { p { "The account never changed hands." } }
                }
            }
            section.card {
                h2 { "Risk" }
                dl.facts {
                    dt { "Personalisation risk" } dd data-score="risk" { (format!("{risk:.1}")) }
                    dt { "If " (report.owner) " left" } dd data-risk-if-owner-leaves=(report.risk_if_owner_leaves) {
                        (format!("{:.1}", report.risk_if_owner_leaves)) "% of these contacts would have no one of ours in touch"
                    }
                }
            }
        }
        section.card {
            h2 { "Key contacts and who holds them" }
            div.table-wrap { table {
                thead { tr { th scope="col" { "Contact" } th scope="col" { "Department" } th scope="col" { "Stance" } th scope="col" { "Held by (latest touch)" } } }
                tbody {
                    @for c in &report.contacts {
                        @let contact = c.contact.clone().unwrap_or_default();
                        @let (class, sign) = chart::stance(contact.support);
                        tr data-contact=(contact.contact_id) {
                            th scope="row" { (contact.name) br; small { (contact.title) } }
                            td { (contact.department) }
                            td { span class=(format!("badge {class}")) { (sign) } }
                            td {
                                @if c.held_by.is_empty() { span.risk { "no one in the window" } }
                                @for t in &c.held_by { (t.by) " (" (instant(t.at.as_ref())) ") " }
                                @if c.only_through_owner { br; span.risk { "⚠ only through the owner" } }
                            }
                        }
                    }
                }
            } }
        }
        section.card {
            h2 { "Running commitments" }
            @if report.open_outcomes.is_empty() { p { "None." } }
            ul.plain { @for o in &report.open_outcomes {
                li { (rapport_wire::outcome_kind_name(o.kind)) ": " (o.title) " (" (instant(o.at.as_ref())) ")"
                    @if let Some(v) = &o.value { " " (rapport_wire::money_text(v.minor, &v.currency)) } }
            } }
        }
        section.card {
            h2 { "Recent gifts" }
            (super::gifts::gift_table(report.recent_gifts.iter().map(|g| (g, None))))
        }
    };
    Ok(page("Handover", &viewer, body).into_response())
}
