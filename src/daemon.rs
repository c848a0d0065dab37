//! `ferry serve`: start every part, reload on SIGHUP, and stop them in
//! order on SIGTERM.
//!
//! Shutdown order: stop taking webhooks and new deployments, give running
//! ones `runner.shutdown_grace`, cancel what is left, then give the outbox a
//! last moment to post the final statuses (what it cannot post waits in the
//! store for the next start).

use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Notify, watch};

use crate::config::Config;
use crate::github::{GitHub, outbox::Outbox};
use crate::logs::Logs;
use crate::runner::{Connector, Runner};
use crate::service::{self, Heartbeat};
use crate::store::Store;

/// How long the outbox may keep posting after the runner stopped.
const OUTBOX_DRAIN: Duration = Duration::from_secs(10);

/// The config in force and what is built from it; replaced whole on reload.
pub struct Live {
    pub config: Arc<Config>,
    pub github: Arc<GitHub>,
    pub connector: Arc<Connector>,
}

impl Live {
    fn build(config: Config) -> anyhow::Result<Live> {
        Ok(Live {
            github: Arc::new(GitHub::new(&config.github)?),
            connector: Arc::new(Connector::new(&config.ssh)?),
            config: Arc::new(config),
        })
    }
}

/// What the HTTP routes, the runner and the outbox share.
#[derive(Clone)]
pub struct Shared {
    live: Arc<RwLock<Arc<Live>>>,
    pub store: Store,
    pub logs: Logs,
    pub runner_wake: Arc<Notify>,
    pub outbox_wake: Arc<Notify>,
    pub heartbeat: Arc<Heartbeat>,
    /// None where no recorder is installed (in-process tests, benchmarks).
    pub metrics: Option<PrometheusHandle>,
}

impl Shared {
    pub fn new(config: Config, store: Store, logs: Logs) -> anyhow::Result<Shared> {
        Ok(Shared {
            live: Arc::new(RwLock::new(Arc::new(Live::build(config)?))),
            store,
            logs,
            runner_wake: Arc::new(Notify::new()),
            outbox_wake: Arc::new(Notify::new()),
            heartbeat: Arc::new(Heartbeat::default()),
            metrics: None,
        })
    }

    pub fn live(&self) -> Arc<Live> {
        self.live.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The config in force now.
    pub fn config(&self) -> Arc<Config> {
        self.live().config.clone()
    }

    /// Puts `new` in force, all of it or (on error) none of it. What cannot
    /// change without a restart is kept, and returned as warnings. Running
    /// deployments keep the target and connection they started with.
    pub fn reload(&self, mut new: Config) -> anyhow::Result<Vec<String>> {
        let old = self.config();
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
        new.server = old.server.clone();
        new.storage.dir = old.storage.dir.clone();
        let live = Live::build(new)?;
        *self.live.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(live);
        self.runner_wake.notify_one();
        self.outbox_wake.notify_one();
        Ok(kept)
    }
}

/// Applies `storage.log_retention` at start and every hour.
async fn prune_logs(shared: Shared, mut stop: watch::Receiver<bool>) {
    loop {
        let retention = shared.config().storage.log_retention;
        let logs = shared.logs.clone();
        match tokio::task::spawn_blocking(move || logs.prune(retention)).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => {
                tracing::info!(removed = n, "removed logs older than storage.log_retention")
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot prune old logs: {e}"),
            Err(e) => tracing::warn!(error = %e, "log pruning panicked: {e}"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// SIGHUP: read the config file again; a bad one changes nothing.
async fn reload_on_hangup(shared: Shared, path: &Path) -> anyhow::Result<()> {
    let mut hup = signal(SignalKind::hangup())?;
    while hup.recv().await.is_some() {
        service::reloading();
        match Config::load(path) {
            Err(e) => tracing::error!("reload refused, the running config stays in force: {e}"),
            Ok(new) => match shared.reload(new) {
                Ok(kept) => {
                    for k in kept {
                        tracing::warn!("reload: {k}");
                    }
                    let c = shared.config();
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

pub async fn serve(config: Config) -> anyhow::Result<()> {
    let path = config.path.clone();
    let listen = config.server.listen;
    let store = Store::open(&config.storage.dir).await?;
    let logs = Logs::open(&config.storage.dir, &config.server.public_url)?;
    let mut shared = Shared::new(config, store.clone(), logs)?;
    shared.metrics = Some(crate::metrics::install()?);
    let runner = Runner::new(shared.clone());
    let interrupted = runner
        .recover()
        .await
        .context("cannot settle interrupted deployments")?;
    if interrupted > 0 {
        tracing::warn!(
            count = interrupted,
            "settled deployments interrupted by the last stop"
        );
    }

    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen} (server.listen)"))?;
    tracing::info!(
        listen = %listen,
        targets = shared.config().targets.len(),
        "ferry {} serving", env!("CARGO_PKG_VERSION")
    );

    let (stop_tx, stop_rx) = watch::channel(false);
    let (outbox_stop_tx, outbox_stop_rx) = watch::channel(false);
    let outbox = tokio::spawn(Outbox::new(shared.clone()).run(outbox_stop_rx, OUTBOX_DRAIN));
    let runner = tokio::spawn(runner.run(stop_rx.clone()));
    tokio::spawn(prune_logs(shared.clone(), stop_rx.clone()));
    tokio::spawn(service::watchdog(shared.heartbeat.clone(), stop_rx.clone()));
    let reloader = shared.clone();
    tokio::spawn(async move {
        if let Err(e) = reload_on_hangup(reloader, &path).await {
            tracing::error!(error = %e, "cannot listen for SIGHUP, reload needs a restart: {e}");
        }
    });
    let mut http_stop = stop_rx.clone();
    let http = tokio::spawn(
        axum::serve(listener, crate::http::router(shared.clone()))
            .with_graceful_shutdown(async move {
                let _ = http_stop.wait_for(|s| *s).await;
            })
            .into_future(),
    );
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
    // Open connections (a log being read) must not hold the exit hostage.
    let _ = tokio::time::timeout(Duration::from_secs(5), http).await;
    shared.live().connector.close_idle().await;
    let pending = shared.store.pending_statuses().await.unwrap_or(0);
    if pending > 0 {
        tracing::warn!(
            pending,
            "statuses not yet posted; they are sent at the next start"
        );
    }
    shared.store.close().await;
    tracing::info!("stopped");
    Ok(())
}
