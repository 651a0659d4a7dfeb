//! The auditor's page: the whole log's hash chains checked, the log's digest at a position to
//! keep and compare later, and the export download — the same JSON lines as `rapport export`,
//! which `rapport verify --file` checks offline.

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use maud::{Markup, html};
use rapport_proto::v1 as pb;
use rapport_wire::export::ExportLine;
use serde::Deserialize;

use super::{Console, Refusal, Viewer, page};

/// The page's query: the digest's position, and an account to export alone.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct AuditQuery {
    /// 0 or none: the end of the durable log.
    position: Option<u64>,
    /// Export only this account.
    account: Option<String>,
}

pub(crate) async fn page_handler(
    State(console): State<Console>,
    viewer: Viewer,
    Query(query): Query<AuditQuery>,
) -> Result<Response, Refusal> {
    let body = audit(&console, &viewer, &query, None).await?;
    Ok(page("Auditor", &viewer, body).into_response())
}

/// `POST /auditor/verify`: every stream and position of the log checked.
pub(crate) async fn verify_handler(State(console): State<Console>, viewer: Viewer) -> Result<Response, Refusal> {
    let verified = pb::ledger_client::LedgerClient::new(viewer.api(&console)?)
        .verify(viewer.request(pb::VerifyRequest::default()))
        .await
        .map_err(|s| viewer.refused(s))?
        .into_inner();
    let body = audit(&console, &viewer, &AuditQuery::default(), Some(&verified)).await?;
    Ok(page("Auditor", &viewer, body).into_response())
}

async fn audit(
    console: &Console,
    viewer: &Viewer,
    query: &AuditQuery,
    verified: Option<&pb::VerifyResponse>,
) -> Result<Markup, Refusal> {
    let request = pb::DigestRequest { position: query.position.unwrap_or(0), ..Default::default() };
    let digest = pb::ledger_client::LedgerClient::new(viewer.api(console)?)
        .digest(viewer.request(request))
        .await
        .map_err(|s| viewer.refused(s))?
        .into_inner();
    Ok(html! {
        h1 { "Auditor" }
        section.card aria-labelledby="verify-title" {
            h2 #verify-title { "Verify the whole log" }
            p { "Checks every event of every stream: its hash, its link to the one before, its version and its position." }
            @if let Some(v) = verified { (super::timeline::verification(v)) }
            form.inline method="post" action="/auditor/verify" { button type="submit" { "Verify the whole log" } }
        }
        section.card aria-labelledby="digest-title" {
            h2 #digest-title { "Digest at a position" }
            p { "The log's root hash over " (digest.streams) " streams at position " strong { (digest.position) } ":" }
            p { code.hash #digest data-position=(digest.position) { (digest.digest) } }
            p { "Keep it; the same position gives the same digest for as long as the log is intact." }
            form.inline method="get" action="/auditor#digest-title" {
                label { "Position " input type="number" name="position" min="0" value=(digest.position); }
                button type="submit" { "Take the digest" }
            }
        }
        section.card aria-labelledby="export-title" {
            h2 #export-title { "Export" }
            p { "JSON lines, one recorded event each, as " code { "rapport export" } " writes them; check a file offline with " code { "rapport verify --file" } "." }
            p { a.button href="/auditor/export" download { "Download the whole log" } }
            form.inline method="get" action="/auditor/export" {
                label { "One account " input type="text" name="account" placeholder="account id" value=(query.account.clone().unwrap_or_default()) required; }
                button type="submit" { "Download" }
            }
        }
    })
}

/// `GET /auditor/export`: the export as a download, written line by line as the log is read.
pub(crate) async fn export_handler(
    State(console): State<Console>,
    viewer: Viewer,
    Query(query): Query<AuditQuery>,
) -> Result<Response, Refusal> {
    let mut ledger = pb::ledger_client::LedgerClient::new(viewer.api(&console)?).max_decoding_message_size(64 << 20);
    let account = query.account.filter(|a| !a.is_empty());
    let events = match &account {
        Some(account_id) => {
            let request = pb::ReadStreamRequest { account_id: account_id.clone(), ..Default::default() };
            ledger.read_stream(viewer.request(request)).await
        }
        None => ledger.read_all(viewer.request(pb::ReadAllRequest::default())).await,
    }
    .map_err(|s| viewer.refused(s))?
    .into_inner();
    let lines = events.map(|recorded| {
        let line =
            ExportLine::from_recorded(recorded.map_err(std::io::Error::other)?).map_err(std::io::Error::other)?;
        let mut text = serde_json::to_vec(&line).map_err(std::io::Error::other)?;
        text.push(b'\n');
        Ok::<_, std::io::Error>(text)
    });
    let name = match &account {
        Some(account_id) => {
            format!("rapport-{}.jsonl", account_id.replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "_"))
        }
        None => "rapport-log.jsonl".to_owned(),
    };
    Ok((
        [
            (header::CONTENT_TYPE, "application/jsonl; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")),
        ],
        Body::from_stream(lines),
    )
        .into_response())
}
