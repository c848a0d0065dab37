//! `ferry serve`: start every part, and stop them in order on SIGTERM.
//!
//! Shutdown order: stop taking webhooks and new deployments, give running
//! ones `runner.shutdown_grace`, cancel what is left, then give the outbox a
//! last moment to post the final statuses (what it cannot post waits in the
//! store for the next start).

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
use crate::store::Store;

/// How long the outbox may keep posting after the runner stopped.
const OUTBOX_DRAIN: Duration = Duration::from_secs(10);

/// What the HTTP routes, the runner and the outbox share.
#[derive(Clone)]
pub struct Shared {
    config: Arc<RwLock<Arc<Config>>>,
    pub store: Store,
    pub logs: Logs,
    pub runner_wake: Arc<Notify>,
    pub outbox_wake: Arc<Notify>,
    /// None where no recorder is installed (in-process tests, benchmarks).
    pub metrics: Option<PrometheusHandle>,
}

impl Shared {
    pub fn new(config: Arc<Config>, store: Store, logs: Logs) -> Shared {
        Shared {
            config: Arc::new(RwLock::new(config)),
            store,
            logs,
            runner_wake: Arc::new(Notify::new()),
            outbox_wake: Arc::new(Notify::new()),
            metrics: None,
        }
    }

    /// The config in force now.
    pub fn config(&self) -> Arc<Config> {
        self.config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
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
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot prune old logs"),
            Err(e) => tracing::warn!(error = %e, "log pruning panicked"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

pub async fn serve(config: Config) -> anyhow::Result<()> {
    let config = Arc::new(config);
    let store = Store::open(&config.storage.dir).await?;
    let logs = Logs::open(&config.storage.dir, &config.server.public_url)?;
    let github = Arc::new(GitHub::new(&config.github)?);
    let connector = Connector::new(&config.ssh)?;
    let mut shared = Shared::new(config.clone(), store.clone(), logs);
    shared.metrics = Some(crate::metrics::install()?);
    let runner = Runner::new(shared.clone(), connector);
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

    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {} (server.listen)", config.server.listen))?;
    tracing::info!(
        listen = %config.server.listen,
        targets = config.targets.len(),
        "ferry {} serving", env!("CARGO_PKG_VERSION")
    );

    let (stop_tx, stop_rx) = watch::channel(false);
    let (outbox_stop_tx, outbox_stop_rx) = watch::channel(false);
    let outbox = tokio::spawn(
        Outbox {
            store,
            github,
            wake: shared.outbox_wake.clone(),
        }
        .run(outbox_stop_rx, OUTBOX_DRAIN),
    );
    let runner = tokio::spawn(runner.run(stop_rx.clone()));
    tokio::spawn(prune_logs(shared.clone(), stop_rx.clone()));
    let mut http_stop = stop_rx.clone();
    let http = tokio::spawn(
        axum::serve(listener, crate::http::router(shared.clone()))
            .with_graceful_shutdown(async move {
                let _ = http_stop.wait_for(|s| *s).await;
            })
            .into_future(),
    );

    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
    stop_tx.send_replace(true);
    runner.await.context("the runner panicked")?;
    outbox_stop_tx.send_replace(true);
    outbox.await.context("the outbox panicked")?;
    // Open connections (a log being read) must not hold the exit hostage.
    let _ = tokio::time::timeout(Duration::from_secs(5), http).await;
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
