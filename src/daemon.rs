//! `ferry serve`: start every part, reload on SIGHUP, and stop them in
//! order on SIGTERM.
//!
//! Shutdown order: stop taking webhooks and new deployments, give running
//! ones `runner.shutdown_grace`, cancel what is left, then give the outbox a
//! last moment to post the final statuses (what it cannot post waits in the
//! store for the next start).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Backend, Config};
use crate::current::{Current, Publisher, current};
use crate::github::{GitHub, outbox::StatusPoster};
use crate::logs::Logs;
use crate::logs::page::Pages;
use crate::runner::{Connector, Handles, Runner};
use crate::service::{self, Heartbeat};
use crate::store::SharedStore;
use crate::store::postgres::Database;
use crate::webhook::Intake;

/// How long the outbox may keep posting after the runner stopped.
const OUTBOX_DRAIN: Duration = Duration::from_secs(10);

/// The config in force and what is built from it; a reload replaces all
/// three or none.
struct Live {
    config: Publisher<Config>,
    github: Publisher<GitHub>,
    connector: Publisher<Connector>,
}

/// Built from one config, before anything is put in force.
struct Built {
    config: Arc<Config>,
    github: Arc<GitHub>,
    connector: Arc<Connector>,
}

impl Built {
    fn new(config: Config) -> anyhow::Result<Built> {
        Ok(Built {
            github: Arc::new(GitHub::new(&config.github)?),
            connector: Arc::new(Connector::new(&config.ssh)?),
            config: Arc::new(config),
        })
    }
}

impl Live {
    /// Puts `new` in force, all of it or (on error) none of it. What cannot
    /// change without a restart is kept, and returned as warnings. Running
    /// deployments keep the target and connection they started with.
    fn reload(&self, mut new: Config) -> anyhow::Result<Vec<String>> {
        let old = self.config.get();
        let mut kept = Vec::new();
        if new.server.listen != old.server.listen {
            kept.push(format!(
                "server.listen stays {} until ferry restarts",
                old.server.listen
            ));
        }
        if new.server.public_url != old.server.public_url {
            kept.push(format!(
                "server.public_url stays {} until ferry restarts",
                old.server.public_url
            ));
        }
        if new.storage.dir != old.storage.dir {
            kept.push(format!(
                "storage.dir stays {} until ferry restarts",
                old.storage.dir.display()
            ));
        }
        let url = |b: &Backend| match b {
            Backend::Postgres { url } => Some(url.expose().to_vec()),
            Backend::Sqlite => None,
        };
        if url(&new.storage.backend) != url(&old.storage.backend) {
            kept.push("storage.database_url stays as it was until ferry restarts".into());
        }
        new.server = old.server.clone();
        new.storage = old.storage.clone();
        let built = Built::new(new)?;
        self.config.publish(built.config);
        self.github.publish(built.github);
        self.connector.publish(built.connector);
        Ok(kept)
    }
}

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
        let before = crate::store::now_ms() - crate::store::EVENT_RETENTION.as_millis() as i64;
        if let Err(e) = store.prune_events(before).await {
            tracing::warn!(error = %e, "cannot prune old events: {e}");
        }
        let retention = config.get().storage.log_retention;
        let done_before = crate::store::now_ms() - retention.as_millis() as i64;
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

/// The parts that sleep until there may be work: rung by intake, by a
/// reload and by other replicas' announcements. Named, so that each ring
/// says whom it is for.
#[derive(Clone, Default)]
pub struct WakeUps {
    /// There may be a deployment to claim.
    pub runner: Arc<Notify>,
    /// There may be a status to post.
    pub outbox: crate::sync::Bell,
    /// A sha's checks changed: look at the deployments waiting for them.
    pub gates: Arc<Notify>,
}

impl WakeUps {
    fn all(&self) {
        self.runner.notify_one();
        self.outbox.ring();
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

/// What the HTTP routes act on, built once for `serve` and `routes_only`.
fn http_parts(
    store: &SharedStore,
    config: &Current<Config>,
    logs: &Logs,
    wake: &WakeUps,
) -> (Intake, Pages) {
    let intake = Intake {
        store: store.clone(),
        config: config.clone(),
        logs: logs.clone(),
        locks: Default::default(),
        runner: wake.runner.clone(),
        outbox: wake.outbox.clone(),
        gates: wake.gates.clone(),
    };
    let pages = Pages {
        store: store.clone(),
        logs: logs.clone(),
        config: config.clone(),
    };
    (intake, pages)
}

/// The HTTP routes over `store` with no runner, outbox or metrics behind
/// them: what in-process tests and the intake benchmark drive.
pub fn routes_only(config: Config, store: SharedStore, logs: Logs) -> axum::Router {
    let config = Current::fixed(Arc::new(config));
    let (intake, pages) = http_parts(&store, &config, &logs, &WakeUps::default());
    crate::http::router(intake, pages, None)
}

/// SIGTERM or SIGINT, whichever comes first: what `ferry serve` stops on.
pub async fn signals() -> anyhow::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
    Ok(())
}

/// The journal's lines for a start: what the last stop interrupted, that
/// ferry serves, and an open-file limit too low for its clients.
fn announce(listen: std::net::SocketAddr, targets: usize, interrupted: usize) {
    if interrupted > 0 {
        tracing::warn!(
            count = interrupted,
            "{} interrupted by the last stop: ending their steps",
            crate::format::plural(interrupted, "deployment")
        );
    }
    let open_files = service::raise_open_files();
    tracing::info!(
        listen = %listen,
        targets,
        open_files,
        "ferry {} serving", env!("CARGO_PKG_VERSION")
    );
    if open_files < 4096 {
        tracing::warn!(
            "the open-file limit is {open_files}: a few thousand idle clients could starve intake; raise it (LimitNOFILE=65536 in the unit)"
        );
    }
}

/// After every task ended: idle SSH connections closed, what GitHub
/// still lacks said, the store closed.
async fn wind_down(store: &SharedStore, connector: &Current<Connector>) {
    connector.get().close_idle().await;
    let pending = store.pending_statuses().await.unwrap_or(0);
    if pending > 0 {
        tracing::warn!(
            pending,
            "statuses not yet posted; they are sent at the next start"
        );
    }
    store.close().await;
}

/// What runs beside intake, the runner and the outbox until `stop`: the
/// heartbeat, pruning, the watchdog, notifications, the health probe,
/// other replicas' announcements, reload, required checks, the deployments
/// the command line asks GitHub for, and the reconciler.
struct Background {
    store: SharedStore,
    logs: Logs,
    config: Current<Config>,
    github: Current<GitHub>,
    wake: WakeUps,
    heartbeat: Arc<Heartbeat>,
    database: Option<Database>,
    live: Live,
    path: std::path::PathBuf,
    intake: Intake,
}

impl Background {
    fn spawn(self, tasks: &TaskTracker, stop: &CancellationToken) {
        tasks.spawn(beat(self.store.clone(), stop.clone()));
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
}

/// Runs ferry on `config` until `shutdown` completes, then stops every
/// part in order (mini-redis's shape): stop taking webhooks and new
/// deployments, give running ones `runner.shutdown_grace`, let the outbox
/// drain, and join every task spawned here.
pub async fn serve(
    config: Config,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let path = config.path.clone();
    let listen = config.server.listen;
    // Before anything is read or migrated: a second daemon on this store
    // changes nothing. Held until serve returns.
    let _hold = match config.storage.backend {
        Backend::Sqlite => Some(crate::store::sqlite::holder::hold(&config.storage.dir)?),
        Backend::Postgres { .. } => None,
    };
    let opened = crate::store::open(&config.storage).await?;
    let store = opened.store;
    let logs = Logs::open(
        &config.storage.dir,
        &config.server.public_url,
        opened.database.clone(),
    )
    .await?;
    let metrics = Some(crate::metrics::install()?);
    crate::runner::ssh::sweep_control_dir();
    let built = Built::new(config)?;
    let (config, config_now) = current(built.config);
    let (github, github_now) = current(built.github);
    let (connector, connector_now) = current(built.connector);
    let live = Live {
        config,
        github,
        connector,
    };
    let wake = WakeUps::default();
    let heartbeat = Arc::new(Heartbeat::default());

    let mut runner = Runner::new(
        Handles {
            store: store.clone(),
            logs: logs.clone(),
            config: config_now.clone(),
            connector: connector_now.clone(),
            outbox: wake.outbox.clone(),
        },
        wake.runner.clone(),
        heartbeat.clone(),
    );

    // Listen first: deliveries GitHub sends while ferry starts are not
    // redelivered, so nothing slow (a host that does not answer) comes
    // before the socket.
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen} (server.listen)"))?;
    // The store alone (no host): what the last process left running is
    // taken over before this one claims anything; the runner ends their
    // steps beside intake.
    let interrupted = runner
        .recover()
        .await
        .context("cannot take over interrupted deployments")?;
    announce(listen, config_now.get().targets.len(), interrupted);

    // Two stages: `stop` ends intake, the runner and the background parts;
    // the outbox stops after the runner (`outbox_stop`), so that the final
    // statuses of the deployments it cancelled still go out.
    let stop = CancellationToken::new();
    let outbox_stop = CancellationToken::new();
    let tasks = TaskTracker::new();
    let (intake, pages) = http_parts(&store, &config_now, &logs, &wake);
    let outbox = StatusPoster::new(store.clone(), github_now.clone(), wake.outbox.clone())
        .with_log_links(logs.clone());
    let outbox = tasks.spawn(outbox.run(outbox_stop.clone(), OUTBOX_DRAIN));
    let runner = tasks.spawn(runner.run(stop.clone()));
    Background {
        store: store.clone(),
        logs: logs.clone(),
        config: config_now.clone(),
        github: github_now,
        wake: wake.clone(),
        heartbeat,
        database: opened.database,
        live,
        path,
        intake: intake.clone(),
    }
    .spawn(&tasks, &stop);
    let http_stop = stop.clone();
    tasks.spawn(crate::http::serve(
        listener,
        crate::http::router(intake, pages, metrics),
        async move { http_stop.cancelled().await },
        // Open connections (a log being read) must not hold the exit hostage.
        Duration::from_secs(5),
    ));
    tasks.close();
    // The store is open and the socket listens: now, and only now, ready.
    service::ready("serving");

    shutdown.await;
    service::stopping();
    stop.cancel();
    runner.await.context("the runner panicked")?;
    outbox_stop.cancel();
    outbox.await.context("the outbox panicked")?;
    tasks.wait().await;
    wind_down(&store, &connector_now).await;
    tracing::info!("stopped");
    Ok(())
}
