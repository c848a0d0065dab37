//! The scheduler: claims queued deployments from the store, one per
//! repository and environment at a time, at most `runner.max_concurrent` in
//! all, runs each over SSH, and keeps the leases on them alive.

mod chores;
mod connect_cause;
mod deploy;
mod leases;
pub mod link;
mod outcome;
pub mod remote;
mod rescue;
pub mod ssh;
pub mod step;

use crate::sync::LockExt;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::current::Current;
use crate::format::duration;
use crate::logs::Logs;
use crate::service::Heartbeat;
use crate::store::{Claim, DeploymentId, Owner, RENEW_EVERY, SharedStore};
use deploy::Interrupt;
pub use ssh::Connector;

/// How often the store is asked for work without a wake-up: an unlock or
/// a cancel from the command line reaches the daemon within a second.
const CLAIM_POLL: Duration = Duration::from_millis(500);
const CANCEL_POLL: Duration = Duration::from_millis(500);
/// After a look for work found none, a wake-up waits until this long after
/// it: in a burst every delivery wakes the runner, and a look per delivery
/// was a hand-off to a blocking thread each (`perf`: thread wake-ups were
/// half of ferry's CPU). A lone deployment is not delayed.
const EMPTY_GAP: Duration = Duration::from_millis(5);

/// Writes what operators did through the command line to this ferry's
/// log, once each (with replicas, on one of them): the journal's `ACTOR=`
/// field names who, for `journalctl ACTOR=alice`.
async fn log_operator_actions(shared: &Handles) {
    match shared.store.take_actions(100).await {
        Ok(actions) => {
            for a in actions {
                let deployment = a.deployment.map(|d| d.0);
                tracing::info!(
                    actor = %a.actor,
                    action = %a.action,
                    repository = %a.repository,
                    environment = %a.environment,
                    deployment,
                    "{} {}",
                    a.actor,
                    a.detail
                );
            }
        }
        Err(e) => tracing::debug!(error = %e, "cannot read operators' actions: {e}"),
    }
}

/// What a deployment needs while it runs.
#[derive(Clone)]
pub struct Handles {
    pub store: SharedStore,
    pub logs: Logs,
    pub config: Current<Config>,
    pub connector: Current<Connector>,
    /// Rung when a status is queued.
    pub outbox: crate::sync::Bell,
}

/// The deployments this process runs: their claims, and how to stop each.
#[derive(Clone, Default)]
struct Running(Arc<Mutex<ByDeployment>>);

type ByDeployment = HashMap<DeploymentId, (Claim, watch::Sender<Interrupt>)>;

impl Running {
    fn lock(&self) -> std::sync::MutexGuard<'_, ByDeployment> {
        self.0.locked()
    }

    fn claims(&self) -> Vec<Claim> {
        self.lock().values().map(|(c, _)| *c).collect()
    }

    fn interrupt(&self, id: Option<DeploymentId>, why: Interrupt) {
        for (d, (_, tx)) in self.lock().iter() {
            if id.is_none_or(|id| id == *d) {
                tx.send_replace(why.clone());
            }
        }
    }
}

pub struct Runner {
    shared: Handles,
    /// Rung when there may be a deployment to claim.
    wake: Arc<Notify>,
    heartbeat: Arc<Heartbeat>,
    owner: Owner,
    running: Running,
    /// Taken over at start, to be settled by [`Runner::run`].
    interrupted: Vec<crate::store::Deployment>,
}

impl Runner {
    pub fn new(shared: Handles, wake: Arc<Notify>, heartbeat: Arc<Heartbeat>) -> Runner {
        Runner {
            shared,
            wake,
            heartbeat,
            owner: Owner::this_process(),
            running: Running::default(),
            interrupted: Vec::new(),
        }
    }

    /// At start: takes over what a previous process left running, in the
    /// store alone (no host is contacted here), so that the runner's own
    /// claims are never mistaken for leftovers. On a store this process
    /// uses alone that is every running deployment; with replicas, those
    /// whose lease ran out (the others are alive, or will be settled by the
    /// rescuer once their lease runs out). [`Runner::run`] then ends their
    /// steps and settles them beside intake: a host that does not answer
    /// must not keep webhooks waiting.
    pub async fn recover(&mut self) -> anyhow::Result<usize> {
        let all = !self.shared.store.replicas();
        self.interrupted = self.shared.store.rescue(&self.owner, all).await?;
        Ok(self.interrupted.len())
    }

    /// Stops deployments here that an operator cancelled (`ferry cancel`
    /// records it in the store, from any host): looked for twice a second,
    /// so a cancel takes effect within a second or two.
    async fn watch_cancels(shared: Handles, running: Running, mut done: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(CANCEL_POLL) => {}
                _ = done.wait_for(|d| *d) => return,
            }
            let claims = running.claims();
            match shared.store.cancel_requests(&claims).await {
                Ok(asked) => {
                    for (claim, c) in asked {
                        let stopping = running
                            .lock()
                            .get(&claim.id)
                            .is_some_and(|(_, tx)| *tx.borrow() == Interrupt::None);
                        if stopping {
                            // People chose it: info (docs/runbook.md).
                            tracing::info!(deployment = %claim.id, "deployment {}: {}", claim.id, c.describe());
                            running.interrupt(Some(claim.id), Interrupt::Cancel(c));
                        }
                    }
                }
                Err(e) => tracing::debug!(error = %e, "cannot look for cancelled deployments: {e}"),
            }
            log_operator_actions(&shared).await;
        }
    }

    fn ended(
        &self,
        by_task: &mut HashMap<tokio::task::Id, DeploymentId>,
        ended: Result<(tokio::task::Id, ()), tokio::task::JoinError>,
    ) {
        let task = match &ended {
            Ok((task, ())) => *task,
            Err(e) => e.id(),
        };
        if let Some(id) = by_task.remove(&task) {
            if let Err(e) = ended {
                tracing::error!(deployment = %id, "deployment {id} stopped unexpectedly: {e}");
            }
            self.running.lock().remove(&id);
        }
    }

    /// Runs until `shutdown`; then gives running deployments
    /// `runner.shutdown_grace` to finish and cancels the rest.
    /// Claims and starts deployments while there is room; when the store
    /// had none left to give, the time it said so.
    async fn start_what_may_run(
        &mut self,
        tasks: &mut JoinSet<()>,
        by_task: &mut HashMap<tokio::task::Id, DeploymentId>,
        shutdown: &CancellationToken,
    ) -> Option<Instant> {
        let config = self.shared.config.get();
        let max = config.runner.max_concurrent.get();
        // Environments a freeze window holds are not claimed; a store
        // that cannot say which claims nothing this round.
        let held =
            match crate::admission::freeze::held_now(&self.shared.store, &config.freezes).await {
                Ok(held) => held,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read freeze lifts, retrying: {e}");
                    return None;
                }
            };
        while tasks.len() < max && !shutdown.is_cancelled() {
            match self
                .shared
                .store
                .claim_next_except(&self.owner, &held.frozen, held.looked_at.as_deref())
                .await
            {
                Ok(Some(d)) => {
                    tracing::info!(deployment = %d.id, repository = %d.repository, environment = %d.environment,
                        "deployment {} started: {} to {}", d.id, d.repository, d.environment);
                    let (tx, rx) = watch::channel(Interrupt::None);
                    let id = d.id;
                    self.running.lock().insert(id, (d.claim(), tx));
                    let run =
                        deploy::deploy(self.shared.clone(), self.shared.connector.get(), d, rx);
                    let task = tasks.spawn(run);
                    by_task.insert(task.id(), id);
                }
                Ok(None) => return Some(Instant::now()),
                Err(e) => {
                    tracing::error!(error = %e, "cannot claim a queued deployment, retrying: {e}");
                    return None;
                }
            }
        }
        None
    }

    pub async fn run(mut self, shutdown: CancellationToken) {
        let (done, done_rx) = watch::channel(false);
        let interrupted = std::mem::take(&mut self.interrupted);
        let settling = {
            let shared = self.shared.clone();
            tokio::spawn(async move {
                let n = rescue::settle_all(&shared, interrupted).await;
                if n > 0 {
                    tracing::warn!(
                        count = n,
                        "settled deployments interrupted by the last stop"
                    );
                }
            })
        };
        let leases = tokio::spawn(Self::keep_leases(
            self.shared.clone(),
            self.owner.clone(),
            self.running.clone(),
            done_rx.clone(),
        ));
        let cancels = tokio::spawn(Self::watch_cancels(
            self.shared.clone(),
            self.running.clone(),
            done_rx,
        ));
        let mut tasks = JoinSet::new();
        // A deployment task that panicked still gives its id back here, so
        // its lease is no longer renewed and it gets settled.
        let mut by_task: HashMap<tokio::task::Id, DeploymentId> = HashMap::new();
        let mut status = String::new();
        let mut counted = Instant::now() - Duration::from_secs(1);
        let mut swept = Instant::now() - crate::admission::teardown::SWEEP_EVERY;
        let mut found_none: Option<Instant> = None;
        loop {
            if let Some(at) = self
                .start_what_may_run(&mut tasks, &mut by_task, &shutdown)
                .await
            {
                found_none = Some(at);
            }
            if swept.elapsed() >= crate::admission::teardown::SWEEP_EVERY
                && !shutdown.is_cancelled()
            {
                swept = Instant::now();
                self.sweep_idle().await;
            }
            self.heartbeat.beat();
            metrics::counter!(crate::metrics::RUNNER_ROUNDS).increment(1);
            metrics::gauge!(crate::metrics::RUNNING).set(tasks.len() as f64);
            // Counted at most once a second: the runner wakes for every
            // delivery, and in a burst the count was a query per delivery.
            if counted.elapsed() >= Duration::from_secs(1)
                && self.report(tasks.len(), &mut status).await
            {
                counted = Instant::now();
            }
            let mut woken = false;
            tokio::select! {
                _ = self.wake.notified() => woken = true,
                Some(ended) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                    self.ended(&mut by_task, ended);
                }
                _ = shutdown.cancelled() => break,
                // Also a retry after a store error, and how work queued by
                // another replica or freed by `ferry unlock` is found.
                _ = tokio::time::sleep(CLAIM_POLL) => {}
            }
            if let Some(at) = found_none.filter(|_| woken) {
                tokio::time::sleep_until((at + EMPTY_GAP).into()).await;
            }
        }
        self.drain(&mut tasks, &mut by_task).await;
        done.send_replace(true);
        let _ = leases.await;
        let _ = cancels.await;
        settling.abort();
        let _ = settling.await;
    }
}
