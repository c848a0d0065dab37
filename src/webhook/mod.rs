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
use crate::logs::Logs;
use crate::metrics;
use crate::store::{
    Accepted, DeliveryKey, EnvLock, Hold, LockTask, NewDeployment, NewStatus, SharedStore,
    StatusState,
};
use crate::store::{TeardownCause, TeardownQueued};
pub use event::RawDeployment;
use event::{DeploymentEvent, PullRequestEvent};
pub use signature::SignedDelivery;

/// What `POST /webhook` needs.
#[derive(Clone)]
pub struct Intake {
    pub store: SharedStore,
    pub config: Current<Config>,
    /// Links to and lines in the log of a `deploy:lock` deployment.
    pub logs: Logs,
    pub locks: LockCache,
    /// Rung when a deployment was queued, for the runner and the outbox.
    pub runner: Arc<Notify>,
    pub outbox: Arc<Notify>,
}

/// The environment locks and holds, as last read, for the `queued`
/// description of a deployment arriving in a locked or held environment.
/// Whether it waits is the store's to decide at claim time; this only
/// words the status, so a read a quarter of a second old is good enough
/// and spares a burst a query per delivery.
#[derive(Clone, Default)]
pub struct LockCache(Arc<std::sync::Mutex<Option<LocksRead>>>);

/// The locks and holds, and when they were read.
type LocksRead = (std::time::Instant, Vec<EnvLock>, Vec<Hold>);

impl LockCache {
    const FRESH: std::time::Duration = std::time::Duration::from_millis(250);

    /// What a deployment arriving in the environment waits for, if
    /// anything: a lock first, then a step ferry could not end.
    async fn waiting(
        &self,
        store: &SharedStore,
        repository: &str,
        environment: &str,
    ) -> Option<String> {
        let find = |locks: &[EnvLock], holds: &[Hold]| {
            EnvLock::find(locks, repository, environment)
                .map(EnvLock::waiting)
                .or_else(|| {
                    holds
                        .iter()
                        .find(|h| h.repository == repository && h.environment == environment)
                        .map(Hold::waiting)
                })
        };
        // Every delivery passes here: answer from the cache without
        // copying it.
        if let Some((at, locks, holds)) = &*self.0.lock().unwrap_or_else(|p| p.into_inner())
            && at.elapsed() < Self::FRESH
        {
            return find(locks, holds);
        }
        // Only wording: a store that does not answer at once leaves the
        // delivery's own write to report it, within its deadline.
        let quick = std::time::Duration::from_millis(300);
        let locks = tokio::time::timeout(quick, store.locks())
            .await
            .ok()?
            .ok()?;
        let holds = tokio::time::timeout(quick, store.holds())
            .await
            .ok()
            .and_then(|h| h.ok())
            .unwrap_or_default();
        let found = find(&locks, &holds);
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((std::time::Instant::now(), locks, holds));
        found
    }

    fn forget(&self) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
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
    if event == "pull_request" {
        return pull_request(&app, content_type, &delivery.body).await;
    }
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
    let key = DeliveryKey {
        hook_id: header(headers, "x-github-hook-id")
            .unwrap_or_default()
            .to_string(),
        delivery_id: delivery_id.to_string(),
    };
    let reason = parsed.description().to_string();
    take(&app, &key, parsed.into_new(), &reason).await
}

/// A created deployment, from a webhook or found by the reconciler
/// (`github::reconcile`): stored (or acted on, for a lock task) exactly as
/// the SPEC says a delivery is, and the answer GitHub would get.
pub async fn take(
    app: &Intake,
    key: &DeliveryKey,
    deployment: NewDeployment,
    reason: &str,
) -> Response {
    let event = "deployment";
    let delivery_id = key.delivery_id.as_str();
    let config = app.config.get();
    if let Some(task) = LockTask::of(&deployment.task)
        && config.owns_environment(&deployment.repository, &deployment.environment)
    {
        return lock_task(app, key, &deployment, task, reason).await;
    }
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
    let description = match app
        .locks
        .waiting(&app.store, &deployment.repository, &deployment.environment)
        .await
    {
        Some(waiting) => waiting,
        None => format!(
            "Queued {} for {} on {hosts} host{}",
            short_sha(&deployment.sha),
            deployment.environment,
            if hosts == 1 { "" } else { "s" }
        ),
    };
    let queued = NewStatus::new(StatusState::Queued, description);
    let result = within_deadline(
        app.store
            .accept(key, &deployment, &queued, target.supersede),
    )
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
            // One line per delivery, naming what it superseded: a burst
            // is a line per deployment in the journal, not two.
            let ids: Vec<String> = superseded.iter().map(|d| d.to_string()).collect();
            let ids = ids.join(", ");
            let superseding = if ids.is_empty() {
                String::new()
            } else {
                format!("; superseded {ids} while waiting")
            };
            tracing::info!(
                deployment = %deployment.id, repository = %deployment.repository,
                environment = %deployment.environment, delivery = delivery_id,
                superseded = %ids,
                "deployment {} accepted: {} to {}{superseding}", deployment.id, deployment.repository, deployment.environment
            );
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
            unavailable()
        }
    }
}

/// A closed pull request tears down the review apps of its branch: `202`
/// once a teardown is queued (durably), `200` when there was nothing to do.
async fn pull_request(app: &Intake, content_type: Option<&str>, body: &[u8]) -> Response {
    const EVENT: &str = "pull_request";
    let parsed: PullRequestEvent = match event::decode(content_type, body) {
        Ok(e) => e,
        Err(e) => {
            metrics::delivery(EVENT, "bad_request");
            return answer(StatusCode::BAD_REQUEST, e);
        }
    };
    let repository = parsed.repository.full_name;
    if parsed.action != "closed" {
        metrics::delivery(EVENT, "ignored");
        return answer(
            StatusCode::OK,
            format!(
                "ignored: only action \"closed\" tears down (got {:?})",
                parsed.action
            ),
        );
    }
    let config = app.config.get();
    if !config.targets.iter().any(|t| t.repository == repository) {
        metrics::delivery(EVENT, "ignored");
        return answer(
            StatusCode::OK,
            format!("ignored: no target owns {repository}"),
        );
    }
    let cause = TeardownCause::PullRequest {
        number: parsed.number,
        head_ref: parsed.pull_request.head.git_ref,
        head_sha: parsed.pull_request.head.sha,
    };
    let done = match within_deadline(crate::teardown::pull_request_closed(
        &app.store,
        &config,
        &repository,
        &cause,
    ))
    .await
    {
        Ok(done) => done,
        Err(e) => {
            metrics::delivery(EVENT, "unavailable");
            tracing::error!(error = %e, "cannot queue the teardowns of pull request #{} of {repository}: {e}", parsed.number);
            return unavailable();
        }
    };
    let queued: Vec<String> = done
        .iter()
        .filter_map(|q| match q {
            TeardownQueued::Queued { teardown, .. } => Some(format!(
                "{} (teardown {})",
                teardown.environment, teardown.id
            )),
            _ => None,
        })
        .collect();
    if queued.is_empty() {
        metrics::delivery(EVENT, "ignored");
        return answer(
            StatusCode::OK,
            format!(
                "nothing to tear down for pull request #{}: no live review app of its branch",
                parsed.number
            ),
        );
    }
    metrics::delivery(EVENT, "accepted");
    app.runner.notify_one();
    app.outbox.notify_one();
    answer(
        StatusCode::ACCEPTED,
        format!("queued teardown of {}", queued.join(", ")),
    )
}

/// How long a delivery may wait for the store before its `503`: GitHub
/// gives up after 10 s, and the SPEC promises the answer within 2 s so
/// that its delivery log shows why. A write that commits after this still
/// counts (the deployment runs; a redelivery is then a duplicate).
pub const STORE_DEADLINE: std::time::Duration = std::time::Duration::from_millis(1800);

/// `call` within [`STORE_DEADLINE`], with what became of it reported to
/// `/healthz`.
async fn within_deadline<T>(
    call: impl std::future::Future<Output = crate::store::Result<T>>,
) -> crate::store::Result<T> {
    if let Some(why) = crate::health::probe_problem() {
        return Err(crate::store::Error::Database(why));
    }
    let result = match tokio::time::timeout(STORE_DEADLINE, call).await {
        Ok(r) => r,
        Err(_) => Err(crate::store::Error::Database(format!(
            "no answer within {} ms",
            STORE_DEADLINE.as_millis()
        ))),
    };
    match &result {
        Ok(_) => crate::health::recovered(crate::health::Part::Intake),
        Err(e) => crate::health::failed(
            crate::health::Part::Intake,
            format!("cannot store deliveries: {e}"),
        ),
    }
    result
}

fn unavailable() -> Response {
    answer(
        StatusCode::SERVICE_UNAVAILABLE,
        "storage unavailable; GitHub may redeliver later",
    )
}

/// `deploy:lock` / `deploy:unlock`: done at once, not in the
/// environment's turn, so that a lock holds the deployment waiting there.
async fn lock_task(
    app: &Intake,
    key: &DeliveryKey,
    deployment: &NewDeployment,
    task: LockTask,
    reason: &str,
) -> Response {
    let log_url = app.logs.url(deployment.id);
    let result = within_deadline(
        app.store
            .accept_lock_task(key, deployment, task, reason, &log_url),
    )
    .await;
    let (state, description) = match result {
        Ok((_, Some(done))) => done,
        Ok((Accepted::DuplicateDelivery, _)) => {
            metrics::delivery("deployment", "duplicate");
            return answer(StatusCode::OK, "duplicate delivery: already accepted");
        }
        Ok(_) => {
            metrics::delivery("deployment", "duplicate");
            return answer(
                StatusCode::OK,
                format!(
                    "duplicate: deployment {} was already accepted",
                    deployment.id
                ),
            );
        }
        Err(e) => {
            metrics::delivery("deployment", "unavailable");
            tracing::error!(error = %e, deployment = %deployment.id, "cannot store deployment {}: {e}", deployment.id);
            return unavailable();
        }
    };
    metrics::delivery("deployment", "accepted");
    app.locks.forget();
    if let Ok(log) = app.logs.writer(deployment.id).await {
        log.ferry(None, None, &format!("{}: {description}", deployment.task));
        let _ = log.flush().await;
    }
    tracing::info!(deployment = %deployment.id, repository = %deployment.repository,
        environment = %deployment.environment, "deployment {} ({}) of {} to {}: {state}: {description}",
        deployment.id, deployment.task, deployment.repository, deployment.environment);
    app.runner.notify_one();
    app.outbox.notify_one();
    answer(
        StatusCode::ACCEPTED,
        format!("deployment {}: {state}: {description}", deployment.id),
    )
}
