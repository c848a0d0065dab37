//! The listening sockets: bound by ferry from `server.listen` and
//! `server.metrics_listen`, or handed over by the service manager
//! (systemd's socket activation, `LISTEN_FDS`).
//!
//! A socket handed over is matched to the key naming its address, so the
//! config stays the one place that says where ferry listens; an address
//! no socket was handed over for is bound here. Handing over also keeps
//! the port through a restart: the service manager holds it while no
//! ferry runs, and nothing else can take it in between.

use std::net::{SocketAddr, TcpListener as StdListener};
use std::os::fd::{FromRawFd, RawFd};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::logs::page::Pages;
use crate::webhook::Intake;

/// What the service manager handed over, taken once by `inherit` (before
/// any thread starts) and given out by `Listeners::bind`.
static HANDED_OVER: Mutex<Vec<Handed>> = Mutex::new(Vec::new());

struct Handed {
    fd: RawFd,
    socket: std::io::Result<StdListener>,
}

/// Takes the sockets systemd passed (`LISTEN_PID` naming this process,
/// `LISTEN_FDS` counting them from descriptor 3) and unsets the variables,
/// so that ssh and the step processes do not inherit them.
///
/// # Safety
/// Call before any other thread exists (it changes the environment), and
/// only once: each descriptor is owned from here on.
pub unsafe fn inherit() -> anyhow::Result<()> {
    // SAFETY: the caller runs this before any thread starts.
    let fds = unsafe { sd_notify::listen_fds_and_unset_env() }
        .context("cannot read the sockets systemd passed (LISTEN_FDS)")?;
    let mut handed = HANDED_OVER.lock().unwrap_or_else(|p| p.into_inner());
    for fd in fds {
        // SAFETY: systemd passes these descriptors to this process alone,
        // and `listen_fds` returns each once.
        let socket = unsafe { StdListener::from_raw_fd(fd) };
        let socket = socket.local_addr().map(|_| socket);
        handed.push(Handed { fd, socket });
    }
    Ok(())
}

/// The socket handed over for `at`, if any; an error for a descriptor that
/// is not a TCP socket.
fn handed_over(at: SocketAddr) -> anyhow::Result<Option<StdListener>> {
    let mut handed = HANDED_OVER.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(bad) = handed.iter().find(|h| h.socket.is_err()) {
        anyhow::bail!(
            "descriptor {} that systemd passed is not a listening TCP socket: \
             ferry takes only ListenStream= sockets",
            bad.fd
        );
    }
    let found = handed.iter().position(|h| {
        h.socket
            .as_ref()
            .is_ok_and(|s| s.local_addr().ok() == Some(at))
    });
    Ok(found.and_then(|i| handed.remove(i).socket.ok()))
}

/// The sockets handed over that no key names: an error, since a socket
/// systemd listens on that ferry never answers would hang its clients.
fn left_over() -> anyhow::Result<()> {
    let handed = HANDED_OVER.lock().unwrap_or_else(|p| p.into_inner());
    match handed.first().and_then(|h| h.socket.as_ref().ok()) {
        Some(s) => anyhow::bail!(
            "systemd passed a socket on {}, which neither server.listen nor \
             server.metrics_listen names: make ListenStream= and the config agree",
            s.local_addr().map(|a| a.to_string()).unwrap_or_default()
        ),
        None => Ok(()),
    }
}

async fn listen(at: SocketAddr, key: &str) -> anyhow::Result<tokio::net::TcpListener> {
    if let Some(socket) = handed_over(at)? {
        socket
            .set_nonblocking(true)
            .with_context(|| format!("cannot use the socket systemd passed for {at} ({key})"))?;
        tracing::info!(%at, "listening on the socket systemd passed ({key})");
        return Ok(tokio::net::TcpListener::from_std(socket)?);
    }
    tokio::net::TcpListener::bind(at)
        .await
        .with_context(|| format!("cannot listen on {at} ({key})"))
}

/// The sockets, bound before anything slow: `server.listen`, and
/// `server.metrics_listen` when set.
pub(super) struct Listeners {
    webhook: tokio::net::TcpListener,
    metrics: Option<tokio::net::TcpListener>,
}

impl Listeners {
    pub(super) async fn bind(server: &crate::config::Server) -> anyhow::Result<Listeners> {
        let webhook = listen(server.listen, "server.listen").await?;
        let metrics = match server.metrics_listen {
            Some(at) => Some(listen(at, "server.metrics_listen").await?),
            None => None,
        };
        left_over()?;
        Ok(Listeners { webhook, metrics })
    }

    /// Serves the routes until `stop`; `/metrics` on its own listener
    /// when there is one.
    pub(super) fn serve(
        self,
        tasks: &TaskTracker,
        stop: &CancellationToken,
        intake: Intake,
        pages: Pages,
        metrics: PrometheusHandle,
    ) {
        // Open connections (a log being read) must not hold the exit hostage.
        const DRAIN: Duration = Duration::from_secs(5);
        let metrics_here = match self.metrics {
            Some(l) => {
                let stop = stop.clone();
                tasks.spawn(crate::http::serve(
                    l,
                    crate::http::metrics_router(metrics),
                    async move { stop.cancelled().await },
                    DRAIN,
                ));
                crate::http::MetricsAt::Elsewhere
            }
            None => crate::http::MetricsAt::Here(metrics),
        };
        let stop = stop.clone();
        tasks.spawn(crate::http::serve(
            self.webhook,
            crate::http::router(intake, pages, metrics_here),
            async move { stop.cancelled().await },
            DRAIN,
        ));
    }
}
