//! Review apps: when an environment is torn down. Three causes queue a
//! teardown (a job in the environment's turn, run by the runner like a
//! deployment): a closed pull request (the webhook), `teardown_after`
//! passing (swept here, from the store, so it survives restarts), and
//! `ferry teardown`. The store decides, in one transaction per
//! environment, whether the cause still applies and whether the
//! environment was torn down already.

use crate::config::Config;
use crate::store::{self, SharedStore, TeardownCause, TeardownQueued, Timestamp};

/// How often ended transient environments are checked against their
/// target's `teardown_after`.
pub const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// Queues a teardown, and says so in the journal.
pub async fn queue(
    store: &SharedStore,
    repository: &str,
    environment: &str,
    cause: &TeardownCause,
) -> store::Result<TeardownQueued> {
    let queued = store.queue_teardown(repository, environment, cause).await?;
    if let TeardownQueued::Queued {
        teardown,
        superseded,
    } = &queued
    {
        tracing::info!(deployment = %teardown.id, repository, environment,
            "teardown {} of {repository} {environment} queued: {}", teardown.id, teardown.description);
        for old in superseded {
            tracing::info!(deployment = %old, by = %teardown.id, "deployment {old} superseded by teardown {} while waiting", teardown.id);
        }
    }
    Ok(queued)
}

/// The teardowns a closed pull request queued: of the environments of
/// `repository` that a target owns whose latest deployment, a transient
/// one, is of the pull request's head branch or sha.
pub async fn pull_request_closed(
    store: &SharedStore,
    config: &Config,
    repository: &str,
    cause: &TeardownCause,
) -> store::Result<Vec<TeardownQueued>> {
    let mut done = Vec::new();
    for latest in store.latest_deployments(repository).await? {
        let owned = config
            .target_for(&latest.repository, &latest.environment, &latest.task)
            .is_some();
        if owned && cause.applies_to(&latest) {
            done.push(queue(store, repository, &latest.environment, cause).await?);
        }
    }
    Ok(done)
}

/// Queues a teardown of every transient environment whose target has a
/// `teardown_after` that passed since its latest deployment ended; returns
/// how many were queued.
pub async fn sweep_idle(store: &SharedStore, config: &Config) -> store::Result<usize> {
    if config.targets.iter().all(|t| t.teardown_after.is_none()) {
        return Ok(0);
    }
    let now = Timestamp::now();
    let mut queued = 0;
    for latest in store.ended_transient().await? {
        let Some(after) = config
            .target_for(&latest.repository, &latest.environment, &latest.task)
            .and_then(|t| t.teardown_after)
        else {
            continue;
        };
        let ended_before = now - after;
        let cause = TeardownCause::Idle { ended_before };
        if !cause.applies_to(&latest) {
            continue;
        }
        if let TeardownQueued::Queued { .. } =
            queue(store, &latest.repository, &latest.environment, &cause).await?
        {
            queued += 1;
        }
    }
    Ok(queued)
}
