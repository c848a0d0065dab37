//! What runs beside intake, the runner and the outbox while ferry serves:
//! the heartbeat, pruning, notifications, the health probe, other
//! replicas' announcements, reload on SIGHUP, required checks, the
//! deployments the command line asks for, auto-deploy, commands in pull
//! requests, and the reconciler.

use super::*;

/// Applies `storage.log_retention` (to logs and to notifications sent or
/// given up) and the events' retention at start
/// and every hour.
async fn prune_logs(
    logs: Logs,
    store: SharedStore,
    config: Current<Config>,
    stop: CancellationToken,
) {
    loop {
        let before = crate::store::Timestamp::now() - crate::store::EVENT_RETENTION;
        if let Err(e) = store.prune_events(before).await {
            tracing::warn!(error = %e, "cannot prune old events: {e}");
        }
        let retention = config.get().storage.log_retention;
        let done_before = crate::store::Timestamp::now() - retention;
        if let Err(e) = store.prune_notifications(done_before).await {
            tracing::warn!(error = %e, "cannot prune old notifications: {e}");
        }
        match logs.prune(retention).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(
                    removed = n,
                    "removed {n} logs older than storage.log_retention"
                )
            }
            Err(e) => tracing::warn!(error = %e, "cannot prune old logs: {e}"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
            _ = stop.cancelled() => return,
        }
    }
}

/// Lifts the locks whose `ferry lock --for` ran out, within a second of
/// it (one indexed read a second while none is due), and wakes the runner
/// for the deployments they held. The unlock event names ferry; a lock
/// that ran out while no ferry ran is lifted at the next start.
async fn expire_locks(store: SharedStore, wake: WakeUps, stop: CancellationToken) {
    loop {
        match store
            .expire_locks(
                crate::store::Timestamp::now(),
                crate::wording::LOCK_RAN_OUT_BY,
            )
            .await
        {
            Ok(lifted) => {
                for l in &lifted {
                    tracing::info!(actor = crate::wording::LOCK_RAN_OUT_BY, repository = %l.repository,
                        environment = %l.environment,
                        "the lock of {}:{} by {} lifted by itself: its --for ran out",
                        l.repository, l.environment, l.holder);
                }
                if !lifted.is_empty() {
                    wake.all();
                }
            }
            Err(e) => tracing::debug!(error = %e, "cannot lift the locks that ran out: {e}"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.cancelled() => return,
        }
    }
}

/// Beats in the store every second while ferry serves, so that `ferry
/// deploy` can tell at once whether any ferry runs; says it is gone when
/// it stops in order. A failed beat is only logged: the store's own
/// trouble is `/healthz`'s to report.
async fn beat(store: SharedStore, stop: CancellationToken) {
    let me = crate::store::Owner::this_process();
    loop {
        if let Err(e) = store.beat(&me).await {
            tracing::debug!(error = %e, "cannot record this ferry's heartbeat: {e}");
        }
        tokio::select! {
            _ = tokio::time::sleep(crate::store::daemons::BEAT_EVERY) => {}
            _ = stop.cancelled() => break,
        }
    }
    if let Err(e) = store.gone(&me).await {
        tracing::debug!(error = %e, "cannot record that this ferry stopped: {e}");
    }
}

/// What other replicas did, as PostgreSQL announces it: new work for the
/// runner and outbox, new lines for live log pages.
async fn listen_to_replicas(db: Database, wake: WakeUps, logs: Logs) {
    let channels = vec![
        crate::store::postgres::WORK_CHANNEL,
        crate::logs::NOTIFY_CHANNEL,
    ];
    db.listen(channels, |channel, payload| {
        if channel == crate::logs::NOTIFY_CHANNEL {
            if let Ok(id) = payload.parse() {
                logs.changed_elsewhere(id);
            }
        } else {
            wake.all();
        }
    })
    .await
}

/// SIGHUP: read the config file again; a bad one changes nothing.
async fn reload_on_hangup(live: Live, wake: WakeUps, path: &Path) -> anyhow::Result<()> {
    let mut hup = signal(SignalKind::hangup())?;
    while hup.recv().await.is_some() {
        service::reloading();
        match Config::load(path) {
            Err(e) => tracing::error!("reload refused, the running config stays in force: {e}"),
            Ok(new) => match live.reload(new) {
                Ok(kept) => {
                    for k in kept {
                        tracing::warn!("reload: {k}");
                    }
                    wake.all();
                    let c = live.config.get();
                    tracing::info!(targets = c.targets.len(), "reloaded {}", path.display());
                }
                Err(e) => {
                    tracing::error!("reload refused, the running config stays in force: {e:#}")
                }
            },
        }
        service::ready("reloaded");
    }
    Ok(())
}

/// What runs beside intake, the runner and the outbox until `stop`: the
/// heartbeat, pruning, the watchdog, notifications, the health probe,
/// other replicas' announcements, reload, required checks, the deployments
/// the command line asks GitHub for, and the reconciler.
pub(super) struct Background {
    pub(super) store: SharedStore,
    pub(super) logs: Logs,
    pub(super) config: Current<Config>,
    pub(super) github: Current<GitHub>,
    pub(super) wake: WakeUps,
    pub(super) heartbeat: Arc<Heartbeat>,
    pub(super) database: Option<Database>,
    pub(super) live: Live,
    pub(super) path: std::path::PathBuf,
    pub(super) intake: Intake,
}

impl Background {
    pub(super) fn spawn(self, tasks: &TaskTracker, stop: &CancellationToken) {
        self.spawn_loop_parts(tasks, stop);
        tasks.spawn(beat(self.store.clone(), stop.clone()));
        tasks.spawn(expire_locks(
            self.store.clone(),
            self.wake.clone(),
            stop.clone(),
        ));
        tasks.spawn(prune_logs(
            self.logs.clone(),
            self.store.clone(),
            self.config.clone(),
            stop.clone(),
        ));
        tasks.spawn(service::watchdog(self.heartbeat, stop.clone()));
        tasks.spawn(
            crate::notify::Notifier {
                store: self.store.clone(),
                config: self.config.clone(),
                logs: self.logs.clone(),
                statuses: self.wake.outbox.clone(),
            }
            .run(stop.clone()),
        );
        tasks.spawn(crate::health::probe(
            self.store.clone(),
            self.database
                .is_none()
                .then(|| self.config.get().storage.dir.clone()),
            stop.clone(),
        ));
        if let Some(db) = self.database {
            let (wake, logs, stop) = (self.wake.clone(), self.logs.clone(), stop.clone());
            tasks.spawn(async move {
                tokio::select! {
                    _ = listen_to_replicas(db, wake, logs) => {}
                    _ = stop.cancelled() => {}
                }
            });
        }
        {
            let (wake, stop, live, path) = (self.wake.clone(), stop.clone(), self.live, self.path);
            tasks.spawn(async move {
                tokio::select! {
                    r = reload_on_hangup(live, wake, &path) => if let Err(e) = r {
                        tracing::error!(error = %e, "cannot listen for SIGHUP, reload needs a restart: {e}");
                    },
                    _ = stop.cancelled() => {}
                }
            });
        }
        tasks.spawn(
            crate::admission::required_checks::Gatekeeper {
                store: self.store.clone(),
                github: self.github.clone(),
                config: self.config.clone(),
                logs: self.logs.clone(),
                wake: self.wake.gates.clone(),
                runner: self.wake.runner.clone(),
                outbox: self.wake.outbox.clone(),
            }
            .run(stop.clone()),
        );
        tasks.spawn(
            crate::github::create::Requester {
                github: self.github.clone(),
                intake: self.intake.clone(),
            }
            .run(stop.clone()),
        );
        tasks.spawn(
            crate::github::reconcile::Reconciler {
                github: self.github,
                config: self.config.clone(),
                intake: self.intake.clone(),
            }
            .run(stop.clone()),
        );
    }

    /// The parts that close the loop around a deployment: auto-deploy
    /// (deciding, promotions, branch heads), the protection rule's runs,
    /// and commands in pull requests with their replies' ends.
    fn spawn_loop_parts(&self, tasks: &TaskTracker, stop: &CancellationToken) {
        tasks.spawn(
            crate::auto_deploy::Deployer {
                github: self.github.clone(),
                intake: self.intake.clone(),
                wake: self.wake.auto_deploy.clone(),
            }
            .run(stop.clone()),
        );
        tasks.spawn(crate::cursor::run(
            self.store.clone(),
            crate::auto_deploy::promotions::Promotions {
                store: self.store.clone(),
                config: self.config.clone(),
                offered: self.wake.auto_deploy.clone(),
            },
            self.wake.outbox.listener(),
            stop.clone(),
        ));
        tasks.spawn(
            crate::auto_deploy::heads::Heads {
                store: self.store.clone(),
                config: self.config.clone(),
                github: self.github.clone(),
                offered: self.wake.auto_deploy.clone(),
            }
            .run(stop.clone()),
        );
        tasks.spawn(
            crate::protection::Protector {
                store: self.store.clone(),
                config: self.config.clone(),
                github: self.github.clone(),
                wake: self.wake.protection.clone(),
            }
            .run(stop.clone()),
        );
        tasks.spawn(
            crate::commands::Commander {
                github: self.github.clone(),
                intake: self.intake.clone(),
                logs: self.logs.clone(),
                wake: self.wake.commands.clone(),
            }
            .run(stop.clone()),
        );
        tasks.spawn(crate::cursor::run(
            self.store.clone(),
            crate::delivery::Ends {
                store: self.store.clone(),
                config: self.config.clone(),
            },
            self.wake.outbox.listener(),
            stop.clone(),
        ));
        tasks.spawn(
            crate::delivery::commit_times::CommitTimes {
                store: self.store.clone(),
                config: self.config.clone(),
                github: self.github.clone(),
            }
            .run(stop.clone()),
        );
        tasks.spawn(crate::cursor::run(
            self.store.clone(),
            crate::commands::ends::Ends {
                store: self.store.clone(),
                config: self.config.clone(),
                commands: self.wake.commands.clone(),
            },
            self.wake.outbox.listener(),
            stop.clone(),
        ));
    }
}
