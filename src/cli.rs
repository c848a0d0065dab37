//! The subcommands other than `serve`.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context, bail};
use tokio::task::JoinSet;

use crate::config::{Config, GitHubAuth, Host, Steering};
use crate::format::duration;
use crate::logs::{self, Logs};
use crate::runner::Connector;
use crate::store::{DeploymentId, now_ms};

/// A failure already reported to the user; main only sets the exit status.
#[derive(Debug)]
pub struct Failed;

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("failed")
    }
}

impl std::error::Error for Failed {}

/// Structured logs to the journal when systemd started us (fields such as
/// DEPLOYMENT, REPOSITORY, ENVIRONMENT, DELIVERY), else human-readable on
/// stderr. `RUST_LOG` picks what is shown either way.
pub fn init_tracing(daemon: bool) {
    use tracing_subscriber::EnvFilter;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    // The other commands say what they have to say themselves: the parts
    // they share with the daemon (the SSH connector, the store) log for a
    // journal, and those lines on a terminal repeated the command's own
    // output. RUST_LOG still shows them.
    let default = if daemon { "info" } else { "off" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    if daemon
        && std::env::var_os("JOURNAL_STREAM").is_some()
        && let Ok(journald) = tracing_journald::layer()
    {
        // Fields as operators type them: `journalctl -u ferry DEPLOYMENT=5001`
        // (the default prefix would make that F_DEPLOYMENT).
        let journald = journald.with_field_prefix(None);
        tracing_subscriber::registry()
            .with(filter)
            .with(journald)
            .init();
        return;
    }
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour(&std::io::stderr()))
        .init();
}

/// Whether to colour what goes to `out`: a terminal, unless `NO_COLOR` is
/// set to anything but the empty string (no-color.org).
pub fn colour(out: &impl std::io::IsTerminal) -> bool {
    out.is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

pub async fn check_config(c: &Config) -> anyhow::Result<()> {
    // Everything but the database was checked while loading; the database
    // is checked by asking it.
    let database = match &c.storage.database_url {
        None => None,
        Some(url) => match crate::store::postgres::ping(url.expose_str()).await {
            Ok(about) => Some(about),
            Err(e) => {
                eprintln!(
                    "{}: storage.database_url: PostgreSQL does not answer: {e:#}",
                    c.path.display()
                );
                return Err(Failed.into());
            }
        },
    };
    let hosts: usize = c.targets.iter().map(|t| t.hosts.len()).sum();
    let steps: usize = c.targets.iter().map(|t| t.steps.len()).sum();
    println!(
        "{}: ok: {} target{}, {hosts} host{}, {steps} step{}",
        c.path.display(),
        c.targets.len(),
        if c.targets.len() == 1 { "" } else { "s" },
        if hosts == 1 { "" } else { "s" },
        if steps == 1 { "" } else { "s" },
    );
    println!(
        "  listen {}, public_url {}",
        c.server.listen, c.server.public_url
    );
    let auth = match &c.github.auth {
        GitHubAuth::Token(_) => "token".to_string(),
        GitHubAuth::App { app_id, .. } => format!("GitHub App {app_id}"),
    };
    println!(
        "  github {} ({auth}), {} webhook secret{}",
        c.github.api_url,
        c.github.webhook_secrets.len(),
        if c.github.webhook_secrets.len() == 1 {
            ""
        } else {
            "s"
        }
    );
    match database {
        Some(about) => println!("  storage PostgreSQL {about}"),
        // The directory as ferry will use it, not as the file spells it.
        None => println!(
            "  storage {}",
            std::fs::canonicalize(&c.storage.dir)
                .unwrap_or_else(|_| c.storage.dir.clone())
                .display()
        ),
    }
    for t in &c.targets {
        let parallel = t.parallel.map_or("all".to_string(), |p| p.to_string());
        let names: Vec<&str> = t.steps.iter().map(|s| s.name.as_str()).collect();
        println!(
            "  target {} {} (task {}): {} host{} ({parallel} at a time), steps: {}, timeout {}",
            t.repository,
            t.environment,
            t.task,
            t.hosts.len(),
            if t.hosts.len() == 1 { "" } else { "s" },
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            },
            duration(t.timeout),
        );
        if !t.checks.is_empty() {
            let checks: Vec<String> = t
                .checks
                .iter()
                .map(|c| {
                    format!(
                        "{} (within {}, every {})",
                        c.name,
                        duration(c.within),
                        duration(c.interval)
                    )
                })
                .collect();
            println!(
                "    checks on each host, batch by batch: {}",
                checks.join(", ")
            );
        }
        if !t.teardown.is_empty() || t.teardown_after.is_some() {
            let names: Vec<&str> = t.teardown.iter().map(|s| s.name.as_str()).collect();
            println!(
                "    teardown steps: {}{}",
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                },
                t.teardown_after.map_or(String::new(), |a| format!(
                    ", transient environments torn down {} after their latest deployment",
                    duration(a)
                )),
            );
        }
    }
    // A host whose key is not in known_hosts cannot be reached; with an
    // ssh_config the names may be aliases, which only ssh resolves.
    let empty_known_hosts = c.warnings.iter().any(|w| w.key == "ssh.known_hosts_file");
    if c.ssh.config_file.is_none() && !empty_known_hosts {
        for t in &c.targets {
            for h in t.hosts.iter().filter(|h| !h.is_local()) {
                if crate::known_hosts::fingerprints(&c.ssh.known_hosts_file, h).is_empty() {
                    println!(
                        "warning: {}: ssh.known_hosts_file has no key for {} ({}): connections to it will be refused; add it with `ssh-keyscan -H{} {} >> {}` and compare the fingerprint",
                        c.path.display(),
                        h.spec(),
                        crate::known_hosts::lookup_name(h),
                        h.port
                            .filter(|p| *p != 22)
                            .map_or(String::new(), |p| format!(" -p {p}")),
                        h.name,
                        c.ssh.known_hosts_file.display()
                    );
                }
            }
        }
    }
    let now = jiff::Timestamp::now();
    for f in &c.freezes {
        let globs = |g: &[String], all: &str| {
            if g.is_empty() {
                all.to_string()
            } else {
                g.join(", ")
            }
        };
        let when = match f.next(now) {
            None => "no window ahead".to_string(),
            Some(w) => {
                let local = |t: jiff::Timestamp| {
                    t.to_zoned(f.timezone.clone())
                        .strftime("%a %Y-%m-%d %H:%M %Z")
                        .to_string()
                };
                let utc = |t: jiff::Timestamp| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
                format!(
                    "{} {} - {} ({} - {})",
                    if w.start <= now {
                        "in force now:"
                    } else {
                        "next window"
                    },
                    local(w.start),
                    local(w.end),
                    utc(w.start),
                    utc(w.end)
                )
            }
        };
        println!(
            "  freeze {} ({} in {}, {}): {when}",
            f.name,
            globs(&f.environments, "every environment"),
            globs(&f.repositories, "every repository"),
            f.timezone_name,
        );
    }
    for w in &c.warnings {
        println!("warning: {}", w.at(&c.path));
    }
    Ok(())
}

pub async fn check_hosts(c: &Config, only: Option<&str>) -> anyhow::Result<()> {
    let mut hosts: Vec<(String, Host)> = Vec::new();
    for t in &c.targets {
        let label = format!("{}:{}", t.repository, t.environment);
        if only.is_some_and(|o| o != label) {
            continue;
        }
        for h in &t.hosts {
            if !hosts.iter().any(|(_, seen)| seen == h) {
                hosts.push((label.clone(), h.clone()));
            }
        }
    }
    if hosts.is_empty() {
        bail!(
            "no target {} (targets are named REPO:ENV as in the config)",
            only.unwrap_or_default()
        );
    }
    let connector = Arc::new(Connector::new(&c.ssh)?);
    let mut checks = JoinSet::new();
    for (i, (_, host)) in hosts.iter().enumerate() {
        let connector = connector.clone();
        let host = host.clone();
        // The connector bounds concurrent handshakes.
        checks.spawn(async move {
            let result = match connector.connect(&host).await {
                Ok((link, took)) => {
                    let ran = link.status("true").await;
                    link.close().await;
                    match ran {
                        Ok(s) if s.success() => Ok(took),
                        Ok(s) => Err(format!("`true` exited with {s}")),
                        Err(e) => Err(format!("connected, but cannot run a command: {e}")),
                    }
                }
                Err(cause) => Err(cause),
            };
            (i, result)
        });
    }
    let mut results = vec![None; hosts.len()];
    while let Some(joined) = checks.join_next().await {
        let (i, r) = joined.context("a host check panicked")?;
        results[i] = Some(r);
    }
    let width = hosts
        .iter()
        .map(|(_, h)| h.spec().len())
        .max()
        .unwrap_or(4)
        .max(4);
    println!(
        "{:<width$}  {:<6}  {:>8}  {:<51}  TARGET / CAUSE",
        "HOST", "RESULT", "CONNECT", "TRUSTED KEY (known_hosts)"
    );
    let mut failed = 0;
    for ((label, host), r) in hosts.iter().zip(results) {
        let trusted = crate::known_hosts::fingerprints(&c.ssh.known_hosts_file, host);
        let trusted = if trusted.is_empty() {
            "-".to_string()
        } else {
            trusted.join(" ")
        };
        match r.expect("every check reports") {
            Ok(took) => println!(
                "{:<width$}  {:<6}  {:>8}  {trusted:<51}  {label}",
                host.spec(),
                "ok",
                duration(took)
            ),
            Err(cause) => {
                failed += 1;
                println!(
                    "{:<width$}  {:<6}  {:>8}  {trusted:<51}  {label}: {cause}",
                    host.spec(),
                    "FAILED",
                    "-"
                );
            }
        }
    }
    if failed > 0 {
        eprintln!("error: {failed} of {} hosts failed", hosts.len());
        return Err(Failed.into());
    }
    Ok(())
}

pub(crate) async fn open_store(c: &Steering) -> anyhow::Result<crate::store::Opened> {
    if c.storage.database_url.is_none() {
        if !c.db_path().exists() {
            bail!(
                "no deployments yet: {} does not exist (is storage.dir right, and has `ferry serve` run?)",
                c.db_path().display()
            );
        }
        become_storage_owner(&c.storage.dir)?;
    }
    crate::store::open(&c.storage).await
}

/// Run as root, the CLI takes on the user and group that own
/// `storage.dir` (the daemon's), so that the files SQLite and the logs make
/// beside the database (`-wal`, `-shm`, a log) are never root's: the
/// daemon could not write them later.
fn become_storage_owner(dir: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(());
    }
    let meta = std::fs::metadata(dir)
        .with_context(|| format!("cannot read storage.dir {}", dir.display()))?;
    if meta.uid() == 0 {
        return Ok(());
    }
    // SAFETY: plain system calls on integers; each result is checked.
    // glibc applies set*id to every thread of the process.
    let dropped = unsafe {
        libc::setgroups(0, std::ptr::null()) == 0
            && libc::setgid(meta.gid()) == 0
            && libc::setuid(meta.uid()) == 0
    };
    if !dropped {
        bail!(
            "cannot switch to the owner of {} (uid {}): {}",
            dir.display(),
            meta.uid(),
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// Where the deployments are, for messages.
pub(crate) fn where_stored(c: &Steering) -> String {
    match &c.storage.database_url {
        Some(_) => "the PostgreSQL database (storage.database_url)".into(),
        None => c.db_path().display().to_string(),
    }
}

pub(crate) fn clock(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Which deployments `ferry deployments` lists.
pub struct ListOptions {
    pub limit: u32,
    /// `REPO:ENV`.
    pub environment: Option<(String, String)>,
    /// One of [`crate::store::STATE_WORDS`].
    pub state: Option<String>,
    pub json: bool,
}

/// Deployments read to filter from: the most recent, whatever the filter.
const FILTERED_FROM: i64 = 10_000;

/// A time as `--json` writes it: RFC 3339, or null.
pub(crate) fn json_time(ms: Option<i64>) -> serde_json::Value {
    ms.map_or(serde_json::Value::Null, |t| clock(t).into())
}

/// A deployment as `--json` writes it (`ferry deployments`, `ferry show`),
/// field names as the README documents them.
pub(crate) fn deployment_json(
    d: &crate::store::Deployment,
) -> serde_json::Map<String, serde_json::Value> {
    let serde_json::Value::Object(fields) = serde_json::json!({
        "id": d.id.0,
        "repository": d.repository,
        "environment": d.environment,
        "task": d.task,
        "ref": d.git_ref,
        "sha": d.sha,
        "state": d.state_word(),
        "description": d.description,
        "creator": d.creator,
        "created_at": json_time(Some(d.created_at)),
        "started_at": json_time(d.started_at),
        "finished_at": json_time(d.finished_at),
    }) else {
        unreachable!("a JSON object literal")
    };
    fields
}

pub async fn deployments(c: &Steering, l: ListOptions) -> anyhow::Result<()> {
    let store = open_store(c).await?.store;
    let filtered = l.environment.is_some() || l.state.is_some();
    let read = if filtered {
        FILTERED_FROM
    } else {
        i64::from(l.limit)
    };
    let list: Vec<_> = store
        .recent(read)
        .await?
        .into_iter()
        .filter(|d| {
            l.environment
                .as_ref()
                .is_none_or(|(r, e)| d.repository == *r && d.environment == *e)
        })
        .filter(|d| l.state.as_deref().is_none_or(|s| d.state_word() == s))
        .take(l.limit as usize)
        .collect();
    let awaiting = store.awaiting_github().await?;
    if l.json {
        // JSON Lines, one deployment per line.
        for d in list {
            let mut fields = deployment_json(&d);
            // Teardowns post nothing: null.
            let on_github = (!d.id.is_teardown()).then(|| !awaiting.contains(&d.id));
            fields.insert("on_github".into(), on_github.into());
            println!("{}", serde_json::Value::Object(fields));
        }
        return Ok(());
    }
    let mut marked = false;
    println!(
        "{:<12}  {:<28}  {:<14}  {:<20}  {:<10}  {:<20}  {:<10}  DESCRIPTION",
        "ID", "REPOSITORY", "ENVIRONMENT", "REF", "STATE", "STARTED", "DURATION"
    );
    for d in list {
        let started = d.started_at.map_or("-".to_string(), clock);
        let took = match (d.started_at, d.finished_at) {
            (Some(s), Some(f)) => duration(Duration::from_millis((f - s).max(0) as u64)),
            (Some(s), None) => format!(
                "{} so far",
                duration(Duration::from_millis((now_ms() - s).max(0) as u64))
            ),
            _ => "-".to_string(),
        };
        let state = if awaiting.contains(&d.id) {
            marked = true;
            format!("{}*", d.state_word())
        } else {
            d.state_word().to_string()
        };
        // Teardowns (negative ids) say what they tore down; every row says
        // what GitHub was told last.
        let description = match d.teardown_of {
            Some(latest) => format!("teardown of {latest}: {}", d.description),
            None => d.description.clone(),
        };
        println!(
            "{:<12}  {:<28}  {:<14}  {:<20}  {:<10}  {:<20}  {took:<10}  {description}",
            d.id, d.repository, d.environment, d.git_ref, state, started
        );
    }
    if marked {
        println!("* GitHub does not have this status yet; `ferry show ID` says why");
    }
    Ok(())
}

pub async fn logs(c: &Steering, id: i64, follow: bool) -> anyhow::Result<()> {
    let id = DeploymentId(id);
    let opened = open_store(c).await?;
    let store = opened.store;
    let Some(d) = store.get(id).await? else {
        bail!("{}", crate::wording::no_deployment(id, &where_stored(c)));
    };
    let reader = Logs::reader(&c.storage.dir, opened.database);
    print!("{}", logs::page::header_text(&d));
    let mut offset = 0;
    loop {
        // Read the state before the log: once final, one more read has it all.
        let now = store.get(id).await?;
        let done = !follow || now.as_ref().is_none_or(|d| d.state.is_final());
        if let Some((lines, next)) = reader.read_from(id, offset).await? {
            print!("{}", logs::text(&lines));
            offset = next;
        }
        if done {
            return match now {
                // SPEC: `--follow` exits 0 only for a success, so that a
                // script can wait for a deployment and act on its result.
                Some(d) if follow && d.state != crate::store::State::Success => {
                    eprintln!("deployment {id} ended in {}: {}", d.state, d.description);
                    Err(Failed.into())
                }
                _ => Ok(()),
            };
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
