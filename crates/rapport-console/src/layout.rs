//! The page around every page: the header with where to go and who is signed in (or that
//! access is open), and the stylesheet, compiled into the binary.

use axum::http::header;
use axum::response::IntoResponse;
use maud::{DOCTYPE, Markup, html};

use crate::pages::Viewer;

/// The stylesheet: small, our own, readable from a phone's width to 1,280 px and beyond.
const STYLESHEET: &str = include_str!("../assets/console.css");

/// The one script: live build progress on the analyst's page.
const SCRIPT: &str = include_str!("../assets/console.js");

pub(crate) async fn stylesheet() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "max-age=3600")], STYLESHEET)
}

pub(crate) async fn script() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "max-age=3600")], SCRIPT)
}

/// A whole page: `viewer` is who is looking (`None` on the login page).
pub(crate) fn page(title: &str, viewer: Option<&Viewer>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Rapport" }
                link rel="stylesheet" href="/assets/console.css";
            }
            body {
                a.skip href="#main" { "Skip to the content" }
                header.top {
                    a.brand href="/" { "Rapport" }
                    @if let Some(viewer) = viewer {
                        nav aria-label="Main" {
                            a href="/" { "Portfolio" }
                            a href="/gifts" { "Gift register" }
                            a href="/analyst" { "Analyst" }
                            a href="/auditor" { "Auditor" }
                        }
                        @match &viewer.signed_in {
                            Some((identity, role)) => {
                                form.who method="post" action="/logout" {
                                    span { (identity) " (" (role) ")" }
                                    button type="submit" { "Sign out" }
                                }
                            }
                            None => {}
                        }
                    }
                }
                @if let Some(Viewer { signed_in: None, .. }) = viewer {
                    p.open-access role="note" {
                        strong { "Access is open." }
                        " This server has no tokens: anyone who can reach it sees everything here. Start it with --tokens to require sign-in."
                    }
                }
                main #main { (body) }
            }
        }
    }
}
