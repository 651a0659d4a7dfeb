//! The analyst's page: every build with its position and digest, a rebuild under a new rule
//! set with its progress live, and two builds side by side — the accounts that move most and
//! the factors that moved them.

use std::convert::Infallible;
use std::time::Duration;

use axum::Form;
use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use futures::Stream;
use maud::{Markup, html};
use rapport_projection::ScoreKind;
use rapport_proto::v1 as pb;
use serde::Deserialize;

use super::{Console, Refusal, Viewer, instant, page};

/// The page's query: the two builds to compare.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Pair {
    a: Option<String>,
    b: Option<String>,
}

/// The rebuild form.
#[derive(Debug, Deserialize)]
pub(crate) struct RebuildForm {
    /// The rule file's text.
    rule_set: String,
    /// Present when ticked.
    from_scratch: Option<String>,
}

pub(crate) async fn page_handler(
    State(console): State<Console>,
    viewer: Viewer,
    Query(pair): Query<Pair>,
) -> Result<Response, Refusal> {
    let api = viewer.api(&console)?;
    let builds = pb::projections_client::ProjectionsClient::new(api.clone())
        .list_rule_sets(viewer.request(pb::ListRuleSetsRequest {}))
        .await
        .map_err(|s| viewer.refused(s))?
        .into_inner()
        .rule_sets;
    let chosen = |name: &Option<String>| name.as_deref().filter(|n| !n.is_empty()).map(str::to_owned);
    let compared = match (chosen(&pair.a), chosen(&pair.b)) {
        (Some(a), Some(b)) => {
            let request = pb::CompareRequest { rule_set_a: a.clone(), rule_set_b: b.clone(), limit: 20 };
            let compared = pb::projections_client::ProjectionsClient::new(api)
                .compare(viewer.request(request))
                .await
                .map_err(|s| viewer.refused(s))?
                .into_inner();
            Some((a, b, compared))
        }
        _ => None,
    };
    Ok(page("Analyst", &viewer, render(&builds, &pair, compared.as_ref())).into_response())
}

/// `POST /analyst/rebuild`: starts a build, then shows the page where its progress runs. The
/// build goes on in the server whether or not anyone watches its stream.
pub(crate) async fn rebuild_handler(
    State(console): State<Console>,
    viewer: Viewer,
    Form(form): Form<RebuildForm>,
) -> Result<Response, Refusal> {
    let request = pb::RebuildRequest { rule_set: form.rule_set, from_scratch: form.from_scratch.is_some() };
    let mut progress = pb::projections_client::ProjectionsClient::new(viewer.api(&console)?)
        .rebuild(viewer.request(request))
        .await
        .map_err(|s| viewer.refused(s))?
        .into_inner();
    let first = progress.message().await.map_err(|s| viewer.refused(s))?;
    let id = first.map(|p| p.rule_set).unwrap_or_default();
    Ok(Redirect::to(&format!("/analyst?started={}#builds", super::login::encode(&id))).into_response())
}

/// `GET /analyst/progress`: every build's position and the log's, twice a second, as server-
/// sent events of JSON (`[{"id", "position", "log_position"}]`) for the page's script.
pub(crate) async fn progress_handler(
    State(console): State<Console>,
    viewer: Viewer,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Refusal> {
    let api = viewer.api(&console)?;
    // Checked once before streaming, so that a refusal is a page and not a silent stream.
    let mut client = pb::projections_client::ProjectionsClient::new(api);
    client.list_rule_sets(viewer.request(pb::ListRuleSetsRequest {})).await.map_err(|s| viewer.refused(s))?;
    let ticks = futures::stream::unfold((client, viewer), |(mut client, viewer)| async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let builds = client.list_rule_sets(viewer.request(pb::ListRuleSetsRequest {})).await.ok()?.into_inner();
        let positions: Vec<serde_json::Value> = builds
            .rule_sets
            .iter()
            .map(|b| serde_json::json!({ "id": b.id, "position": b.position, "log_position": b.log_position }))
            .collect();
        let event = Event::default().event("progress").data(serde_json::Value::Array(positions).to_string());
        Some((Ok(event), (client, viewer)))
    });
    // The stream would never end by itself; ended when the server closes, it lets a graceful
    // shutdown finish while someone watches the page.
    let inside = console.inside.clone();
    let ticks = futures::StreamExt::take_until(ticks, async move { inside.closed().await });
    Ok(Sse::new(ticks).keep_alive(KeepAlive::default()))
}

fn render(builds: &[pb::RuleSetInfo], pair: &Pair, compared: Option<&(String, String, pb::CompareResponse)>) -> Markup {
    let active_rules = builds.iter().find(|b| b.active).map_or("", |b| b.rules.as_str());
    let selected = |side: &Option<String>, id: &str| side.as_deref() == Some(id);
    html! {
        h1 { "Analyst" }
        section.card #builds aria-labelledby="builds-title" {
            h2 #builds-title { "Builds" }
            div.table-wrap { table.builds {
                thead { tr { th scope="col" { "Rule set" } th scope="col" { "Served" } th scope="col" { "Progress" }
                    th.num scope="col" { "Accounts" } th scope="col" { "Digest" } } }
                tbody { @for b in builds {
                    tr data-rule-set=(b.id) {
                        th scope="row" { (b.id) }
                        td { @if b.active { strong { "served" } } @else { "–" } }
                        td {
                            progress data-progress=(b.id) max=(b.log_position.max(1)) value=(b.position) {}
                            " " span data-progress-text=(b.id) { (b.position) " of " (b.log_position) }
                        }
                        td.num { (b.accounts) }
                        td { code.hash title=(b.digest) { (b.digest.get(..16).unwrap_or(&b.digest)) } }
                    }
                } }
            } }
            p.hint { "Progress updates live with JavaScript; without it, reload the page." }
        }
        section.card aria-labelledby="compare-title" {
            h2 #compare-title { "Compare two builds" }
            form.inline method="get" action="/analyst#compare-title" {
                label { "A " select name="a" { @for b in builds { option value=(b.id) selected[selected(&pair.a, &b.id)] { (b.id) } } } }
                label { "B " select name="b" { @for b in builds { option value=(b.id) selected[selected(&pair.b, &b.id) || (pair.b.is_none() && !b.active)] { (b.id) } } } }
                button type="submit" { "Compare" }
            }
            @if let Some((a, b, compared)) = compared { (comparison(a, b, compared)) }
        }
        section.card aria-labelledby="rebuild-title" {
            h2 #rebuild-title { "Rebuild under a rule set" }
            p { "Paste or edit a rule file (the served one is filled in); give it a new name or version. The build runs beside the served one, which keeps serving." }
            form.rebuild method="post" action="/analyst/rebuild" {
                label for="rule_set" { "Rule file" }
                textarea #rule_set name="rule_set" rows="14" spellcheck="false" { (active_rules) }
                label.check { input type="checkbox" name="from_scratch"; " throw away an existing build of it and start again" }
                button type="submit" { "Start the rebuild" }
            }
        }
        script src="/assets/console.js" defer {}
    }
}

fn comparison(a: &str, b: &str, compared: &pb::CompareResponse) -> Markup {
    let value = |s: &Option<pb::Scores>, kind| {
        s.as_ref().and_then(|s| rapport_wire::scores::score_of(s, kind)).map_or(0.0, |v| v.value)
    };
    html! {
        p { "The accounts whose scores differ most, both scored at " (instant(compared.as_of.as_ref())) "." }
        @if compared.accounts.is_empty() { p.ok #comparison { "No account's scores differ between " (a) " and " (b) "." } }
        @else {
            div.table-wrap { table #comparison {
                thead { tr { th scope="col" { "Account" } th.num scope="col" { "Largest change" }
                    th.num scope="col" { "Health " (a) } th.num scope="col" { "Health " (b) } th scope="col" { "Factors that moved" } } }
                tbody { @for m in &compared.accounts {
                    tr data-account=(m.account_id) {
                        th scope="row" { a href=(format!("/accounts/{}", super::login::encode(&m.account_id))) { (m.account_id) } }
                        td.num { (format!("{:.2}", m.largest_change)) }
                        td.num { (format!("{:.1}", value(&m.a, ScoreKind::Health))) }
                        td.num { (format!("{:.1}", value(&m.b, ScoreKind::Health))) }
                        td { ul.plain { @for f in &m.factors {
                            li { (f.score.replace('_', " ")) " · " code { (f.factor) } ": " (format!("{:.2} → {:.2}", f.a, f.b)) }
                        } } }
                    }
                } }
            } }
        }
    }
}
