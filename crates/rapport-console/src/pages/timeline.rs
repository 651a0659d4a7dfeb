//! An account's history: its events newest first, a page at a time, filtered by type, each
//! with its place in the stream and the log, both times, who and through what, its hash and
//! whether a later correction retracted it; and the check of its hash chain.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use rapport_domain::EventKind;
use rapport_proto::v1 as pb;
use serde::Deserialize;

use super::{Console, Refusal, Viewer, instant, page};

const PAGE: usize = 50;

/// The page's query.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Filter {
    /// Only events of this type (`meeting_held`, ...); empty for all.
    #[serde(rename = "type")]
    kind: Option<String>,
    /// Show events from this version back; none for from the newest.
    before: Option<u64>,
}

impl Filter {
    fn kind(&self, viewer: &Viewer) -> Result<Option<EventKind>, Refusal> {
        match self.kind.as_deref().filter(|k| !k.is_empty()) {
            None => Ok(None),
            Some(name) => EventKind::ALL.iter().copied().find(|k| k.name() == name).map(Some).ok_or_else(|| {
                viewer.refused(tonic::Status::invalid_argument(format!(
                    "type {name:?} is not an event type; pick one from the list"
                )))
            }),
        }
    }
}

pub(crate) async fn page_handler(
    State(console): State<Console>,
    viewer: Viewer,
    Path(account_id): Path<String>,
    Query(filter): Query<Filter>,
) -> Result<Response, Refusal> {
    let body = timeline(&console, &viewer, &account_id, &filter, None).await?;
    Ok(page("Timeline", &viewer, body).into_response())
}

/// `POST .../verify`: the account's chain checked, shown above its timeline.
pub(crate) async fn verify_handler(
    State(console): State<Console>,
    viewer: Viewer,
    Path(account_id): Path<String>,
) -> Result<Response, Refusal> {
    let api = viewer.api(&console)?;
    let request = pb::VerifyRequest { account_id: account_id.clone(), ..Default::default() };
    let verified = pb::ledger_client::LedgerClient::new(api)
        .verify(viewer.request(request))
        .await
        .map_err(|s| viewer.refused(s))?
        .into_inner();
    let body = timeline(&console, &viewer, &account_id, &Filter::default(), Some(&verified)).await?;
    Ok(page("Timeline", &viewer, body).into_response())
}

async fn timeline(
    console: &Console,
    viewer: &Viewer,
    account_id: &str,
    filter: &Filter,
    verified: Option<&pb::VerifyResponse>,
) -> Result<Markup, Refusal> {
    let kind = filter.kind(viewer)?;
    let mut ledger = pb::ledger_client::LedgerClient::new(viewer.api(console)?);
    // Reads back in chunks until a page of matching events is found or the stream's start is
    // reached; `older` is where the next page starts.
    let mut shown = Vec::with_capacity(PAGE);
    let mut from = filter.before.unwrap_or(0);
    let mut older = None;
    'reading: loop {
        let request = pb::ReadStreamRequest {
            account_id: account_id.to_owned(),
            from_version: from,
            backwards: true,
            limit: 200,
            ..Default::default()
        };
        let mut events = ledger.read_stream(viewer.request(request)).await.map_err(|s| viewer.refused(s))?.into_inner();
        let mut last = None;
        while let Some(recorded) = events.message().await.map_err(|s| viewer.refused(s))? {
            last = Some(recorded.version);
            let matches = kind.is_none_or(|k| {
                recorded.event.as_ref().and_then(|e| e.body.as_ref()).map(rapport_wire::kind_of) == Some(k)
            });
            if matches {
                if shown.len() == PAGE {
                    older = Some(recorded.version);
                    break 'reading;
                }
                shown.push(recorded);
            }
        }
        match last {
            Some(version) if version > 1 => from = version - 1,
            _ => break,
        }
    }
    Ok(render(account_id, filter, kind, &shown, older, verified))
}

fn render(
    account_id: &str,
    filter: &Filter,
    kind: Option<EventKind>,
    events: &[pb::RecordedEvent],
    older: Option<u64>,
    verified: Option<&pb::VerifyResponse>,
) -> Markup {
    let base = format!("/accounts/{}", super::login::encode(account_id));
    let type_query = kind.map(|k| format!("&type={}", k.name())).unwrap_or_default();
    html! {
        h1 { "Timeline of " a href=(base) { code { (account_id) } } }
        @if let Some(v) = verified { (verification(v)) }
        div.actions {
            form.inline method="get" action=(format!("{base}/timeline")) {
                label { "Type "
                    select name="type" {
                        option value="" { "every type" }
                        @for k in EventKind::ALL { option value=(k.name()) selected[kind == Some(*k)] { (k.name()) } }
                    }
                }
                button type="submit" { "Filter" }
            }
            form.inline method="post" action=(format!("{base}/verify")) {
                button type="submit" { "Verify this account" }
            }
        }
        @if events.is_empty() { p { "No events" @if kind.is_some() { " of this type" } "." } }
        @else {
            div.table-wrap { table.timeline {
                caption { "Newest first" @if filter.before.is_some() { ", from version " (filter.before.unwrap_or_default()) " back" } }
                thead { tr {
                    th scope="col" { "Version" } th scope="col" { "Position" } th scope="col" { "Occurred" } th scope="col" { "Recorded" }
                    th scope="col" { "Event" } th scope="col" { "Actor" } th scope="col" { "Source" } th scope="col" { "Recorded by" } th scope="col" { "Hash" }
                } }
                tbody {
                    @for r in events {
                        @let event = r.event.clone().unwrap_or_default();
                        @let name = event.body.as_ref().map_or("(no body)", |b| rapport_wire::kind_of(b).name());
                        tr.retracted[r.retracted_by > 0] data-version=(r.version) data-type=(name) {
                            td.num { (r.version) }
                            td.num { (r.position) }
                            td.time { (instant(event.occurred_at.as_ref())) }
                            td.time { (instant(r.recorded_at.as_ref())) }
                            td {
                                strong { (name) } br;
                                span.summary { (rapport_wire::events::summary(&event)) }
                                @if r.retracted_by > 0 { br; span.mark { "Retracted by version " (r.retracted_by) } }
                                @if r.forgotten { br; span.mark { "Names a forgotten contact" } }
                            }
                            td { (event.actor) }
                            td { (event.source) }
                            td { @if r.recorded_by.is_empty() { "–" } @else { (r.recorded_by) } }
                            td { code.hash title=(hex(&r.hash)) { (hex(&r.hash).get(..12).unwrap_or("")) } }
                        }
                    }
                }
            } }
        }
        nav.pages aria-label="Pages" {
            @if filter.before.is_some() { a href=(format!("{base}/timeline?{}", type_query.trim_start_matches('&'))) { "Newest" } }
            @if let Some(version) = older { a href=(format!("{base}/timeline?before={version}{type_query}")) { "Older events" } }
        }
    }
}

/// The result of a chain check, in words.
pub(crate) fn verification(v: &pb::VerifyResponse) -> Markup {
    html! {
        @if v.intact {
            p.ok role="status" data-verified="intact" {
                strong { "Intact." } " " (v.events_checked) " events in " (v.streams_checked) " streams checked up to position " (v.last_position)
                ": every hash, link, version and position holds."
            }
        } @else {
            p.refusal role="alert" data-verified="broken" {
                strong { "Broken." }
                @if let Some(b) = &v.first_break {
                    " The first event that does not hold together is version " (b.version) " of " code { (b.account_id) } " at position " (b.position) ": " (b.message)
                }
            }
        }
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
