//! SSH connections (the system `ssh`, multiplexed through a control socket)
//! and running one step on one of them.

#[cfg(test)]
use super::connect_cause::host_key_mismatch;
use super::connect_cause::{UNKNOWN_HOST_KEY, connect_cause};
use crate::sync::LockExt;
use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use anyhow::Context;
use openssh::{ControlPersist, KnownHosts, Session, SessionBuilder};
use tokio::sync::Semaphore;

use super::link::Link;
use crate::config::{Host, Ssh};

pub struct Connector {
    ssh: Ssh,
    control_dir: PathBuf,
    /// ssh_config written by ferry; see [`ssh_config`].
    config_file: PathBuf,
    handshakes: Semaphore,
    idle: Arc<Idle>,
}

/// Connections deployments have finished with, by host spec, newest last,
/// with when each was handed back. One deployment at a time uses a
/// connection, so its sessions stay within sshd's `MaxSessions` as before.
type Idle = Mutex<HashMap<String, Vec<(Session, Instant)>>>;

/// How a deployment got its connection to a host.
pub enum Connected {
    Opened(Duration),
    /// Left open by an earlier deployment this long ago, and alive.
    Reused(Duration),
}

impl Drop for Connector {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.config_file);
        // A reload replaced this connector: what it kept open goes now.
        let idle = self.take_idle();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(close_all(idle));
        }
    }
}

fn lock(idle: &Idle) -> std::sync::MutexGuard<'_, HashMap<String, Vec<(Session, Instant)>>> {
    idle.locked()
}

async fn close_all(sessions: Vec<Session>) {
    futures_util::future::join_all(sessions.into_iter().map(|s| async {
        if let Err(e) = s.close().await {
            tracing::debug!(error = %e, "closing an idle SSH connection");
        }
    }))
    .await;
}

/// Closes connections idle longer than `timeout` until the connector goes.
async fn reap(idle: Weak<Idle>, timeout: Duration) {
    let tick = timeout.clamp(Duration::from_millis(100), Duration::from_secs(5));
    loop {
        tokio::time::sleep(tick).await;
        let Some(idle) = idle.upgrade() else { return };
        let expired = take_expired(&idle, timeout);
        drop(idle);
        close_all(expired).await;
    }
}

fn take_expired(idle: &Idle, timeout: Duration) -> Vec<Session> {
    let mut expired = Vec::new();
    let mut idle = lock(idle);
    for sessions in idle.values_mut() {
        let (old, fresh): (Vec<_>, Vec<_>) = sessions
            .drain(..)
            .partition(|(_, since)| since.elapsed() >= timeout);
        *sessions = fresh;
        expired.extend(old.into_iter().map(|(s, _)| s));
    }
    idle.retain(|_, v| !v.is_empty());
    expired
}

/// Quotes a path for ssh_config.
fn config_path(p: &Path) -> anyhow::Result<String> {
    let s = p
        .to_str()
        .ok_or_else(|| anyhow::anyhow!("{} is not UTF-8", p.display()))?;
    if s.contains('"') || s.contains('\n') {
        anyhow::bail!("{s:?}: ssh_config cannot name a path with '\"' or a newline");
    }
    Ok(format!("\"{s}\""))
}

/// The ssh_config every connection uses. ssh takes the first value it finds
/// for an option, so ferry's strict settings come first and hold for every
/// hop, ProxyJump hosts included (a jump `ssh` gets `-F` but not `-o`); the
/// operator's `ssh.config_file` is included after them for everything else:
/// host names, users, ports, ProxyJump.
pub fn ssh_config(ssh: &Ssh) -> anyhow::Result<String> {
    let mut c = String::from(
        "# Written by ferry at start; edit ssh.config_file instead.\nHost *\n    StrictHostKeyChecking yes\n    GlobalKnownHostsFile /dev/null\n    BatchMode yes\n",
    );
    c.push_str(&format!(
        "    ServerAliveInterval {}\n    ServerAliveCountMax {}\n",
        ssh.keepalive.as_secs().max(1),
        crate::config::KEEPALIVES_MISSED
    ));
    c.push_str(&format!(
        "    UserKnownHostsFile {}\n",
        config_path(&ssh.known_hosts_file)?
    ));
    c.push_str(&format!(
        "    ConnectTimeout {}\n",
        ssh.connect_timeout.as_secs().max(1)
    ));
    if let Some(id) = &ssh.identity_file {
        c.push_str(&format!(
            "    IdentityFile {}\n    IdentitiesOnly yes\n",
            config_path(id)?
        ));
    }
    if let Some(extra) = &ssh.config_file {
        let extra = std::fs::canonicalize(extra)
            .map_err(|e| anyhow::anyhow!("ssh.config_file {}: {e}", extra.display()))?;
        c.push_str(&format!("Include {}\n", config_path(&extra)?));
    }
    Ok(c)
}

/// A short, ferry-owned directory for control sockets: Unix socket paths
/// are limited to about 100 bytes, so `storage.dir` may be too long.
pub fn control_dir() -> anyhow::Result<PathBuf> {
    let dir = if let Some(d) = std::env::var_os("RUNTIME_DIRECTORY") {
        // systemd may list several, colon-separated; ours is the first.
        let first = d
            .to_string_lossy()
            .split(':')
            .next()
            .unwrap_or_default()
            .to_string();
        PathBuf::from(first)
    } else if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR") {
        PathBuf::from(d).join("ferry")
    } else {
        let uid = std::fs::metadata("/proc/self")
            .map(|m| m.uid())
            .unwrap_or(0);
        PathBuf::from(format!("/tmp/ferry-{uid}"))
    };
    ensure_private_dir(&dir)?;
    Ok(dir)
}

/// Removes what processes that died without cleaning up (`kill -9`) left
/// in the control directory: their ssh_config files, and the connection
/// directories whose master no longer answers. Files of live processes
/// (a CLI command beside the daemon, another replica) stay.
pub fn sweep_control_dir() {
    let Ok(dir) = control_dir() else { return };
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        let stale = if let Some(rest) = name.strip_prefix("ssh_config.") {
            // ssh_config.<pid>.<n>
            rest.split('.')
                .next()
                .and_then(|p| p.parse::<i32>().ok())
                // SAFETY: signal 0 only asks whether the process exists.
                .is_some_and(|pid| unsafe { libc::kill(pid, 0) } != 0 && pid != 0)
        } else if name.starts_with(".ssh-connection") {
            // Not one another process is setting up this moment.
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().is_ok_and(|e| e > Duration::from_secs(60)));
            let master = path.join("master");
            old && (!master.exists() || std::os::unix::net::UnixStream::connect(&master).is_err())
        } else {
            false
        };
        if stale {
            let gone = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            removed += usize::from(gone.is_ok());
        }
    }
    if removed > 0 {
        tracing::debug!(
            removed,
            "removed {removed} SSH control files left by processes that ended without cleaning up"
        );
    }
}

fn ensure_private_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create SSH control directory {}", dir.display()))?;
    let meta = std::fs::metadata(dir)?;
    let me = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(meta.uid());
    if meta.uid() != me {
        anyhow::bail!(
            "SSH control directory {} belongs to uid {}, not to ferry (uid {me}); remove it or set RUNTIME_DIRECTORY",
            dir.display(),
            meta.uid()
        );
    }
    if meta.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

impl Connector {
    pub fn new(ssh: &Ssh) -> anyhow::Result<Connector> {
        let control_dir = control_dir()?;
        // One file per connector: processes may share the directory, and a
        // reload makes a new connector while running deployments keep the old.
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let config_file = control_dir.join(format!("ssh_config.{}.{n}", std::process::id()));
        std::fs::write(&config_file, ssh_config(ssh)?)
            .with_context(|| format!("cannot write {}", config_file.display()))?;
        let idle = Arc::new(Mutex::new(HashMap::new()));
        if !ssh.idle_timeout.is_zero()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(reap(Arc::downgrade(&idle), ssh.idle_timeout));
        }
        Ok(Connector {
            ssh: ssh.clone(),
            control_dir,
            config_file,
            handshakes: Semaphore::new(ssh.max_connections.get()),
            idle,
        })
    }

    /// A connection for one deployment: one left idle for this host if it
    /// is still alive, else a new one. Give it back with [`Self::release`].
    pub async fn checkout(&self, host: &Host) -> Result<(Link, Connected), String> {
        if host.is_local() {
            return Ok((Link::Local, Connected::Opened(Duration::ZERO)));
        }
        let spec = host.spec();
        loop {
            let Some((session, since)) = lock(&self.idle).get_mut(&spec).and_then(Vec::pop) else {
                break;
            };
            let idle_for = since.elapsed();
            // The master may have died meanwhile (host rebooted, network).
            let alive = idle_for < self.ssh.idle_timeout
                && matches!(
                    tokio::time::timeout(Duration::from_secs(2), session.check()).await,
                    Ok(Ok(()))
                );
            if alive {
                metrics::counter!(crate::metrics::SSH_CONNECTIONS_REUSED).increment(1);
                return Ok((Link::Ssh(session), Connected::Reused(idle_for)));
            }
            tokio::spawn(close_all(vec![session]));
        }
        let (link, took) = self.connect(host).await?;
        Ok((link, Connected::Opened(took)))
    }

    /// Takes back a connection from [`Self::checkout`]: kept for the next
    /// deployment to `host` when `reusable` and idle_timeout allows, else
    /// closed.
    pub async fn release(&self, host: &Host, link: Link, reusable: bool) {
        let Link::Ssh(session) = link else {
            return;
        };
        if !reusable || self.ssh.idle_timeout.is_zero() {
            close_all(vec![session]).await;
            return;
        }
        lock(&self.idle)
            .entry(host.spec())
            .or_default()
            .push((session, Instant::now()));
    }

    /// Closes every idle connection, for a clean exit.
    pub async fn close_idle(&self) {
        close_all(self.take_idle()).await;
    }

    fn take_idle(&self) -> Vec<Session> {
        lock(&self.idle)
            .drain()
            .flat_map(|(_, kept)| kept.into_iter().map(|(s, _)| s))
            .collect()
    }

    /// Opens a connection; the error is a cause an operator can act on.
    pub async fn connect(&self, host: &Host) -> Result<(Link, Duration), String> {
        if host.is_local() {
            return Ok((Link::Local, Duration::ZERO));
        }
        let slot = self
            .handshakes
            .acquire()
            .await
            .map_err(|_| "ferry is shutting down".to_string())?;
        let mut b = SessionBuilder::default();
        b.known_hosts_check(KnownHosts::Strict)
            .user_known_hosts_file(&self.ssh.known_hosts_file)
            .connect_timeout(self.ssh.connect_timeout)
            .server_alive_interval(self.ssh.keepalive)
            .control_directory(&self.control_dir)
            // If ferry dies, masters exit once idle instead of living
            // forever; while it lives, they outlast ssh.idle_timeout.
            .control_persist(ControlPersist::IdleFor(
                NonZeroUsize::new(60.max(self.ssh.idle_timeout.as_secs() as usize + 10))
                    .expect("at least 60"),
            ));
        if let Some(k) = &self.ssh.identity_file {
            b.keyfile(k);
        }
        b.config_file(&self.config_file);
        if let Some(u) = &host.user {
            b.user(u.clone());
        }
        if let Some(p) = host.port {
            b.port(p);
        }
        let started = Instant::now();
        // ssh's ConnectTimeout covers the TCP connect only; this bounds the
        // whole handshake too.
        let limit = self.ssh.connect_timeout + Duration::from_secs(5);
        match tokio::time::timeout(limit, b.connect_mux(&host.name)).await {
            Ok(Ok(session)) => {
                let took = started.elapsed();
                metrics::histogram!(crate::metrics::SSH_CONNECT_SECONDS).record(took.as_secs_f64());
                Ok((Link::Ssh(session), took))
            }
            Ok(Err(e)) => {
                metrics::counter!(crate::metrics::SSH_CONNECT_FAILURES).increment(1);
                let mut cause = connect_cause(&e, self.ssh.connect_timeout);
                if cause.starts_with(UNKNOWN_HOST_KEY) {
                    // The handshake is over: the scan for the key the host
                    // offers (up to 8 s) must not hold a handshake slot.
                    drop(slot);
                    cause = crate::known_hosts::unknown_key(host, &self.ssh.known_hosts_file).await;
                }
                // At warning priority: `journalctl -p warning` is where a
                // man-in-the-middle, an unknown key or a host that does not
                // answer must show.
                tracing::warn!(host = %host, "{host}: {cause}");
                Err(cause)
            }
            Err(_) => {
                metrics::counter!(crate::metrics::SSH_CONNECT_FAILURES).increment(1);
                Err(format!(
                    "timed out after {}",
                    crate::format::duration(limit)
                ))
            }
        }
    }
}

#[cfg(test)]
#[path = "ssh_tests.rs"]
mod tests;
