//! The operations endpoints, open to anyone who reaches the listener (as gRPC health is):
//! `/healthz` (the process is up), `/readyz` (the active projection has caught up and the log
//! is writable) and `/metrics` (the Prometheus text format).

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use rapport_server::Readiness;

use crate::pages::Console;

pub(crate) fn routes() -> Router<Console> {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz)).route("/metrics", get(metrics))
}

async fn healthz() -> &'static str {
    "up\n"
}

async fn readyz(State(console): State<Console>) -> impl IntoResponse {
    let (status, text) = match console.inside.readiness() {
        Readiness::Ready => (StatusCode::OK, "ready\n".to_owned()),
        Readiness::Starting => {
            (StatusCode::SERVICE_UNAVAILABLE, "not ready: starting, the projection catches up with the log\n".into())
        }
        Readiness::NotWritable => {
            (StatusCode::SERVICE_UNAVAILABLE, "not ready: the log's last sync failed; appends are refused\n".into())
        }
        Readiness::Behind { position, durable } => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: the projection is at position {position} of {durable}\n"),
        ),
        Readiness::Closing => (StatusCode::SERVICE_UNAVAILABLE, "not ready: shutting down\n".into()),
    };
    (status, text)
}

async fn metrics(State(console): State<Console>) -> impl IntoResponse {
    let inside = console.inside.clone();
    // Reading the builds may touch the store: off the async workers.
    let text = tokio::task::spawn_blocking(move || inside.metrics()).await.unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text)
}
