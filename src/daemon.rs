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
use tokio::sync::{Notify, watch};

use crate::config::Config;
use crate::current::{Current, Publisher, current};
use crate::github::{GitHub, outbox::Outbox};
use crate::logs::Logs;
use crate::logs::page::Pages;
use crate::runner::{Connector, Handles, Runner};
use crate::service::{self, Heartbeat};
use crate::store::SharedStore;
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
        if new.storage.database_url.as_ref().map(|u| u.expose())
            != old.storage.database_url.as_ref().map(|u| u.expose())
        {
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

/// Applies `storage.log_retention` at start and every hour.
async fn prune_logs(logs: Logs, config: Current<Config>, mut stop: watch::Receiver<bool>) {
    loop {
        let retention = config.get().storage.log_retention;
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
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// What other replicas did, as PostgreSQL announces it: new work for the
/// runner and outbox, new lines for live log pages.
async fn listen_to_replicas(pool: sqlx::PgPool, wake: [Arc<Notify>; 2], logs: Logs) {
    let channels = vec![
        crate::store::postgres::WORK_CHANNEL,
        crate::logs::NOTIFY_CHANNEL,
    ];
    crate::store::postgres::listen(pool, channels, |channel, payload| {
        if channel == crate::logs::NOTIFY_CHANNEL {
            if let Ok(id) = payload.parse() {
                logs.changed_elsewhere(id);
            }
        } else {
            for w in &wake {
                w.notify_one();
            }
        }
    })
    .await
}

/// SIGHUP: read the config file again; a bad one changes nothing.
async fn reload_on_hangup(live: Live, wake: [Arc<Notify>; 2], path: &Path) -> anyhow::Result<()> {
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
                    for w in &wake {
                        w.notify_one();
                    }
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

/// The HTTP routes over `store` with no runner, outbox or metrics behind
/// them: what in-process tests and the intake benchmark drive.
pub fn routes_only(config: Config, store: SharedStore, logs: Logs) -> axum::Router {
    let config = Current::fixed(Arc::new(config));
    let intake = Intake {
        store: store.clone(),
        config: config.clone(),
        logs: logs.clone(),
        locks: Default::default(),
        runner: Arc::new(Notify::new()),
        outbox: Arc::new(Notify::new()),
    };
    let pages = Pages {
        store,
        logs,
        config,
    };
    crate::http::router(intake, pages, None)
}

pub async fn serve(config: Config) -> anyhow::Result<()> {
    let path = config.path.clone();
    let listen = config.server.listen;
    let opened = crate::store::open(&config.storage).await?;
    let store = opened.store;
    let logs = Logs::open(
        &config.storage.dir,
        &config.server.public_url,
        opened.postgres.clone(),
    )
    .await?;
    let metrics = Some(crate::metrics::install()?);
    let built = Built::new(config)?;
    let (config, config_now) = current(built.config);
    let (github, github_now) = current(built.github);
    let (connector, connector_now) = current(built.connector);
    let live = Live {
        config,
        github,
        connector,
    };
    let runner_wake = Arc::new(Notify::new());
    let outbox_wake = Arc::new(Notify::new());
    let heartbeat = Arc::new(Heartbeat::default());

    let mut runner = Runner::new(
        Handles {
            store: store.clone(),
            logs: logs.clone(),
            config: config_now.clone(),
            connector: connector_now.clone(),
            outbox: outbox_wake.clone(),
        },
        runner_wake.clone(),
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
        targets = config_now.get().targets.len(),
        open_files,
        "ferry {} serving", env!("CARGO_PKG_VERSION")
    );
    if open_files < 4096 {
        tracing::warn!(
            "the open-file limit is {open_files}: a few thousand idle clients could starve intake; raise it (LimitNOFILE=65536 in the unit)"
        );
    }

    let (stop_tx, stop_rx) = watch::channel(false);
    let (outbox_stop_tx, outbox_stop_rx) = watch::channel(false);
    let reconcile_github = github_now.clone();
    let outbox =
        Outbox::new(store.clone(), github_now, outbox_wake.clone()).with_log_links(logs.clone());
    let outbox = tokio::spawn(outbox.run(outbox_stop_rx, OUTBOX_DRAIN));
    let runner = tokio::spawn(runner.run(stop_rx.clone()));
    tokio::spawn(prune_logs(
        logs.clone(),
        config_now.clone(),
        stop_rx.clone(),
    ));
    tokio::spawn(service::watchdog(heartbeat, stop_rx.clone()));
    let probe_stop = tokio_util::sync::CancellationToken::new();
    let probe = tokio::spawn(crate::health::probe(
        store.clone(),
        opened
            .postgres
            .is_none()
            .then(|| config_now.get().storage.dir.clone()),
        probe_stop.clone(),
    ));
    if let Some(pool) = opened.postgres {
        tokio::spawn(listen_to_replicas(
            pool,
            [runner_wake.clone(), outbox_wake.clone()],
            logs.clone(),
        ));
    }
    let wake = [runner_wake.clone(), outbox_wake.clone()];
    tokio::spawn(async move {
        if let Err(e) = reload_on_hangup(live, wake, &path).await {
            tracing::error!(error = %e, "cannot listen for SIGHUP, reload needs a restart: {e}");
        }
    });
    let intake = Intake {
        store: store.clone(),
        config: config_now.clone(),
        logs: logs.clone(),
        locks: Default::default(),
        runner: runner_wake,
        outbox: outbox_wake,
    };
    let reconciler = tokio::spawn(
        crate::github::reconcile::Reconciler {
            github: reconcile_github,
            config: config_now.clone(),
            intake: intake.clone(),
        }
        .run(probe_stop.clone()),
    );
    let pages = Pages {
        store: store.clone(),
        logs,
        config: config_now,
    };
    let mut http_stop = stop_rx.clone();
    let http = tokio::spawn(crate::http::serve(
        listener,
        crate::http::router(intake, pages, metrics),
        async move {
            let _ = http_stop.wait_for(|s| *s).await;
        },
        // Open connections (a log being read) must not hold the exit hostage.
        Duration::from_secs(5),
    ));
    // The store is open and the socket listens: now, and only now, ready.
    service::ready("serving");

    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
    service::stopping();
    stop_tx.send_replace(true);
    runner.await.context("the runner panicked")?;
    outbox_stop_tx.send_replace(true);
    outbox.await.context("the outbox panicked")?;
    let _ = http.await;
    probe_stop.cancel();
    let _ = probe.await;
    let _ = reconciler.await;
    connector_now.get().close_idle().await;
    let pending = store.pending_statuses().await.unwrap_or(0);
    if pending > 0 {
        tracing::warn!(
            pending,
            "statuses not yet posted; they are sent at the next start"
        );
    }
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}
