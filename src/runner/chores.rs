//! What the runner does between claims: review apps' idle teardowns, the
//! gauges it counts in the store, and the drain at shutdown. Apart from
//! `Runner::run` so that the loop reads as its rounds.

use std::collections::HashMap;
use std::time::Duration;

use tokio::task::JoinSet;

use super::{Interrupt, Runner};
use crate::format::duration;
use crate::store::{DeploymentId, State};

impl Runner {
    /// Tears down review apps idle past their `teardown_after`.
    pub(super) async fn sweep_idle(&self) {
        let config = self.shared.config.get();
        match crate::admission::teardown::sweep_idle(&self.shared.store, &config).await {
            Ok(0) => {}
            Ok(_) => {
                self.wake.notify_one();
                self.shared.outbox.ring();
            }
            Err(e) => tracing::warn!(error = %e, "cannot look for idle review apps: {e}"),
        }
    }

    /// The gauges counted in the store, and systemd's status line when it
    /// changed; false when the store could not count.
    pub(super) async fn report(&self, running: usize, status: &mut String) -> bool {
        let Ok(queued) = self.shared.store.count_by_state(State::Queued).await else {
            return false;
        };
        metrics::gauge!(crate::metrics::QUEUED).set(queued as f64);
        if let Ok(locks) = self.shared.store.locks().await {
            metrics::gauge!(crate::metrics::LOCKED).set(locks.len() as f64);
        }
        if let Ok(p) = self.shared.store.pending_summary().await {
            metrics::gauge!(crate::metrics::STATUSES_PENDING).set(p.count as f64);
            let age = p
                .oldest_at
                .map_or(Duration::ZERO, |at| crate::store::Timestamp::now() - at);
            metrics::gauge!(crate::metrics::STATUSES_OLDEST_PENDING).set(age.as_secs_f64());
        }
        if let Ok(n) = self.shared.store.cancelled().await {
            metrics::counter!(crate::metrics::CANCELLED).absolute(n as u64);
        }
        let now = format!("{running} running, {queued} queued");
        if now != *status {
            crate::service::status(&now);
            *status = now;
        }
        true
    }

    /// At shutdown: running deployments get `runner.shutdown_grace`, then
    /// are cancelled; returns once every task ended.
    pub(super) async fn drain(
        &mut self,
        tasks: &mut JoinSet<()>,
        by_task: &mut HashMap<tokio::task::Id, DeploymentId>,
    ) {
        let grace = self.shared.config.get().runner.shutdown_grace;
        if !tasks.is_empty() {
            tracing::info!(
                running = tasks.len(),
                "waiting up to {} for running deployments",
                duration(grace)
            );
        }
        let deadline = tokio::time::sleep(grace);
        tokio::pin!(deadline);
        let mut cancelled = false;
        loop {
            tokio::select! {
                joined = tasks.join_next_with_id() => match joined {
                    None => break,
                    Some(ended) => self.ended(by_task, ended),
                },
                _ = &mut deadline, if !cancelled => {
                    tracing::warn!(running = tasks.len(), "shutdown grace is over: cancelling running deployments");
                    self.running.interrupt(None, Interrupt::Shutdown);
                    cancelled = true;
                }
            }
        }
    }
}
