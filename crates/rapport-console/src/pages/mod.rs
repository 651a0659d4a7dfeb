//! The console's pages: one file each, and what they share: the console's state, who is
//! looking ([`Viewer`]), calling the server's services as them, and a refusal as a page.

mod account;
mod analyst;
mod auditor;
mod gifts;
mod handover;
mod login;
mod portfolio;
mod timeline;

use std::sync::Arc;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{Markup, html};
use rapport_server::{Api, Inside, Role};
use tonic::Code;

use crate::layout;
use crate::session::Sessions;

/// The console's state, shared by every page.
#[derive(Clone)]
pub(crate) struct Console {
    pub inside: Inside,
    pub sessions: Arc<Sessions>,
}

pub(crate) fn routes() -> Router<Console> {
    Router::new()
        .route("/", get(portfolio::page_handler))
        .route("/accounts/{account_id}", get(account::page_handler))
        .route("/accounts/{account_id}/timeline", get(timeline::page_handler))
        .route("/accounts/{account_id}/verify", post(timeline::verify_handler))
        .route("/accounts/{account_id}/handover", get(handover::page_handler))
        .route("/gifts", get(gifts::page_handler))
        .route("/analyst", get(analyst::page_handler))
        .route("/analyst/rebuild", post(analyst::rebuild_handler))
        .route("/analyst/progress", get(analyst::progress_handler))
        .route("/auditor", get(auditor::page_handler))
        .route("/auditor/verify", post(auditor::verify_handler))
        .route("/auditor/export", get(auditor::export_handler))
        .route("/login", get(login::form_page).post(login::sign_in))
        .route("/logout", post(login::sign_out))
        .route("/assets/console.css", get(layout::stylesheet))
        .route("/assets/console.js", get(layout::script))
}

/// Who is looking at a page: a signed-in person, or anyone when the server has no tokens.
#[derive(Debug, Clone)]
pub(crate) struct Viewer {
    /// Sent on as the bearer token of every call; `None` when access is open.
    token: Option<String>,
    /// Who signed in, and their role; `None` when access is open.
    pub signed_in: Option<(String, Role)>,
}

impl FromRequestParts<Console> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, console: &Console) -> Result<Viewer, Response> {
        if console.inside.tokens().is_none() {
            return Ok(Viewer { token: None, signed_in: None });
        }
        let cookies = parts.headers.get(header::COOKIE).and_then(|v| v.to_str().ok());
        match console.sessions.find(cookies) {
            Some(session) => {
                Ok(Viewer { token: Some(session.token), signed_in: Some((session.identity, session.role)) })
            }
            None => {
                let next = parts.uri.path_and_query().map_or("/", |p| p.as_str());
                Err(Redirect::to(&format!("/login?next={}", login::encode(next))).into_response())
            }
        }
    }
}

impl Viewer {
    /// A request to the server as this viewer.
    pub(crate) fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Some(token) = &self.token
            && let Ok(value) = format!("Bearer {token}").parse()
        {
            request.metadata_mut().insert("authorization", value);
        }
        request
    }
}

impl Viewer {
    /// The page that says why the server refused this viewer.
    pub(crate) fn refused(&self, status: tonic::Status) -> Refusal {
        let (code, title) = match status.code() {
            Code::PermissionDenied => (StatusCode::FORBIDDEN, "Not for your role"),
            Code::Unauthenticated => (StatusCode::UNAUTHORIZED, "Sign in again"),
            Code::NotFound => (StatusCode::NOT_FOUND, "Not found"),
            Code::InvalidArgument | Code::OutOfRange | Code::FailedPrecondition => {
                (StatusCode::BAD_REQUEST, "Cannot show that")
            }
            Code::Unavailable | Code::ResourceExhausted => (StatusCode::SERVICE_UNAVAILABLE, "Busy"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong"),
        };
        Refusal { status: code, title, message: status.message().to_owned(), viewer: self.clone() }
    }

    /// The server's API, or a page saying the server is still starting.
    pub(crate) fn api(&self, console: &Console) -> Result<Api, Refusal> {
        console.inside.api().ok_or_else(|| Refusal {
            status: StatusCode::SERVICE_UNAVAILABLE,
            title: "Starting",
            message: "The server is catching up with its log; this page is shown once it has. Try again in a moment."
                .into(),
            viewer: self.clone(),
        })
    }
}

/// A page that could not be shown, and why, as the server said it.
#[derive(Debug)]
pub(crate) struct Refusal {
    status: StatusCode,
    title: &'static str,
    message: String,
    viewer: Viewer,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body = html! {
            h1 { (self.title) }
            p.refusal role="alert" { (self.message) }
            p { a href="/" { "Back to the portfolio" } }
        };
        (self.status, page(self.title, &self.viewer, body)).into_response()
    }
}

/// An instant as people read it: `2026-03-02 10:00 UTC`; `–` when there is none.
pub(crate) fn instant(ts: Option<&rapport_proto::wkt::Timestamp>) -> String {
    ts.and_then(|ts| jiff::Timestamp::new(ts.seconds, ts.nanos).ok())
        .map_or_else(|| "–".to_owned(), |ts| ts.strftime("%Y-%m-%d %H:%M UTC").to_string())
}

/// A page for `viewer`: the layout around `body`.
pub(crate) fn page(title: &str, viewer: &Viewer, body: Markup) -> Markup {
    layout::page(title, Some(viewer), body)
}
