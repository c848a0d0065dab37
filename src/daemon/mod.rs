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

mod background;
mod live;
pub mod sockets;
use background::Background;
use live::{Built, Live};
use sockets::Listeners;

/// How long the outbox may keep posting after the runner stopped.
const OUTBOX_DRAIN: Duration = Duration::from_secs(10);

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
    /// A candidate was offered, or a sha's checks changed: the
    /// auto-deployer looks.
    pub auto_deploy: Arc<Notify>,
    /// A pull request command was stored, or a deployment one made ended.
    pub commands: Arc<Notify>,
    /// A run waiting at the protection rule was stored.
    pub protection: Arc<Notify>,
}

impl WakeUps {
    fn all(&self) {
        self.runner.notify_one();
        self.outbox.ring();
        // An unlock another replica made, a lock that ran out: a run
        // waiting at the protection rule may go now.
        self.protection.notify_one();
    }
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
        auto_deploy: wake.auto_deploy.clone(),
        commands: wake.commands.clone(),
        protection: wake.protection.clone(),
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
    crate::http::router(intake, pages, crate::http::MetricsAt::Off)
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

/// What a reload replaces, built once from `config`: the publishers (for
/// the reload) and what the parts read from them.
fn live_parts(config: Config) -> anyhow::Result<(Live, Now)> {
    let built = Built::new(config)?;
    let (config, config_now) = current(built.config);
    let (github, github_now) = current(built.github);
    let (connector, connector_now) = current(built.connector);
    let live = Live {
        config,
        github,
        connector,
    };
    Ok((
        live,
        Now {
            config: config_now,
            github: github_now,
            connector: connector_now,
        },
    ))
}

/// What the parts read, each as it is now (a reload replaces it).
struct Now {
    config: Current<Config>,
    github: Current<GitHub>,
    connector: Current<Connector>,
}

/// The store and the logs. On SQLite the store's directory is held first,
/// before anything is read or migrated, so that a second daemon on it
/// changes nothing; the hold lasts as long as what is returned.
async fn open_storage(
    config: &Config,
) -> anyhow::Result<(
    Option<crate::store::sqlite::holder::DirHold>,
    crate::store::Opened,
    Logs,
)> {
    let hold = match config.storage.backend {
        Backend::Sqlite => Some(crate::store::sqlite::holder::hold(&config.storage.dir)?),
        Backend::Postgres { .. } => None,
    };
    let opened = crate::store::open(&config.storage).await?;
    let logs = Logs::open(
        &config.storage.dir,
        &config.server.public_url,
        opened.database.clone(),
    )
    .await?;
    Ok((hold, opened, logs))
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
    let (_hold, opened, logs) = open_storage(&config).await?;
    let store = opened.store;
    let metrics = crate::metrics::install()?;
    crate::runner::ssh::sweep_control_dir();
    crate::delivery::register(&config);
    let (live, now) = live_parts(config)?;
    let wake = WakeUps::default();
    let heartbeat = Arc::new(Heartbeat::default());

    let mut runner = Runner::new(
        Handles {
            store: store.clone(),
            logs: logs.clone(),
            config: now.config.clone(),
            connector: now.connector.clone(),
            outbox: wake.outbox.clone(),
        },
        wake.runner.clone(),
        heartbeat.clone(),
    );

    // Listen first: deliveries GitHub sends while ferry starts are not
    // redelivered, so nothing slow (a host that does not answer) comes
    // before the socket.
    let listeners = Listeners::bind(&now.config.get().server).await?;
    // The store alone (no host): what the last process left running is
    // taken over before this one claims anything; the runner ends their
    // steps beside intake.
    let interrupted = runner
        .recover()
        .await
        .context("cannot take over interrupted deployments")?;
    announce(listen, now.config.get().targets.len(), interrupted);

    // Two stages: `stop` ends intake, the runner and the background parts;
    // the outbox stops after the runner (`outbox_stop`), so that the final
    // statuses of the deployments it cancelled still go out.
    let stop = CancellationToken::new();
    let outbox_stop = CancellationToken::new();
    let tasks = TaskTracker::new();
    let (intake, pages) = http_parts(&store, &now.config, &logs, &wake);
    let outbox = StatusPoster::new(store.clone(), now.github.clone(), wake.outbox.clone())
        .with_log_links(logs.clone());
    let outbox = tasks.spawn(outbox.run(outbox_stop.clone(), OUTBOX_DRAIN));
    let runner = tasks.spawn(runner.run(stop.clone()));
    Background {
        store: store.clone(),
        logs: logs.clone(),
        config: now.config.clone(),
        github: now.github,
        wake: wake.clone(),
        heartbeat,
        database: opened.database,
        live,
        path,
        intake: intake.clone(),
    }
    .spawn(&tasks, &stop);
    listeners.serve(&tasks, &stop, intake, pages, metrics);
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
    wind_down(&store, &now.connector).await;
    tracing::info!("stopped");
    Ok(())
}
