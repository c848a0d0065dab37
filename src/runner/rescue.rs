//! The rescuer: settles deployments whose process is gone. A process that
//! dies (killed, powered off), freezes or loses the database stops renewing
//! its leases; another process, or the same one after a restart, takes each
//! such deployment over under a new attempt (which fences out the old
//! process's writes), ends the step it left running on each host, and posts
//! `error`. Interrupted deployments are never run again: steps need not be
//! idempotent.

use tokio::task::JoinSet;

use super::{Handles, remote};
use crate::store::{Deployment, DeploymentId, NewStatus, Owner, State, StatusState};

/// After a restart, on a store this process uses alone.
pub const RESTARTED: &str = "Interrupted: ferry restarted during the deployment";

/// Takes over what needs settling (with `all`, every running deployment:
/// at the start of a process that uses the store alone) and settles it;
/// how many it settled.
pub async fn rescue(shared: &Handles, owner: &Owner, all: bool) -> crate::store::Result<usize> {
    let taken = shared.store.rescue(owner, all).await?;
    let n = taken.len();
    for d in taken {
        settle(shared, d).await?;
    }
    Ok(n)
}

/// Ends the steps `d` left on its hosts, then gives it its final `error`.
async fn settle(shared: &Handles, d: Deployment) -> crate::store::Result<()> {
    end_leftover_steps(shared, d.id).await;
    let why = if shared.store.replicas() {
        let who = d.owner.as_deref().unwrap_or("unknown");
        format!("Interrupted: replica {who} stopped during the deployment")
    } else {
        RESTARTED.to_string()
    };
    let status =
        NewStatus::new(StatusState::Error, why.clone()).with_log_url(shared.logs.url(d.id));
    if let Ok(w) = shared.logs.writer(d.id).await {
        w.ferry(None, None, &format!("error: {why}"));
        if let Err(e) = w.flush().await {
            tracing::warn!(deployment = %d.id, "the end of deployment {}'s log is not stored yet: {e}", d.id);
        }
    }
    // false: yet another process took it over meanwhile, and settles it.
    if shared
        .store
        .finish(d.claim(), State::Error, &status)
        .await?
    {
        tracing::warn!(deployment = %d.id, repository = %d.repository, environment = %d.environment,
            "deployment {} of {} to {}: {why}", d.id, d.repository, d.environment);
        shared.outbox.notify_one();
    }
    Ok(())
}

/// Kills, on each host, the step a dead ferry left running there, so
/// that it cannot overlap the environment's next deployment.
async fn end_leftover_steps(shared: &Handles, id: DeploymentId) {
    let steps = match shared.store.remote_steps(id).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(deployment = %id, error = %e, "cannot read the steps deployment {id} left running: {e}");
            return;
        }
    };
    let log = shared.logs.writer(id).await.ok();
    let note = |host: &str, text: &str| {
        if let Some(w) = &log {
            w.ferry(Some(host), None, text);
        }
    };
    let connector = shared.connector.get();
    let mut kills = JoinSet::new();
    for step in steps {
        let spec = step.host;
        let group = remote::RemoteGroup {
            pgid: u32::try_from(step.pgid).unwrap_or(0),
            boot_id: step.boot_id,
        };
        let (Ok(host), Some(command)) = (
            crate::config::Host::parse(&spec),
            remote::kill_leftover_command(&group),
        ) else {
            // No boot id to check against: leave the process alone.
            let _ = shared.store.forget_step(id, &spec).await;
            continue;
        };
        let connector = connector.clone();
        kills.spawn(async move {
            let outcome = match connector.connect(&host).await {
                Ok((session, _)) => {
                    let ran = session.raw_command(&command).status().await;
                    let _ = session.close().await;
                    match ran {
                        Ok(_) => {
                            format!("ended the interrupted step (process group {})", group.pgid)
                        }
                        Err(e) => format!(
                            "cannot end the interrupted step (process group {}): {e}",
                            group.pgid
                        ),
                    }
                }
                Err(cause) => format!(
                    "cannot end the interrupted step (process group {}): {cause}",
                    group.pgid
                ),
            };
            (host.to_string(), spec, outcome)
        });
    }
    while let Some(done) = kills.join_next().await {
        if let Ok((host, spec, outcome)) = done {
            tracing::warn!(deployment = %id, host = %host, "deployment {id} on {host}: {outcome}");
            note(&host, &outcome);
            let _ = shared.store.forget_step(id, &spec).await;
        }
    }
}
