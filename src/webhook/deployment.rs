//! A created deployment, from a webhook or from the reconciler: stored
//! in its environment's turn (with its `queued` status) or, for
//! `deploy:lock` / `deploy:unlock`, acted on at once.

use axum::http::StatusCode;

use super::{Answer, Intake};
use crate::store::{Accepted, DeliveryKey, LockTask, NewDeployment, NewStatus, StatusState};

const EVENT: &str = "deployment";

/// Stores (or, for a lock task, does) what `deployment` asks, exactly as
/// docs/reference.md says a delivery is; the answer GitHub would get.
pub async fn take(
    app: &Intake,
    key: &DeliveryKey,
    deployment: NewDeployment,
    reason: &str,
) -> Answer {
    let delivery_id = key.delivery_id.as_str();
    let config = app.config.get();
    let mut deployment = deployment;
    deployment.repository = config.repository_as_configured(&deployment.repository);
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
        tracing::info!(
            repository = %deployment.repository, environment = %deployment.environment,
            task = %deployment.task, deployment = %deployment.id, delivery = delivery_id,
            "no target owns deployment {} ({} to {}, task {}); left for other agents",
            deployment.id, deployment.repository, deployment.environment, deployment.task
        );
        return Answer::ignored(
            EVENT,
            format!(
                "ignored: no target owns {} {} (task {})",
                deployment.repository, deployment.environment, deployment.task
            ),
        );
    };
    let hosts = target.hosts.len();
    // Its steps wait for the sha's required checks (docs/configuration.md, "Required checks").
    deployment.gated = !target.require_checks.is_empty();
    let description = match app
        .locks
        .waiting(
            &app.store,
            &config.freezes,
            &deployment.repository,
            &deployment.environment,
        )
        .await
    {
        Some(waiting) => waiting,
        None if !target.require_checks.is_empty() => {
            crate::wording::checks_waiting(&deployment.sha, &target.require_checks)
        }
        None => crate::wording::queued(&deployment.sha, &deployment.environment, hosts),
    };
    let queued = NewStatus::new(StatusState::Queued, description);
    let result = within_deadline(
        app.store
            .accept(key, &deployment, &queued, target.supersede),
    )
    .await;
    match result {
        Ok(Accepted::New { superseded }) => accepted(app, &deployment, &superseded, delivery_id),
        Ok(duplicate) => duplicate_answer(&duplicate, &deployment),
        Err(e) => {
            tracing::error!(error = %e, deployment = %deployment.id, delivery = delivery_id, "cannot store deployment {}: {e}", deployment.id);
            Answer::unavailable(EVENT)
        }
    }
}

/// One journal line per delivery, naming what it superseded (a burst is
/// a line per deployment, not two), and the answer with the log link:
/// GitHub's Recent Deliveries and a delivery sent by hand
/// (scripts/try-deployment) lead straight to it.
fn accepted(
    app: &Intake,
    deployment: &NewDeployment,
    superseded: &[crate::store::DeploymentId],
    delivery_id: &str,
) -> Answer {
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
    app.accepted(
        EVENT,
        format!(
            "accepted deployment {}; its log: {}",
            deployment.id,
            app.logs.url(deployment.id)
        ),
    )
}

fn duplicate_answer(accepted: &Accepted, deployment: &NewDeployment) -> Answer {
    let text = match accepted {
        Accepted::DuplicateDelivery => "duplicate delivery: already accepted".to_string(),
        _ => format!(
            "duplicate: deployment {} was already accepted",
            deployment.id
        ),
    };
    Answer::new(StatusCode::OK, EVENT, "duplicate", text)
}

/// How long a delivery may wait for the store before its `503`: GitHub
/// gives up after 10 s, and docs/reference.md promises the answer within 2 s so
/// that its delivery log shows why. A write that commits after this still
/// counts (the deployment runs; a redelivery is then a duplicate).
pub const STORE_DEADLINE: std::time::Duration = std::time::Duration::from_millis(1800);

/// `call` within [`STORE_DEADLINE`], with what became of it reported to
/// `/healthz`.
pub(super) async fn within_deadline<T>(
    call: impl std::future::Future<Output = crate::store::Result<T>>,
) -> crate::store::Result<T> {
    if let Some(why) = crate::health::probe_problem() {
        return Err(crate::store::Error::Unavailable(why));
    }
    let result = match tokio::time::timeout(STORE_DEADLINE, call).await {
        Ok(r) => r,
        Err(_) => Err(crate::store::Error::Unavailable(format!(
            "no answer within {}",
            crate::format::duration(STORE_DEADLINE)
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

/// `deploy:lock` / `deploy:unlock`: done at once, not in the
/// environment's turn, so that a lock holds the deployment waiting there.
async fn lock_task(
    app: &Intake,
    key: &DeliveryKey,
    deployment: &NewDeployment,
    task: LockTask,
    reason: &str,
) -> Answer {
    let log_url = app.logs.url(deployment.id);
    // An unlock lifts the freeze windows holding the environment too, each
    // until it ends (docs/configuration.md, "Freeze windows").
    let lifted = match task {
        LockTask::Unlock => match lift_freezes(app, deployment).await {
            Ok(lifted) => lifted,
            Err(e) => {
                tracing::error!(error = %e, deployment = %deployment.id, "cannot lift the freeze for deployment {}: {e}", deployment.id);
                return Answer::unavailable(EVENT);
            }
        },
        LockTask::Lock => reason.to_string(),
    };
    let result = within_deadline(
        app.store
            .accept_lock_task(key, deployment, task, &lifted, &log_url),
    )
    .await;
    let (state, description) = match result {
        Ok((_, Some(done))) => done,
        Ok((duplicate, None)) => return duplicate_answer(&duplicate, deployment),
        Err(e) => {
            tracing::error!(error = %e, deployment = %deployment.id, "cannot store deployment {}: {e}", deployment.id);
            return Answer::unavailable(EVENT);
        }
    };
    app.locks.forget();
    if let Ok(log) = app.logs.writer(deployment.id).await {
        log.ferry(None, None, &format!("{}: {description}", deployment.task));
        let _ = log.flush().await;
    }
    tracing::info!(deployment = %deployment.id, repository = %deployment.repository,
        environment = %deployment.environment, "deployment {} ({}) of {} to {}: {state}: {description}",
        deployment.id, deployment.task, deployment.repository, deployment.environment);
    app.accepted(
        EVENT,
        format!("deployment {}: {state}: {description}", deployment.id),
    )
}

/// Lifts every freeze window holding the deployment's environment now, for
/// its creator; what it lifted, in words ("freeze weekend until Mon 08:00
/// CET"), empty when nothing.
async fn lift_freezes(app: &Intake, d: &NewDeployment) -> crate::store::Result<String> {
    let config = app.config.get();
    let lifted = within_deadline(crate::admission::freeze::lift(
        &app.store,
        &config.freezes,
        &d.repository,
        &d.environment,
        &d.creator,
    ))
    .await?;
    if !lifted.is_empty() {
        app.locks.forget();
    }
    let what: Vec<String> = lifted
        .into_iter()
        .map(|l| format!("freeze {} until {}", l.freeze, l.until))
        .collect();
    Ok(what.join(", "))
}
