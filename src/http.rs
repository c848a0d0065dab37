//! The HTTP surface: every route ferry answers.

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

use crate::logs::page::Pages;
use crate::webhook::Intake;

/// GitHub caps webhook payloads at 25 MiB.
pub const BODY_LIMIT: usize = 25 * 1024 * 1024;
/// A connection that has not sent a whole request head by then is closed
/// (docs/reference.md, "HTTP"). hyper's timer also runs while a kept-alive connection
/// waits for its next request, so an idle connection goes after this long
/// too, well within the 60 s docs/reference.md promises.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// A body (a webhook's) that has not arrived by then ends its request.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Between two accept errors logged (EMFILE repeats as fast as we accept).
const ACCEPT_ERROR_LOG_EVERY: Duration = Duration::from_secs(10);

/// Where a listener's `/metrics` is.
#[derive(Clone)]
pub enum MetricsAt {
    Here(PrometheusHandle),
    /// On `server.metrics_listen`.
    Elsewhere,
    /// No recorder is installed (in-process tests, benchmarks).
    Off,
}

async fn metrics(State(metrics): State<MetricsAt>) -> Response {
    match &metrics {
        MetricsAt::Here(handle) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            handle.render(),
        )
            .into_response(),
        MetricsAt::Elsewhere => (
            StatusCode::NOT_FOUND,
            "not here: /metrics is served on server.metrics_listen\n",
        )
            .into_response(),
        MetricsAt::Off => (StatusCode::NOT_FOUND, "metrics are not enabled\n").into_response(),
    }
}

/// `server.metrics_listen`'s routes: `/metrics`, and `/healthz` for the
/// scraper's own checks.
pub fn metrics_router(handle: PrometheusHandle) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .with_state(MetricsAt::Here(handle))
}

/// `200` while serving; `503` with the reason while the store cannot take
/// writes (docs/reference.md, "HTTP").
async fn healthz() -> Response {
    match crate::health::problem() {
        None => "ok\n".into_response(),
        Some(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{}\n", crate::wording::storage_unavailable(&why)),
        )
            .into_response(),
    }
}

/// Each route gets the handles of its part and nothing more.
pub fn router(intake: Intake, pages: Pages, metrics_handle: MetricsAt) -> Router {
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
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .with_state(metrics_handle)
        .merge(webhook)
        .merge(logs)
}

/// Serves `router` on `listener` until `shutdown`, then lets requests in
/// flight finish for up to `drain`. Each connection is HTTP/1.1 with
/// [`HEADER_TIMEOUT`]: thousands of clients that open a connection and
/// send half a head (or nothing) cost a socket each until then, never a
/// delivery's answer. Accept errors (EMFILE: out of file descriptors) are
/// logged and waited out, never fatal.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()>,
    drain: Duration,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .keep_alive(true);
    tokio::pin!(shutdown);
    let mut last_error_logged: Option<Instant> = None;
    let mut errors_unlogged = 0u64;
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                errors_unlogged += 1;
                if last_error_logged.is_none_or(|t| t.elapsed() >= ACCEPT_ERROR_LOG_EVERY) {
                    tracing::error!(error = %e, count = errors_unlogged,
                        "cannot accept connections ({errors_unlogged} refused since the last report): {e} \
                         (out of file descriptors? raise LimitNOFILE)");
                    last_error_logged = Some(Instant::now());
                    errors_unlogged = 0;
                }
                // The backlog keeps the waiting clients; try again shortly.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            // A client that goes away or times out ends its connection.
            let _ = conn.await;
        });
    }
    drop(listener);
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::debug!("connections still open after the drain: closing them");
    }
}
