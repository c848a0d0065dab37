//! `GET /deployments/{id}/log?token=T`.

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::daemon::Shared;
use crate::store::{Deployment, DeploymentId};

#[derive(Deserialize)]
pub struct LogQuery {
    token: Option<String>,
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}

pub async fn log(
    State(app): State<Shared>,
    Path(id): Path<String>,
    Query(q): Query<LogQuery>,
) -> Response {
    // A wrong id and a wrong token look the same: nothing to probe.
    let Ok(id) = id.parse::<DeploymentId>() else {
        return not_found();
    };
    if !q
        .token
        .as_deref()
        .is_some_and(|t| app.logs.token_valid(id, t))
    {
        return not_found();
    }
    let deployment = match app.store.get(id).await {
        Ok(Some(d)) => d,
        Ok(None) => return not_found(),
        Err(e) => {
            tracing::error!(error = %e, deployment = %id, "cannot read deployment");
            return (StatusCode::SERVICE_UNAVAILABLE, "storage unavailable\n").into_response();
        }
    };
    let lines = match app.logs.read(id) {
        Ok(lines) => lines,
        Err(e) => {
            tracing::error!(error = %e, deployment = %id, "cannot read deployment log");
            return (StatusCode::INTERNAL_SERVER_ERROR, "cannot read the log\n").into_response();
        }
    };
    let mut body = header_text(&deployment);
    match lines {
        Some(lines) => body.push_str(&super::text(&lines)),
        None if deployment.state.is_final() && deployment.started_at.is_some() => body.push_str(
            "(the log of this deployment is gone: removed after storage.log_retention)\n",
        ),
        None => body.push_str("(no output yet)\n"),
    }
    (
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            // The token is in the URL: never hand it to another site.
            (header::REFERRER_POLICY, "no-referrer"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

pub fn header_text(d: &Deployment) -> String {
    let mut s = format!(
        "deployment {} of {} to {} (task {})\nref {} at {}, by {}\nstate: {}",
        d.id, d.repository, d.environment, d.task, d.git_ref, d.sha, d.creator, d.state
    );
    if !d.description.is_empty() {
        s.push_str(" - ");
        s.push_str(&d.description);
    }
    s.push_str("\n\n");
    s
}
