//! The rescuer: settles deployments whose process is gone. A process that
//! dies (killed, powered off), freezes or loses the database stops renewing
//! its leases; another process, or the same one after a restart, takes each
//! such deployment over under a new attempt (which fences out the old
//! process's writes), ends the step it left running on each host, and posts
//! `error`. Interrupted deployments are never run again: steps need not be
//! idempotent.

use tokio::task::JoinSet;

use super::Connector;
use super::{Handles, remote};
use crate::store::{Deployment, DeploymentId, NewStatus, Owner, RemoteStep, State, StatusState};

/// After a restart, on a store this process uses alone.
pub const RESTARTED: &str = crate::wording::INTERRUPTED_BY_RESTART;

/// Takes over what needs settling (with `all`, every running deployment:
/// at the start of a process that uses the store alone) and settles it;
/// how many it settled.
pub async fn rescue(shared: &Handles, owner: &Owner, all: bool) -> crate::store::Result<usize> {
    let taken = shared.store.rescue(owner, all).await?;
    Ok(settle_all(shared, taken).await)
}

/// Settles deployments taken over, side by side: one host that does not
/// answer must not hold up the others. How many were settled.
pub async fn settle_all(shared: &Handles, taken: Vec<Deployment>) -> usize {
    let mut settling = JoinSet::new();
    for d in taken {
        let shared = shared.clone();
        settling.spawn(async move {
            let id = d.id;
            match settle(&shared, d).await {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(deployment = %id, error = %e, "cannot settle deployment {id} yet: {e}");
                    false
                }
            }
        });
    }
    let mut settled = 0;
    while let Some(done) = settling.join_next().await {
        settled += usize::from(done.unwrap_or(false));
    }
    settled
}

/// Ends the steps `d` left on its hosts, then gives it its final `error`.
async fn settle(shared: &Handles, d: Deployment) -> crate::store::Result<()> {
    end_leftover_steps(shared, d.id).await;
    let why = if shared.store.replicas() {
        let who = d.owner.as_deref().unwrap_or("unknown");
        crate::wording::interrupted_replica(who)
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
        let counter = if d.id.is_teardown() {
            crate::metrics::TEARDOWNS
        } else {
            crate::metrics::DEPLOYMENTS
        };
        metrics::counter!(counter, "state" => State::Error.as_str()).increment(1);
        shared.outbox.ring();
    }
    Ok(())
}

/// Kills, on each host, the step a dead ferry left running there, so
/// that it cannot overlap the environment's next deployment. A step on a
/// host that does not answer stays recorded: it holds the environment
/// until [`end_held_steps`] ends it or an operator releases it.
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
        let (shared, connector) = (shared.clone(), connector.clone());
        kills.spawn(async move {
            let host = step.host_name();
            let StepEnded { ended, outcome } = end_step(&shared, &connector, id, &step).await;
            (host, ended, outcome)
        });
    }
    while let Some(done) = kills.join_next().await {
        if let Ok((host, ended, outcome)) = done {
            tracing::warn!(deployment = %id, host = %host, "deployment {id} on {host}: {outcome}");
            note(&host, &outcome);
            if !ended {
                let hold = crate::wording::hold(id, &host);
                note(
                    &host,
                    &format!(
                        "its environment is held: {hold}; ferry keeps trying (`ferry unlock` releases it)"
                    ),
                );
            }
        }
    }
    if let Some(w) = log
        && let Err(e) = w.flush().await
    {
        tracing::debug!(deployment = %id, "log not stored yet: {e}");
    }
}

/// What came of trying to end a step left on a host.
struct StepEnded {
    /// Gone (killed, or its host rebooted) and forgotten by the store.
    ended: bool,
    /// What happened, in words.
    outcome: String,
}

/// Ends one step left on a host, and forgets it once it is gone: killed,
/// the host rebooted since (its boot id differs), or the step has no boot
/// id to check against (it is left alone).
async fn end_step(
    shared: &Handles,
    connector: &Connector,
    id: DeploymentId,
    step: &RemoteStep,
) -> StepEnded {
    let group = remote::RemoteGroup {
        pgid: u32::try_from(step.pgid).unwrap_or(0),
        boot_id: step.boot_id.clone(),
    };
    let outcome = match (
        crate::config::Host::parse(&step.host),
        remote::kill_leftover_command(&group),
    ) {
        (Ok(host), Some(command)) => match connector.connect(&host).await {
            Ok((link, _)) => {
                let ran = tokio::time::timeout(KILL_WITHIN, link.status(&command)).await;
                link.close().await;
                match ran {
                    Ok(Ok(_)) => Ok(format!(
                        "ended the interrupted step (process group {})",
                        group.pgid
                    )),
                    Ok(Err(e)) => Err(format!(
                        "cannot end the interrupted step (process group {}): {e}",
                        group.pgid
                    )),
                    Err(_) => Err(format!(
                        "cannot end the interrupted step (process group {}): no answer within {}",
                        group.pgid,
                        crate::format::duration(KILL_WITHIN)
                    )),
                }
            }
            Err(cause) => Err(format!(
                "cannot end the interrupted step (process group {}): {cause}",
                group.pgid
            )),
        },
        // No boot id to check against: the number may be anything's now.
        _ => Ok("left the interrupted step alone: its host's boot is unknown".to_string()),
    };
    match outcome {
        Ok(outcome) => {
            if let Err(e) = shared.store.forget_step(id, &step.host).await {
                tracing::warn!(deployment = %id, error = %e, "cannot clear an ended step of deployment {id}: {e}");
                return StepEnded {
                    ended: false,
                    outcome,
                };
            }
            StepEnded {
                ended: true,
                outcome,
            }
        }
        Err(outcome) => StepEnded {
            ended: false,
            outcome,
        },
    }
}

/// How long the kill on a host that answered may take (TERM, 2 s, KILL).
const KILL_WITHIN: std::time::Duration = std::time::Duration::from_secs(15);

/// Tries again to end the steps that hold environments ([`Hold`]): the
/// host may answer now, or have rebooted. Each one ended lets its
/// environment's next deployment start; how many were ended.
pub async fn end_held_steps(shared: &Handles) -> crate::store::Result<usize> {
    let holds = shared.store.holds().await?;
    if holds.is_empty() {
        return Ok(0);
    }
    let connector = shared.connector.get();
    let mut kills = JoinSet::new();
    for hold in holds {
        let (shared, connector) = (shared.clone(), connector.clone());
        kills.spawn(async move {
            let StepEnded { ended, outcome } =
                end_step(&shared, &connector, hold.deployment, &hold.step).await;
            (hold, ended, outcome)
        });
    }
    let mut n = 0;
    while let Some(done) = kills.join_next().await {
        let Ok((hold, ended, outcome)) = done else {
            continue;
        };
        let (id, host) = (hold.deployment, hold.host());
        if ended {
            n += 1;
            tracing::warn!(deployment = %id, host = %host, repository = %hold.repository, environment = %hold.environment,
                "deployment {id} on {host}: {outcome}; {}:{} is no longer held", hold.repository, hold.environment);
            if let Ok(w) = shared.logs.writer(id).await {
                w.ferry(
                    Some(&host),
                    None,
                    &format!("{outcome}; the environment is no longer held"),
                );
                let _ = w.flush().await;
            }
        } else {
            tracing::debug!(deployment = %id, host = %host, "deployment {id} on {host}: {outcome}");
        }
    }
    Ok(n)
}
