//! The HTTP surface: every route ferry answers.

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;

use crate::logs::page::Pages;
use crate::webhook::Intake;

/// GitHub caps webhook payloads at 25 MiB.
pub const BODY_LIMIT: usize = 25 * 1024 * 1024;

/// `metrics` is None where no recorder is installed (in-process tests,
/// benchmarks).
async fn metrics(State(metrics): State<Option<PrometheusHandle>>) -> Response {
    match &metrics {
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

/// Each route gets the handles of its part and nothing more.
pub fn router(intake: Intake, pages: Pages, metrics_handle: Option<PrometheusHandle>) -> Router {
    let webhook = Router::new()
        .route("/webhook", post(crate::webhook::receive))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(intake);
    let logs = Router::new()
        .route("/deployments/{id}/log", get(crate::logs::page::log))
        .route("/deployments/{id}/events", get(crate::logs::page::events))
        .route("/assets/{name}", get(crate::logs::page::asset))
        .with_state(pages);
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .with_state(metrics_handle)
        .merge(webhook)
        .merge(logs)
}
