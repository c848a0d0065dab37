//! Leases on running deployments: renewed while they run here, and with
//! replicas, what a process that died left running is settled by another.

use std::time::Instant;

use tokio::sync::watch;

use super::*;

impl Runner {
    /// Renews this process's leases every [`RENEW_EVERY`] and, with
    /// replicas, settles deployments whose process is gone. A deployment
    /// whose lease another process took is stopped here; when the store
    /// cannot be reached long enough for the leases to run out, every
    /// deployment here is stopped, since another replica will settle them.
    pub(super) async fn keep_leases(
        shared: Handles,
        owner: Owner,
        running: Running,
        mut done: watch::Receiver<bool>,
    ) {
        let replicas = shared.store.replicas();
        let mut renewed = Instant::now();
        // Settling connects to hosts (up to ssh.connect_timeout each), so it
        // runs beside the renewals, which must not wait for it.
        let mut settling: Option<tokio::task::JoinHandle<()>> = None;
        let mut unholding: Option<tokio::task::JoinHandle<()>> = None;
        loop {
            let stop = tokio::select! {
                _ = tokio::time::sleep(RENEW_EVERY) => false,
                _ = done.wait_for(|d| *d) => true,
            };
            if stop {
                // Connections in progress end with the process; what they
                // did not finish is retried at the next start.
                for task in [settling, unholding].into_iter().flatten() {
                    task.abort();
                    let _ = task.await;
                }
                return;
            }
            Self::renew(&shared, &owner, &running, &mut renewed).await;
            if unholding.as_ref().is_none_or(|s| s.is_finished()) {
                let shared = shared.clone();
                unholding = Some(tokio::spawn(async move {
                    // The runner looks for work twice a second anyway.
                    match rescue::end_held_steps(&shared).await {
                        Ok(_) => {}
                        Err(e) => {
                            tracing::debug!(error = %e, "cannot look for held environments: {e}")
                        }
                    }
                }));
            }
            if replicas && settling.as_ref().is_none_or(|s| s.is_finished()) {
                let (shared, owner) = (shared.clone(), owner.clone());
                settling = Some(tokio::spawn(async move {
                    match rescue::rescue(&shared, &owner, false).await {
                        Ok(0) => {}
                        Ok(n) => tracing::warn!(
                            count = n,
                            "settled {} of a replica that stopped",
                            crate::format::plural(n, "deployment")
                        ),
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot look for deployments to settle: {e}")
                        }
                    }
                }));
            }
        }
    }

    /// Renews the leases of what runs here; a deployment whose lease
    /// another replica took is stopped here, and so is everything when the
    /// leases could not be renewed for nearly a lease's length (another
    /// replica settles them).
    async fn renew(shared: &Handles, owner: &Owner, running: &Running, renewed: &mut Instant) {
        let claims = running.claims();
        match shared.store.renew(owner, &claims).await {
            Ok(held) => {
                *renewed = Instant::now();
                for lost in claims.iter().filter(|c| !held.contains(c)) {
                    if Self::finished_here(shared, lost).await {
                        continue;
                    }
                    tracing::warn!(deployment = %lost.id, "deployment {}: lease lost to another replica; stopping it here", lost.id);
                    running.interrupt(Some(lost.id), Interrupt::LeaseLost);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot renew leases: {e}");
                if shared.store.replicas()
                    && renewed.elapsed() + RENEW_EVERY >= crate::store::LEASE
                    && !claims.is_empty()
                {
                    tracing::error!(
                        "leases not renewed for {}: stopping every deployment here, another replica settles them",
                        duration(renewed.elapsed())
                    );
                    running.interrupt(None, Interrupt::LeaseLost);
                }
            }
        }
    }

    /// Whether a claim the renewal did not hold any more is one whose
    /// deployment ended under it meanwhile: the renewal took the claims,
    /// the deployment finished, the renewal found it no longer running. In
    /// a burst that was several times a minute, each logged as a lease
    /// lost to another replica, with no other replica there. A store that
    /// cannot say counts as lost: stopping is the safe side.
    async fn finished_here(shared: &Handles, claim: &Claim) -> bool {
        match shared.store.get(claim.id).await {
            Ok(Some(d)) => d.state.is_final() && d.attempt == claim.attempt,
            _ => false,
        }
    }
}
