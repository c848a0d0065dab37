//! The HTTP surface: every route ferry answers.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

use crate::daemon::Shared;

/// GitHub caps webhook payloads at 25 MiB.
pub const BODY_LIMIT: usize = 25 * 1024 * 1024;

pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/webhook", post(crate::webhook::receive))
        .route("/deployments/{id}/log", get(crate::logs::page::log))
        .route("/healthz", get(|| async { "ok\n" }))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}
