//! One account: the picture now or as of a date (known or occurred), the relationship map,
//! the scores with their factors, and their history over the last 24 months, each point an
//! as-of replay through the same `GetAccount` as any client's.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use rapport_domain::{Intimacy, Support};
use rapport_projection::ScoreKind;
use rapport_proto::{v1 as pb, wkt};
use serde::Deserialize;

use super::{Console, Refusal, Viewer, instant, page};
use crate::chart::{self, Series};

/// The page's query: the as-of picker.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Moment {
    /// `YYYY-MM-DD`: the account as it was at the end of that day (UTC); empty for now.
    as_of: Option<String>,
    /// `known` (what we knew then, the default) or `occurred` (what was true then).
    kind: Option<String>,
}

impl Moment {
    fn occurred(&self) -> bool {
        self.kind.as_deref() == Some("occurred")
    }

    fn as_of_kind(&self) -> pb::AsOf {
        if self.occurred() { pb::AsOf::Occurred } else { pb::AsOf::Known }
    }

    /// The end of the picked day, or `None` for now; a date that is not one is refused.
    fn instant(&self, viewer: &Viewer) -> Result<Option<jiff::Timestamp>, Refusal> {
        let Some(text) = self.as_of.as_deref().filter(|t| !t.is_empty()) else { return Ok(None) };
        let date: jiff::civil::Date = text.parse().map_err(|_| {
            viewer.refused(tonic::Status::invalid_argument(format!(
                "as_of {text:?} is not a date; pick one as YYYY-MM-DD, or clear it to see the account now"
            )))
        })?;
        let end = date
            .at(23, 59, 59, 999_999_999)
            .to_zoned(jiff::tz::TimeZone::UTC)
            .map(|z| z.timestamp())
            .map_err(|e| viewer.refused(tonic::Status::invalid_argument(format!("as_of {text:?}: {e}"))))?;
        Ok(Some(end))
    }
}

pub(crate) fn to_wire(ts: jiff::Timestamp) -> wkt::Timestamp {
    wkt::Timestamp { seconds: ts.as_second(), nanos: ts.subsec_nanosecond() }
}

pub(crate) async fn page_handler(
    State(console): State<Console>,
    viewer: Viewer,
    Path(account_id): Path<String>,
    Query(moment): Query<Moment>,
) -> Result<Response, Refusal> {
    let api = viewer.api(&console)?;
    let mut accounts = pb::accounts_client::AccountsClient::new(api);
    let as_of = moment.instant(&viewer)?;
    let request = pb::GetAccountRequest {
        account_id: account_id.clone(),
        as_of: as_of.map(to_wire),
        // The kind goes only with an instant; the server refuses it alone.
        as_of_kind: if as_of.is_some() { moment.as_of_kind() as i32 } else { 0 },
        ..Default::default()
    };
    let view = accounts.get_account(viewer.request(request)).await.map_err(|s| viewer.refused(s))?.into_inner();
    let history = history(&mut accounts, &viewer, &view).await;
    let title = view.name.clone();
    Ok(page(&title, &viewer, render(&view, &moment, &history)).into_response())
}

/// The scores at monthly points back from the view's instant, oldest first: the month's label
/// and the scores, for each month the account existed.
async fn history(
    accounts: &mut pb::accounts_client::AccountsClient<rapport_server::Api>,
    viewer: &Viewer,
    view: &pb::AccountView,
) -> Vec<(String, pb::Scores)> {
    let Some(end) = view.scores.as_ref().and_then(|s| s.as_of.as_ref()) else { return Vec::new() };
    let Ok(end) = jiff::Timestamp::new(end.seconds, end.nanos) else { return Vec::new() };
    let opened = view.opened_at.as_ref().map_or(0, |t| t.seconds);
    let mut points = Vec::with_capacity(24);
    for months_back in (0..24).rev() {
        let Ok(at) = end.to_zoned(jiff::tz::TimeZone::UTC).checked_sub(jiff::Span::new().months(months_back)) else {
            continue;
        };
        if at.timestamp().as_second() < opened {
            continue;
        }
        // What was true at each point: a trend is of what happened, whenever it was recorded.
        let request = pb::GetAccountRequest {
            account_id: view.account_id.clone(),
            as_of: Some(to_wire(at.timestamp())),
            as_of_kind: pb::AsOf::Occurred as i32,
            ..Default::default()
        };
        // A month whose replay fails is left out of the plot rather than failing the page.
        if let Ok(past) = accounts.get_account(viewer.request(request)).await
            && let Some(scores) = past.into_inner().scores
        {
            points.push((at.strftime("%Y-%m").to_string(), scores));
        }
    }
    points
}

fn render(view: &pb::AccountView, moment: &Moment, history: &[(String, pb::Scores)]) -> Markup {
    let base = format!("/accounts/{}", super::login::encode(&view.account_id));
    let scores = view.scores.clone().unwrap_or_default();
    html! {
        h1 { (view.name) }
        p.lead {
            code { (view.account_id) } " · " (view.industry) " · tier " (or_dash(&view.tier)) " · owned by " strong { (view.owner) }
            " · version " (view.version) " at position " (view.position)
        }
        nav.sub aria-label="This account" {
            a href=(format!("{base}/timeline")) { "Timeline" }
            a href=(format!("{base}/handover")) { "Handover report" }
            a href=(format!("/gifts?account={}", super::login::encode(&view.account_id))) { "Gift register" }
        }
        form.inline.as-of method="get" action=(base) aria-label="As of" {
            label { "As of " input type="date" name="as_of" value=(moment.as_of.clone().unwrap_or_default()); }
            fieldset.choice {
                legend { "Which question" }
                label { input type="radio" name="kind" value="known" checked[!moment.occurred()]; " what we knew then" }
                label { input type="radio" name="kind" value="occurred" checked[moment.occurred()]; " what was true then" }
            }
            button type="submit" { "Show" }
            @if moment.as_of.as_deref().is_some_and(|t| !t.is_empty()) { a href=(base) { "Back to now" } }
        }
        @if moment.as_of.as_deref().is_some_and(|t| !t.is_empty()) {
            p.as-of-note role="status" data-as-of=(instant(scores.as_of.as_ref())) {
                "As it was at " strong { (instant(scores.as_of.as_ref())) } ": "
                (if moment.occurred() { "events that occurred by then, corrections recorded since included" } else { "what the ledger had recorded by then" })
                "; scored at that instant."
            }
        }
        div.grid {
            section.card aria-labelledby="scores" {
                h2 #scores { "Scores" }
                p { "Under " strong { (view.rule_set) } ", as of " (instant(scores.as_of.as_ref())) }
                dl.facts {
                    @for kind in crate::pages::portfolio::columns() {
                        dt { (kind.label()) }
                        dd data-score=(kind.short()) { (format!("{:.1}", rapport_wire::scores::score_of(&scores, kind).map_or(0.0, |s| s.value))) }
                    }
                    dt { "Value class" } dd { (or_dash(&scores.value_class)) }
                    dt { "Health at the start of the trend" } dd { (format!("{:.1}", scores.health_before)) }
                }
                @if !scores.at_risk.is_empty() {
                    p.risk role="alert" { "⚠ At risk: " (scores.at_risk.join("; ")) }
                }
            }
            section.card aria-labelledby="picture" {
                h2 #picture { "Owner, team and tier" }
                h3 { "Owners" }
                ol.plain {
                    @for tenure in &view.owner_history {
                        li { strong { (tenure.owner) } " from " (instant(tenure.from.as_ref()))
                            @if tenure.to.is_some() { " to " (instant(tenure.to.as_ref())) } @else { " (current)" }
                            " — " (tenure.reason) }
                    }
                }
                h3 { "Team" }
                @if view.team_members.is_empty() { p { "No one beyond the owner." } }
                ul.plain {
                    @for member in &view.team_members {
                        li { (member.member) " — " (rapport_wire::team_role_name(member.role)) ", since " (instant(member.since.as_ref())) }
                    }
                }
                h3 { "Tiers" }
                ol.plain {
                    @for tier in &view.tier_history {
                        li { strong { (tier.tier) } " since " (instant(tier.since.as_ref())) " — " (tier.reason) }
                    }
                }
            }
        }
        section.card aria-labelledby="map" {
            h2 #map { "Relationship map" }
            (chart::relationship_map(view))
        }
        section.card aria-labelledby="contacts" {
            h2 #contacts { "Contacts" }
            (contacts_table(&view.contacts))
            @if !view.former_contacts.is_empty() {
                h3 { "Left the customer" }
                (contacts_table(&view.former_contacts))
            }
        }
        section.card aria-labelledby="history" {
            h2 #history { "Score history" }
            p { "Monthly for the 24 months up to " (instant(scores.as_of.as_ref())) ", each point the account replayed as it was true that day: its events by when they occurred, corrections included." }
            (history_chart(history))
        }
        section aria-labelledby="factors" {
            h2 #factors { "What made each score" }
            @for kind in crate::pages::portfolio::columns() {
                @if let Some(score) = rapport_wire::scores::score_of(&scores, kind) {
                    details.card open[kind == ScoreKind::Health] data-factors=(kind.short()) {
                        summary { strong { (kind.label()) } " " (format!("{:.1}", score.value)) }
                        @if score.factors.is_empty() { p { "No factors." } } @else {
                            div.table-wrap { table.factors {
                                thead { tr { th scope="col" { "Factor" } th scope="col" { "Why" } th.num scope="col" { "Points" } } }
                                tbody { @for f in &score.factors { tr { td { code { (f.key) } } td { (f.detail) } td.num { (format!("{:.2}", f.points)) } } } }
                            } }
                        }
                    }
                }
            }
        }
    }
}

fn contacts_table(contacts: &[pb::ContactView]) -> Markup {
    html! {
        div.table-wrap { table {
            thead { tr {
                th scope="col" { "Name" } th scope="col" { "Title" } th scope="col" { "Role" } th scope="col" { "Department" }
                th scope="col" { "Key" } th scope="col" { "Stance" } th scope="col" { "Closeness" } th scope="col" { "Last touch" }
            } }
            tbody {
                @for c in contacts {
                    @let (class, sign) = chart::stance(c.support);
                    tr data-contact=(c.contact_id) {
                        th scope="row" { (c.name) br; small { (c.contact_id) } }
                        td { (c.title) }
                        td { (rapport_wire::contact_role_name(c.role)) }
                        td { (c.department) }
                        td { @if c.key { "★ key" } @else { "–" } }
                        td { span class=(format!("badge {class}")) { (sign) } " " (Support::new(c.support).map_or("", |s| s.name())) }
                        td { (c.intimacy) " " (Intimacy::new(c.intimacy).map_or("", |i| i.name())) }
                        td { @if c.last_touched_at.is_some() { (instant(c.last_touched_at.as_ref())) " by " (c.last_touched_by) " (" (c.last_touch_kind.replace('_', " ")) ")" } @else { "never" } }
                    }
                }
            }
        } }
    }
}

fn history_chart(history: &[(String, pb::Scores)]) -> Markup {
    if history.is_empty() {
        return html! { p { "No history to show yet." } };
    }
    let months: Vec<String> = history.iter().map(|(m, _)| m.clone()).collect();
    let value = |kind, s: &pb::Scores| rapport_wire::scores::score_of(s, kind).map_or(0.0, |v| v.value);
    let kinds = [
        (ScoreKind::Health, "s-health"),
        (ScoreKind::KeyRelationship, "s-key"),
        (ScoreKind::GeneralRelationship, "s-general"),
        (ScoreKind::OrganisationalRelationship, "s-organisational"),
        (ScoreKind::PersonalisationRisk, "s-risk"),
    ];
    let series: Vec<Series<'_>> = kinds
        .iter()
        .map(|&(kind, class)| Series {
            label: kind.label(),
            class,
            points: history.iter().map(|(_, s)| value(kind, s)).collect(),
        })
        .collect();
    html! {
        (chart::score_history(&months, &series))
        details {
            summary { "The figures" }
            div.table-wrap { table.history-figures {
                thead { tr { th scope="col" { "Month" } @for (kind, _) in kinds { th.num scope="col" { (kind.label()) } } } }
                tbody { @for (month, s) in history { tr data-month=(month) { th scope="row" { (month) } @for (kind, _) in kinds { td.num { (format!("{:.1}", value(kind, s))) } } } } }
            } }
        }
    }
}

fn or_dash(text: &str) -> &str {
    if text.is_empty() { "–" } else { text }
}
