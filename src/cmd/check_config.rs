//! `ferry check-config`: every problem of the config, each with its key and line, or a summary of what it holds.

use super::{ConfigArg, Failed};
use crate::admission::freeze::Freeze;
use crate::config::{Config, GitHubAuth, Target};
use crate::format::{duration, plural};

/// Validate the config and print a summary.
#[derive(clap::Args)]
pub struct CheckConfig {
    #[command(flatten)]
    config: ConfigArg,
}

impl CheckConfig {
    pub async fn run(self) -> anyhow::Result<()> {
        check_config(&self.config.load()?).await
    }
}

pub async fn check_config(c: &Config) -> anyhow::Result<()> {
    // Everything but the database was checked while loading; the database
    // is checked by asking it.
    let database = match &c.storage.backend {
        crate::config::Backend::Sqlite => None,
        crate::config::Backend::Postgres { url } => {
            match crate::store::postgres::ping(url.expose_str()).await {
                Ok(about) => Some(about),
                Err(e) => {
                    eprintln!(
                        "{}: storage.database_url: PostgreSQL does not answer: {e:#}",
                        c.path.display()
                    );
                    return Err(Failed.into());
                }
            }
        }
    };
    print_summary(c, database);
    for t in &c.targets {
        print_target(t);
    }
    warn_unknown_hosts(c);
    let now = jiff::Timestamp::now();
    for f in &c.freezes {
        print_freeze(f, now);
    }
    for sink in &c.sinks {
        print_sink(sink);
    }
    if let Some(commands) = &c.commands {
        println!(
            "  commands in pull requests: {p}deploy (to {}), {p}rollback, {p}lock, {p}unlock, {p}help; for {} and above{}",
            commands.default_environment,
            commands.permission.as_str(),
            if commands.allow_forks {
                ", forks' heads too"
            } else {
                ", never a fork's head"
            },
            p = commands.prefix,
        );
    }
    if let Some(p) = &c.protection {
        let which = if p.repositories.is_empty() {
            "every repository a target names".to_string()
        } else {
            p.repositories.join(", ")
        };
        println!(
            "  deployment protection rules answered for {which}: GitHub Actions jobs obey locks and freezes"
        );
    }
    for w in &c.warnings {
        println!("warning: {}", w.at(&c.path));
    }
    Ok(())
}

/// What the file holds, in sum: its targets, where ferry listens, GitHub,
/// the store.
fn print_summary(c: &Config, database: Option<String>) {
    let hosts: usize = c.targets.iter().map(|t| t.hosts.len()).sum();
    let steps: usize = c.targets.iter().map(|t| t.steps.len()).sum();
    println!(
        "{}: ok: {}, {}, {}",
        c.path.display(),
        plural(c.targets.len(), "target"),
        plural(hosts, "host"),
        plural(steps, "step"),
    );
    println!(
        "  listen {}, public_url {}{}",
        c.server.listen,
        c.server.public_url,
        c.server
            .metrics_listen
            .map(|m| format!(", /metrics on {m}"))
            .unwrap_or_default()
    );
    let auth = match &c.github.auth {
        GitHubAuth::Token(_) => "token".to_string(),
        GitHubAuth::App { app_id, .. } => format!("GitHub App {app_id}"),
    };
    println!(
        "  github {} ({auth}), {}",
        c.github.api_url,
        plural(c.github.webhook_secrets.len(), "webhook secret"),
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
}

fn names_or_none<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<&str> = names.collect();
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}

/// One target: its hosts, steps, checks and teardown.
fn print_target(t: &Target) {
    let parallel = t.parallel.map_or("all".to_string(), |p| p.to_string());
    println!(
        "  target {} {} (task {}): {} ({parallel} at a time), steps: {}, timeout {}",
        t.repository,
        t.environment,
        t.task,
        plural(t.hosts.len(), "host"),
        names_or_none(t.steps.iter().map(|s| s.name.as_str())),
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
    if let Some(auto) = &t.auto_deploy {
        println!("    {}", auto.describe());
    }
    if !t.teardown.is_empty() || t.teardown_after.is_some() {
        println!(
            "    teardown steps: {}{}",
            names_or_none(t.teardown.iter().map(|s| s.name.as_str())),
            t.teardown_after.map_or(String::new(), |a| format!(
                ", transient environments torn down {} after their latest deployment",
                duration(a)
            )),
        );
    }
}

/// A host whose key is not in known_hosts cannot be reached; with an
/// ssh_config the names may be aliases, which only ssh resolves.
fn warn_unknown_hosts(c: &Config) {
    let empty_known_hosts = c.warnings.iter().any(|w| w.key == "ssh.known_hosts_file");
    if c.ssh.config_file.is_some() || empty_known_hosts {
        return;
    }
    for t in &c.targets {
        for h in t.hosts.iter().filter(|h| !h.is_local()) {
            if crate::known_hosts::fingerprints(&c.ssh.known_hosts_file, h).is_empty() {
                println!(
                    "warning: {}: ssh.known_hosts_file has no key for {} ({}): connections to it will be refused; add it with `{}` and compare the fingerprint",
                    c.path.display(),
                    h.spec(),
                    crate::known_hosts::lookup_name(h),
                    crate::known_hosts::keyscan_command(h, &c.ssh.known_hosts_file),
                );
            }
        }
    }
}

/// A freeze: what it holds and its next window, in its time zone and UTC.
fn print_freeze(f: &Freeze, now: jiff::Timestamp) {
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

/// A `[[notify]]` sink: where it goes and what it hears. Never the token,
/// the secret or a webhook URL's query (it may carry a key).
fn print_sink(s: &crate::config::Sink) {
    let globs = |g: &[String], all: &str| {
        if g.is_empty() {
            all.to_string()
        } else {
            g.join(", ")
        }
    };
    let to = match &s.kind {
        crate::config::SinkKind::Webhook { url, secret } => format!(
            "webhook {}{}",
            url.split('?').next().unwrap_or(url),
            if secret.is_some() { ", signed" } else { "" }
        ),
        crate::config::SinkKind::Slack { channel, .. } => format!("Slack channel {channel}"),
    };
    let events: Vec<&str> = s.events.iter().map(|e| e.as_str()).collect();
    println!(
        "  notify {} ({to}): {} in {}, {}",
        s.name,
        events.join(", "),
        globs(&s.environments, "every environment"),
        globs(&s.repositories, "every repository"),
    );
}
