//! Signing in with a token, and out.

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::Console;
use crate::layout;

#[derive(Deserialize)]
pub(crate) struct Next {
    next: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct SignIn {
    token: String,
    next: Option<String>,
}

/// Where to go after signing in: a path of this console, never another site.
fn destination(next: Option<&str>) -> &str {
    match next {
        Some(path) if path.starts_with('/') && !path.starts_with("//") && !path.contains('\\') => path,
        _ => "/",
    }
}

/// `text` made safe for a query string.
pub(crate) fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn form(next: &str, problem: Option<&str>) -> Markup {
    let body = html! {
        h1 { "Sign in" }
        p { "This server requires a token. Paste yours (from " code { "rapport token new" } ", given to you by whoever runs Rapport)." }
        @if let Some(problem) = problem { p.refusal role="alert" { (problem) } }
        form.login method="post" action="/login" {
            input type="hidden" name="next" value=(next);
            label for="token" { "Token" }
            input #token type="password" name="token" autocomplete="current-password" required autofocus;
            button type="submit" { "Sign in" }
        }
    };
    layout::page("Sign in", None, body)
}

pub(crate) async fn form_page(State(console): State<Console>, Query(next): Query<Next>) -> Response {
    let next = destination(next.next.as_deref()).to_owned();
    if console.inside.tokens().is_none() {
        return Redirect::to(&next).into_response();
    }
    form(&next, None).into_response()
}

pub(crate) async fn sign_in(State(console): State<Console>, Form(signing): Form<SignIn>) -> Response {
    let next = destination(signing.next.as_deref()).to_owned();
    let Some(tokens) = console.inside.tokens() else { return Redirect::to(&next).into_response() };
    match console.sessions.sign_in(tokens, &signing.token) {
        Some(id) => ([(header::SET_COOKIE, console.sessions.cookie(&id))], Redirect::to(&next)).into_response(),
        None => (
            StatusCode::UNAUTHORIZED,
            form(&next, Some("That token is not known to this server. Check that you pasted all of it.")),
        )
            .into_response(),
    }
}

pub(crate) async fn sign_out(State(console): State<Console>, headers: HeaderMap) -> Response {
    console.sessions.sign_out(headers.get(header::COOKIE).and_then(|v| v.to_str().ok()));
    ([(header::SET_COOKIE, console.sessions.expired_cookie())], Redirect::to("/login")).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_in_leads_only_to_the_consoles_own_pages() {
        assert_eq!(destination(Some("/accounts/acme?as_of=2026-01-01")), "/accounts/acme?as_of=2026-01-01");
        for elsewhere in ["//evil.example", "https://evil.example", "/\\evil.example", "evil"] {
            assert_eq!(destination(Some(elsewhere)), "/", "{elsewhere}");
        }
        assert_eq!(destination(None), "/");
        assert_eq!(encode("/a b?c=d&e"), "/a%20b%3Fc%3Dd%26e");
    }
}
