//! `POST /webhook`: verify, parse, store, and only then answer.

mod event;
mod signature;

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::sync::Notify;

use crate::config::Config;
use crate::current::Current;
use crate::format::short_sha;
use crate::metrics;
use crate::store::{Accepted, DeliveryKey, NewStatus, SharedStore, StatusState};
use event::DeploymentEvent;
pub use signature::SignedDelivery;

/// What `POST /webhook` needs.
#[derive(Clone)]
pub struct Intake {
    pub store: SharedStore,
    pub config: Current<Config>,
    /// Rung when a deployment was queued, for the runner and the outbox.
    pub runner: Arc<Notify>,
    pub outbox: Arc<Notify>,
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn answer(code: StatusCode, text: impl Into<String>) -> Response {
    let mut text = text.into();
    text.push('\n');
    (code, text).into_response()
}

pub async fn receive(State(app): State<Intake>, delivery: SignedDelivery) -> Response {
    let headers = &delivery.headers;
    let Some(event) = header(headers, "x-github-event") else {
        metrics::delivery("", "bad_request");
        return answer(StatusCode::BAD_REQUEST, "missing X-GitHub-Event header");
    };
    let content_type = header(headers, "content-type");
    let delivery_id = header(headers, "x-github-delivery").unwrap_or_default();
    if event != "deployment" {
        if let Err(e) = event::check_json(content_type, &delivery.body) {
            metrics::delivery(event, "bad_request");
            return answer(StatusCode::BAD_REQUEST, e);
        }
        metrics::delivery(event, "ignored");
        return match event {
            "ping" => answer(StatusCode::OK, "pong"),
            other => {
                tracing::debug!(event = other, delivery = delivery_id, "ignored event");
                answer(
                    StatusCode::OK,
                    format!("ignored: ferry does not act on {other:?} events"),
                )
            }
        };
    }
    let parsed: DeploymentEvent = match event::decode(content_type, &delivery.body) {
        Ok(e) => e,
        Err(e) => {
            metrics::delivery(event, "bad_request");
            return answer(StatusCode::BAD_REQUEST, e);
        }
    };
    if !parsed.is_created() {
        metrics::delivery(event, "ignored");
        return answer(
            StatusCode::OK,
            "ignored: only action \"created\" starts a deployment",
        );
    }
    let deployment = parsed.into_new();
    let config = app.config.get();
    let Some(target) = config.target_for(
        &deployment.repository,
        &deployment.environment,
        &deployment.task,
    ) else {
        metrics::delivery(event, "ignored");
        tracing::info!(
            repository = %deployment.repository, environment = %deployment.environment,
            task = %deployment.task, deployment = %deployment.id, delivery = delivery_id,
            "no target owns deployment {} ({} to {}, task {}); left for other agents",
            deployment.id, deployment.repository, deployment.environment, deployment.task
        );
        return answer(
            StatusCode::OK,
            format!(
                "ignored: no target owns {} {} (task {})",
                deployment.repository, deployment.environment, deployment.task
            ),
        );
    };
    let hosts = target.hosts.len();
    let queued = NewStatus::new(
        StatusState::Queued,
        format!(
            "Queued {} for {} on {hosts} host{}",
            short_sha(&deployment.sha),
            deployment.environment,
            if hosts == 1 { "" } else { "s" }
        ),
    );
    let key = DeliveryKey {
        hook_id: header(headers, "x-github-hook-id")
            .unwrap_or_default()
            .to_string(),
        delivery_id: delivery_id.to_string(),
    };
    let result = app
        .store
        .accept(&key, &deployment, &queued, target.supersede)
        .await;
    metrics::delivery(
        event,
        match &result {
            Ok(Accepted::New { .. }) => "accepted",
            Ok(_) => "duplicate",
            Err(_) => "unavailable",
        },
    );
    match result {
        Ok(Accepted::New { superseded }) => {
            tracing::info!(
                deployment = %deployment.id, repository = %deployment.repository,
                environment = %deployment.environment, delivery = delivery_id,
                "deployment {} accepted: {} to {}", deployment.id, deployment.repository, deployment.environment
            );
            for old in superseded {
                tracing::info!(deployment = %old, by = %deployment.id, "deployment {old} superseded by {} while waiting", deployment.id);
            }
            app.runner.notify_one();
            app.outbox.notify_one();
            answer(
                StatusCode::ACCEPTED,
                format!("accepted deployment {}", deployment.id),
            )
        }
        Ok(Accepted::DuplicateDelivery) => {
            answer(StatusCode::OK, "duplicate delivery: already accepted")
        }
        Ok(Accepted::DuplicateDeployment) => answer(
            StatusCode::OK,
            format!(
                "duplicate: deployment {} was already accepted",
                deployment.id
            ),
        ),
        Err(e) => {
            tracing::error!(error = %e, deployment = %deployment.id, delivery = delivery_id, "cannot store deployment {}: {e}", deployment.id);
            answer(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage unavailable; GitHub may redeliver later",
            )
        }
    }
}
