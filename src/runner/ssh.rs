//! SSH connections (the system `ssh`, multiplexed through a control socket)
//! and running one step on one of them.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use anyhow::Context;
use openssh::{ControlPersist, KnownHosts, Session, SessionBuilder, Stdio};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Semaphore, watch};

use super::remote::{self, RemoteGroup};
use crate::config::{Host, Ssh};
use crate::logs::Stream;

/// Longest line kept whole; longer output is split into pieces this long.
pub const MAX_LINE: usize = 16 * 1024;

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
    idle.lock().unwrap_or_else(|p| p.into_inner())
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

/// Why a running step was interrupted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    Run,
    /// Another host failed: the deployment is over.
    Halt,
    TimedOut,
    Shutdown,
    /// Another process took the deployment over (this one lost its lease).
    LeaseLost,
    /// An operator cancelled it.
    Cancelled,
}

#[derive(Debug, PartialEq, Eq)]
pub enum StepEnd {
    Exited(i32),
    /// The remote process ended without an exit status (a signal), while
    /// the connection stayed up.
    Lost(String),
    /// The connection died while the step ran (the host missed its
    /// keepalives): the step may well still run there.
    ConnectionLost,
    /// The connection could not start the step: nothing ran.
    NotStarted(String),
    /// Stopped on request; `ended` when the kill reached the host (else the
    /// step may still run there).
    Stopped {
        ended: bool,
    },
}

/// Whether the connection's master still answers: after a step ended
/// without a status, this tells a killed step from a lost host.
async fn connection_alive(session: &Session) -> bool {
    matches!(
        tokio::time::timeout(Duration::from_secs(2), session.check()).await,
        Ok(Ok(()))
    )
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
    pub async fn checkout(&self, host: &Host) -> Result<(Session, Connected), String> {
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
                return Ok((session, Connected::Reused(idle_for)));
            }
            tokio::spawn(close_all(vec![session]));
        }
        let (session, took) = self.connect(host).await?;
        Ok((session, Connected::Opened(took)))
    }

    /// Takes back a connection from [`Self::checkout`]: kept for the next
    /// deployment to `host` when `reusable` and idle_timeout allows, else
    /// closed.
    pub async fn release(&self, host: &Host, session: Session, reusable: bool) {
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
    pub async fn connect(&self, host: &Host) -> Result<(Session, Duration), String> {
        let _slot = self
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
                Ok((session, took))
            }
            Ok(Err(e)) => {
                metrics::counter!(crate::metrics::SSH_CONNECT_FAILURES).increment(1);
                let cause = connect_cause(&e, self.ssh.connect_timeout);
                if cause.starts_with("host key mismatch") {
                    // At warning priority: `journalctl -p warning` is where
                    // a man-in-the-middle must show.
                    tracing::warn!(host = %host, "{host}: {cause}");
                }
                Err(cause)
            }
            Err(_) => {
                metrics::counter!(crate::metrics::SSH_CONNECT_FAILURES).increment(1);
                Err(format!(
                    "timed out after {}",
                    humantime::format_duration(limit)
                ))
            }
        }
    }
}

/// Turns ssh's diagnostics into a cause in an operator's words.
pub fn connect_cause(e: &openssh::Error, timeout: Duration) -> String {
    let text = crate::error::error_chain(e);
    let t = text.to_ascii_lowercase();
    if t.contains("remote host identification has changed")
        || t.contains("host key for") && t.contains("has changed")
    {
        host_key_mismatch(&text)
    } else if t.contains("host key is known")
        || t.contains("no matching host key")
        || (t.contains("host key verification failed") && !t.contains("changed"))
    {
        "unknown host key: add the host to ssh.known_hosts_file (ssh-keyscan, then check the fingerprint)".to_string()
    } else if t.contains("permission denied") {
        "authentication refused: check ssh.identity_file and the user's authorized_keys".to_string()
    } else if t.contains("connection refused") {
        "connection refused: nothing listens on the SSH port".to_string()
    } else if t.contains("timed out") {
        format!(
            "connection timed out after {}",
            humantime::format_duration(timeout)
        )
    } else if t.contains("could not resolve") || t.contains("name or service not known") {
        "cannot resolve the host name".to_string()
    } else if t.contains("no route to host") || t.contains("network is unreachable") {
        "host unreachable".to_string()
    } else if t.contains("connection closed")
        || t.contains("connection reset")
        || t.contains("kex_exchange_identification")
    {
        "the host closed the connection during the handshake (sshd MaxStartups or a firewall?)"
            .to_string()
    } else {
        // The last line of ssh's output is usually the one that matters.
        text.lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or(&text)
            .trim()
            .to_string()
    }
}

/// A changed host key in words an operator can check against the host:
/// the fingerprint of the key it offered and the `known_hosts` line it
/// contradicts, both read from ssh's warning.
fn host_key_mismatch(ssh_said: &str) -> String {
    let fingerprint = ssh_said
        .split_whitespace()
        .find(|w| w.starts_with("SHA256:"))
        .map(|w| w.trim_end_matches('.'));
    // "Offending ED25519 key in /etc/ferry/known_hosts:3"
    let offending = ssh_said.lines().find_map(|l| {
        let l = l.trim();
        let rest = l.strip_prefix("Offending ")?;
        let (_, place) = rest.split_once(" key in ")?;
        Some(place.trim().to_string())
    });
    let mut m = String::from("host key mismatch (possible man-in-the-middle): the host offered ");
    match fingerprint {
        Some(f) => m.push_str(&format!("key {f}")),
        None => m.push_str("a different key"),
    }
    match offending {
        Some(place) => m.push_str(&format!(", which contradicts {place}")),
        None => m.push_str(", which contradicts ssh.known_hosts_file"),
    }
    m.push_str(
        "; if the host was rebuilt, check the new fingerprint with its owner and replace that line",
    );
    m
}

/// Runs one step's input through the wrapper; every output line goes to
/// `emit`. Returns when the step ends or `stop` says to stop (after killing
/// the step's process group on the host).
pub async fn run_step(
    session: &Session,
    input: Vec<u8>,
    stop: &mut watch::Receiver<Stop>,
    emit: &(dyn Fn(Stream, &str) + Sync),
    started: &(dyn Fn(&RemoteGroup) + Sync),
) -> StepEnd {
    let mut child = match session
        .raw_command(remote::WRAPPER)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .await
    {
        Ok(c) => c,
        Err(e) => return StepEnd::NotStarted(format!("cannot start the step: {e}")),
    };
    let (Some(mut stdin), Some(stdout), Some(stderr)) = (
        child.stdin().take(),
        child.stdout().take(),
        child.stderr().take(),
    ) else {
        return StepEnd::Lost("ssh gave no stdio for the step".into());
    };
    let pgid = OnceLock::new();
    let feed = async move {
        // A write error means the step already ended; its status says why.
        let _ = stdin.write_all(&input).await;
        let _ = stdin.shutdown().await;
        drop(stdin);
    };
    let io = async {
        tokio::join!(
            feed,
            pump(stdout, Stream::Out, emit, None),
            pump(stderr, Stream::Err, emit, Some((&pgid, started))),
        )
    };
    tokio::pin!(io);
    let stopped = async {
        // A closed channel means the deployment was dropped: also stop.
        let _ = stop.wait_for(|s| *s != Stop::Run).await;
    };
    tokio::select! {
        _ = &mut io => {}
        _ = stopped => {
            let ended = kill_group(session, pgid.get().map(|g: &RemoteGroup| g.pgid), emit).await;
            // Give the streams a moment to deliver the last lines.
            let _ = tokio::time::timeout(Duration::from_secs(5), &mut io).await;
            return StepEnd::Stopped { ended };
        }
    }
    let ended = match child.wait().await {
        Ok(status) => match status.code() {
            Some(code) => return StepEnd::Exited(code),
            None => "the step ended without an exit status (killed by a signal?)".to_string(),
        },
        Err(e) => format!("{e}"),
    };
    // The multiplexer says the same ("the remote process has terminated")
    // when the connection died: only a master that still answers means
    // the step is really gone.
    if connection_alive(session).await {
        StepEnd::Lost(ended)
    } else {
        StepEnd::ConnectionLost
    }
}

/// Kills the step's process group; whether the kill reached the host.
async fn kill_group(
    session: &Session,
    pgid: Option<u32>,
    emit: &(dyn Fn(Stream, &str) + Sync),
) -> bool {
    let Some(pgid) = pgid.filter(|&g| g > 1) else {
        // Nothing announced a group: the step had not started, or its
        // wrapper never ran. Nothing is recorded to hold the host for.
        emit(
            Stream::Ferry,
            "cannot stop the step: its process group is unknown",
        );
        return true;
    };
    let mut kill = session.raw_command(remote::kill_command(pgid));
    match tokio::time::timeout(Duration::from_secs(15), kill.status()).await {
        Ok(Ok(_)) => {
            emit(
                Stream::Ferry,
                &format!("stopped the step (process group {pgid})"),
            );
            true
        }
        Ok(Err(e)) => {
            emit(
                Stream::Ferry,
                &format!("cannot stop the step (process group {pgid}): {e}"),
            );
            false
        }
        Err(_) => {
            emit(
                Stream::Ferry,
                &format!("stopping the step (process group {pgid}) timed out"),
            );
            false
        }
    }
}

/// Reads a stream to its end, emitting lines: invalid UTF-8 replaced, very
/// long lines split. With `group`, the wrapper's first line is taken from
/// it, and announced.
type GroupSink<'a> = (&'a OnceLock<RemoteGroup>, &'a (dyn Fn(&RemoteGroup) + Sync));

async fn pump(
    mut r: impl AsyncRead + Unpin,
    stream: Stream,
    emit: &(dyn Fn(Stream, &str) + Sync),
    pgid: Option<GroupSink<'_>>,
) {
    let mut marker_pending = pgid.is_some();
    let mut line: Vec<u8> = Vec::with_capacity(256);
    let mut buf = vec![0u8; 16 * 1024];
    let flush = |line: &mut Vec<u8>, marker_pending: &mut bool| {
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        let text = String::from_utf8_lossy(line);
        if std::mem::take(marker_pending)
            && let Some(g) = text.strip_prefix(remote::PGID_MARKER)
        {
            if let (Some((cell, started)), Some(g)) = (pgid, RemoteGroup::parse(g)) {
                started(&g);
                let _ = cell.set(g);
            }
        } else {
            emit(stream, &text);
        }
        line.clear();
    };
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        for &b in &buf[..n] {
            if b == b'\n' {
                flush(&mut line, &mut marker_pending);
            } else {
                line.push(b);
                if line.len() >= MAX_LINE {
                    flush(&mut line, &mut marker_pending);
                }
            }
        }
    }
    if !line.is_empty() {
        flush(&mut line, &mut marker_pending);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    async fn pumped(input: &[u8], with_marker: bool) -> (Vec<String>, Option<u32>) {
        let seen = Mutex::new(Vec::new());
        let pgid = OnceLock::new();
        let emit = |_: Stream, t: &str| seen.lock().unwrap().push(t.to_string());
        let started = |_: &RemoteGroup| {};
        pump(
            input,
            Stream::Err,
            &emit,
            with_marker.then_some((&pgid, &started)),
        )
        .await;
        (
            seen.into_inner().unwrap(),
            pgid.get().map(|g: &RemoteGroup| g.pgid),
        )
    }

    #[test]
    fn ferrys_strict_options_come_before_the_operators_config() {
        let dir = tempfile::tempdir().unwrap();
        let extra = dir.path().join("extra.conf");
        std::fs::write(&extra, "Host *\n    StrictHostKeyChecking no\n").unwrap();
        let ssh = Ssh {
            identity_file: Some(dir.path().join("id")),
            known_hosts_file: dir.path().join("known hosts"),
            connect_timeout: Duration::from_secs(7),
            config_file: Some(extra.clone()),
            max_connections: NonZeroUsize::new(8).unwrap(),
            idle_timeout: Duration::ZERO,
            keepalive: Duration::from_secs(4),
        };
        let c = ssh_config(&ssh).unwrap();
        let strict = c.find("StrictHostKeyChecking yes").unwrap();
        let include = c.find("Include ").unwrap();
        assert!(strict < include, "{c}");
        assert!(
            c.contains(&format!(
                "UserKnownHostsFile \"{}\"",
                dir.path().join("known hosts").display()
            )),
            "{c}"
        );
        assert!(c.contains("ConnectTimeout 7"), "{c}");
        assert!(c.contains("ServerAliveInterval 4\n"), "{c}");
        assert!(c.contains("ServerAliveCountMax 3\n"), "{c}");
        assert!(c.contains("IdentitiesOnly yes"), "{c}");
        assert!(
            c.trim_end().ends_with(&format!(
                "Include \"{}\"",
                extra.canonicalize().unwrap().display()
            )),
            "{c}"
        );
        let bad = Ssh {
            known_hosts_file: dir.path().join("a\"b"),
            ..ssh
        };
        assert!(ssh_config(&bad).is_err());
    }

    #[test]
    fn a_changed_host_key_names_the_fingerprint_and_the_line() {
        let said = "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @
@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!
The fingerprint for the ED25519 key sent by the remote host is
SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU.
Please contact your system administrator.
Add correct host key in /etc/ferry/known_hosts to get rid of this message.
Offending ED25519 key in /etc/ferry/known_hosts:3
Host key for [127.0.0.1]:2222 has changed and you have requested strict checking.
Host key verification failed.";
        let cause = host_key_mismatch(said);
        assert!(
            cause.contains("key SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU,"),
            "{cause}"
        );
        assert!(
            cause.contains("contradicts /etc/ferry/known_hosts:3"),
            "{cause}"
        );
    }

    #[tokio::test]
    async fn lines_are_split_decoded_and_the_marker_taken() {
        let (lines, g) = pumped(b"ferry-pgid:4242\nhello\r\nbad \xff byte\nlast", true).await;
        assert_eq!(g, Some(4242));
        assert_eq!(lines, vec!["hello", "bad \u{FFFD} byte", "last"]);
        let long = vec![b'x'; MAX_LINE * 2 + 10];
        let (lines, _) = pumped(&long, false).await;
        assert_eq!(
            lines.iter().map(|l| l.len()).collect::<Vec<_>>(),
            vec![MAX_LINE, MAX_LINE, 10]
        );
        // Only the first line can be the marker.
        let (lines, g) = pumped(b"x\nferry-pgid:1\n", true).await;
        assert_eq!(g, None);
        assert_eq!(lines, vec!["x", "ferry-pgid:1"]);
    }
}
