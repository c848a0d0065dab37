//! The HTTP surface: every route ferry answers.

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use axum::routing::{get, post};

use crate::daemon::Shared;

/// GitHub caps webhook payloads at 25 MiB.
pub const BODY_LIMIT: usize = 25 * 1024 * 1024;

async fn metrics(State(shared): State<Shared>) -> Response {
    match &shared.metrics {
        Some(handle) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            handle.render(),
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "metrics are not enabled\n").into_response(),
    }
}

pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/webhook", post(crate::webhook::receive))
        .route("/deployments/{id}/log", get(crate::logs::page::log))
        .route("/deployments/{id}/events", get(crate::logs::page::events))
        .route("/assets/{name}", get(crate::logs::page::asset))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}
