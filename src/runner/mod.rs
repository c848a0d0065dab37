//! The scheduler: claims queued deployments from the store, one per
//! repository and environment at a time, at most `runner.max_concurrent` in
//! all, and runs each over SSH.

mod deploy;
pub mod remote;
pub mod ssh;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use crate::config::Config;
use crate::current::Current;
use crate::format::duration;
use crate::logs::Logs;
use crate::service::Heartbeat;
use crate::store::{NewStatus, SharedStore, State, StatusState};
pub use ssh::Connector;

pub const INTERRUPTED: &str = "Interrupted: ferry restarted during the deployment";

/// What a deployment needs while it runs.
#[derive(Clone)]
pub struct Handles {
    pub store: SharedStore,
    pub logs: Logs,
    pub config: Current<Config>,
    pub connector: Current<Connector>,
    /// Rung when a status is queued.
    pub outbox: Arc<Notify>,
}

pub struct Runner {
    shared: Handles,
    /// Rung when there may be a deployment to claim.
    wake: Arc<Notify>,
    heartbeat: Arc<Heartbeat>,
}

impl Runner {
    pub fn new(shared: Handles, wake: Arc<Notify>, heartbeat: Arc<Heartbeat>) -> Runner {
        Runner {
            shared,
            wake,
            heartbeat,
        }
    }

    /// Settles deployments a previous process left running: it died, so
    /// nobody watches them any more. Each gets a final `error`.
    pub async fn recover(&self) -> anyhow::Result<usize> {
        let running = self.shared.store.by_state(State::Running).await?;
        for d in &running {
            self.end_leftover_steps(d.id).await;
            let status = NewStatus::new(StatusState::Error, INTERRUPTED)
                .with_log_url(self.shared.logs.url(d.id));
            if let Ok(w) = self.shared.logs.writer(d.id) {
                w.ferry(None, None, &format!("error: {INTERRUPTED}"));
            }
            self.shared
                .store
                .finish(d.id, State::Error, &status)
                .await?;
            tracing::warn!(deployment = %d.id, repository = %d.repository, environment = %d.environment,
                "deployment {} of {} to {}: {INTERRUPTED}", d.id, d.repository, d.environment);
        }
        Ok(running.len())
    }

    /// Kills, on each host, the step a dead ferry left running there, so
    /// that it cannot overlap the environment's next deployment.
    async fn end_leftover_steps(&self, id: crate::store::DeploymentId) {
        let steps = match self.shared.store.remote_steps(id).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(deployment = %id, error = %e, "cannot read the steps deployment {id} left running: {e}");
                return;
            }
        };
        let log = self.shared.logs.writer(id).ok();
        let note = |host: &str, text: &str| {
            if let Some(w) = &log {
                w.ferry(Some(host), None, text);
            }
        };
        let connector = self.shared.connector.get();
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
                let _ = self.shared.store.forget_step(id, &spec).await;
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
                let _ = self.shared.store.forget_step(id, &spec).await;
            }
        }
    }

    /// Runs until `shutdown`; then gives running deployments
    /// `runner.shutdown_grace` to finish and cancels the rest.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let (cancel, _) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let mut status = String::new();
        loop {
            let max = self.shared.config.get().runner.max_concurrent.get();
            while tasks.len() < max && !*shutdown.borrow() {
                match self.shared.store.claim_next().await {
                    Ok(Some(d)) => {
                        tracing::info!(deployment = %d.id, repository = %d.repository, environment = %d.environment,
                            "deployment {} started: {} to {}", d.id, d.repository, d.environment);
                        tasks.spawn(deploy::deploy(
                            self.shared.clone(),
                            self.shared.connector.get(),
                            d,
                            cancel.subscribe(),
                        ));
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot claim a queued deployment, retrying: {e}");
                        break;
                    }
                }
            }
            self.heartbeat.beat();
            metrics::gauge!(crate::metrics::RUNNING).set(tasks.len() as f64);
            if let Ok(queued) = self.shared.store.count_by_state(State::Queued).await {
                metrics::gauge!(crate::metrics::QUEUED).set(queued as f64);
                let now = format!("{} running, {queued} queued", tasks.len());
                if now != status {
                    crate::service::status(&now);
                    status = now;
                }
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                _ = shutdown.wait_for(|s| *s) => break,
                // Also a retry after a store error.
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            }
        }
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
        loop {
            tokio::select! {
                joined = tasks.join_next() => if joined.is_none() { break },
                _ = &mut deadline, if !*cancel.borrow() => {
                    tracing::warn!(running = tasks.len(), "shutdown grace is over: cancelling running deployments");
                    cancel.send_replace(true);
                }
            }
        }
    }
}
