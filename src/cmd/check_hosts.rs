//! `ferry check-hosts`: a connection to every host, with strict host keys, and what each one offered.

use anyhow::{Context, bail};

use super::{ConfigArg, Failed};
use crate::config::Config;
use crate::config::Host;
use crate::format::duration;
use crate::runner::Connector;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;

/// Connect to every configured host and run `true`.
#[derive(clap::Args)]
pub struct CheckHosts {
    #[command(flatten)]
    config: ConfigArg,
    /// Only this target's hosts.
    #[arg(long, value_name = "REPO:ENV")]
    target: Option<String>,
}

impl CheckHosts {
    pub async fn run(self) -> anyhow::Result<()> {
        check_hosts(&self.config.load()?, self.target.as_deref()).await
    }
}

/// Connects to each host (the connector bounds concurrent handshakes)
/// and runs `true`: the connect time, or why not; in `hosts`' order.
async fn probe_all(
    c: &Config,
    hosts: &[(String, Host)],
) -> anyhow::Result<Vec<Result<Duration, String>>> {
    let connector = Arc::new(Connector::new(&c.ssh)?);
    let mut checks = JoinSet::new();
    for (i, (_, host)) in hosts.iter().enumerate() {
        let connector = connector.clone();
        let host = host.clone();
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
    Ok(results
        .into_iter()
        .map(|r| r.expect("every check reports"))
        .collect())
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
    let results = probe_all(c, &hosts).await?;
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
        match r {
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
