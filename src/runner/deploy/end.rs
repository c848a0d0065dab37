//! How a deployment's end is told and kept: its final status, the log's
//! last line, the journal and the counter, and the end recorded in the
//! store however long a storage hiccup lasts.

use std::time::Duration;

use super::{Handles, Outcome};
use crate::store::{Deployment, NewStatus, State};

/// The final status: a success carries the target's environment URL and
/// whether GitHub makes the older deployments inactive.
pub(super) fn final_status(
    shared: &Handles,
    deployment: &Deployment,
    outcome: &Outcome,
    description: &str,
    log_url: &str,
) -> NewStatus {
    let state = outcome.state();
    let mut status = NewStatus::new(state.final_status(), description).with_log_url(log_url);
    if let Outcome::Success { .. } = outcome {
        let config = shared.config.get();
        let target = config.target_for(
            &deployment.repository,
            &deployment.environment,
            &deployment.task,
        );
        status.environment_url = target.and_then(|t| t.environment_url.clone());
        status.auto_inactive = target.map(|t| t.auto_inactive);
    }
    status
}

/// The end, where people look: the log's last line (flushed before the
/// final status says the log is complete), the journal, the counter.
pub(super) async fn say(
    shared: &Handles,
    deployment: &Deployment,
    outcome: &Outcome,
    description: &str,
) {
    let (id, state) = (deployment.id, outcome.state());
    let teardown = deployment.teardown_of.is_some();
    if let Ok(w) = shared.logs.writer(id).await {
        if teardown && state != State::Success {
            w.ferry(None, None, "no status was changed on GitHub");
        }
        w.ferry(None, None, &format!("{state}: {description}"));
        if let Err(e) = w.flush().await {
            tracing::warn!(deployment = %id, "the end of deployment {id}'s log is not stored yet: {e}");
        }
    }
    // docs/runbook.md: what an operator must fix (a host that
    // cannot be reached, its key, a lost connection) at warning priority;
    // what people chose (a cancel) and what the code did (a step's exit) at
    // info.
    let line = format!(
        "deployment {id} of {} to {}: {state}: {description}",
        deployment.repository, deployment.environment
    );
    if outcome.needs_an_operator() {
        tracing::warn!(deployment = %id, repository = %deployment.repository,
            environment = %deployment.environment, state = %state, "{line}");
    } else {
        tracing::info!(deployment = %id, repository = %deployment.repository,
            environment = %deployment.environment, state = %state, "{line}");
    }
    let counter = if teardown {
        crate::metrics::TEARDOWNS
    } else {
        crate::metrics::DEPLOYMENTS
    };
    metrics::counter!(counter, "state" => state.as_str()).increment(1);
}

/// Records the final state. It must not be lost to a passing storage
/// hiccup: a deployment left "running" would only be settled at the next
/// restart, so a full disk or a database restart (up to about ten
/// minutes) is waited out.
pub(super) async fn record(
    shared: &Handles,
    deployment: &Deployment,
    state: State,
    status: &NewStatus,
    description: &str,
) {
    let id = deployment.id;
    let pause = crate::backoff::Backoff {
        first: Duration::from_millis(200),
        max: Duration::from_secs(5),
        jitter: false,
    };
    for attempt in 1.. {
        let recorded = if deployment.teardown_of.is_some() {
            let ended = shared
                .store
                .finish_teardown(deployment.claim(), state, description)
                .await;
            if let Ok(Some(gone)) = &ended
                && !gone.is_empty()
            {
                tracing::info!(deployment = %id, "teardown {id} of {} {}: {} now inactive",
                    deployment.repository, deployment.environment, crate::format::plural(gone.len(), "deployment"));
            }
            ended.map(|e| e.is_some())
        } else {
            shared.store.finish(deployment.claim(), state, status).await
        };
        match recorded {
            Ok(true) => break,
            Ok(false) => {
                lost(shared, deployment).await;
                break;
            }
            // What outlasts the retries is settled at the next start.
            Err(e) if attempt < 120 => {
                tracing::warn!(deployment = %id, error = %e, "cannot record the final state of deployment {id}, retrying: {e}");
                tokio::time::sleep(pause.after(attempt - 1)).await;
            }
            Err(e) => {
                tracing::error!(deployment = %id, error = %e, "cannot record the final state of deployment {id}; it is settled at the next start: {e}");
                break;
            }
        }
    }
}

/// Another process settled the deployment: say so where people look, and
/// write nothing more about it.
pub(super) async fn lost(shared: &Handles, d: &Deployment) {
    let text = "this ferry lost its claim on the deployment: another replica settled it, \
                and this one reports nothing more";
    if let Ok(w) = shared.logs.writer(d.id).await {
        w.ferry(None, None, text);
    }
    tracing::warn!(deployment = %d.id, repository = %d.repository, environment = %d.environment,
        "deployment {} of {} to {}: {text}", d.id, d.repository, d.environment);
}
