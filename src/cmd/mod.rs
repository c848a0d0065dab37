//! The command line, one file per command (mini-redis's `src/cmd/`): each
//! holds its arguments and `run`; `main.rs` only parses and dispatches. The
//! commands that act on the running ferry through the store are the
//! steering commands; [`steering`] holds what they share, `output` how
//! they write.

pub mod cancel;
pub mod check_config;
pub mod check_hosts;
pub mod deploy;
pub mod deployments;
pub mod lock;
pub mod locks;
pub mod logs;
mod output;
mod request;
pub mod rollback;
pub mod serve;
pub mod show;
pub mod stats;
pub mod steering;
pub mod teardown;
pub mod unlock;

pub use output::{clock, colour, init_tracing};
pub use steering::EnvName;

use std::path::PathBuf;

use crate::config::{self, Config};

/// A failure already reported to the user; main only sets the exit status.
#[derive(Debug)]
pub struct Failed;

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("failed")
    }
}

impl std::error::Error for Failed {}

#[derive(clap::Args)]
pub struct ConfigArg {
    /// Config file [default: $FERRY_CONFIG, else /etc/ferry/ferry.toml]
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
}

impl ConfigArg {
    /// The whole config, as `serve` and the checks read it.
    fn load(&self) -> Result<Config, Failed> {
        let path = config::resolve_path(self.config.clone());
        Config::load(&path).map_err(|e| {
            eprintln!("error: {e}");
            Failed
        })
    }

    /// For the commands that act through the store: only `[storage]` and
    /// the targets' names are read, so missing secrets and other keys'
    /// problems never stop an operator mid-incident.
    fn load_for_store(&self) -> Result<config::Steering, Failed> {
        let path = config::resolve_path(self.config.clone());
        config::Steering::load(&path).map_err(|e| {
            eprintln!("error: {e}");
            Failed
        })
    }
}

#[derive(clap::Subcommand)]
pub enum Command {
    /// Run the daemon.
    Serve(serve::Serve),
    /// Validate the config and print a summary.
    CheckConfig(check_config::CheckConfig),
    /// Connect to every configured host and run `true`.
    CheckHosts(check_hosts::CheckHosts),
    /// List recent deployments.
    Deployments(deployments::Deployments),
    /// One deployment: its fields, log link, statuses (and whether GitHub
    /// has each yet) and who acted on it.
    Show(show::Show),
    /// Print a deployment's log; with --follow, exit 0 only for a success.
    Logs(logs::Logs),
    /// Hold an environment: its deployments wait until it is unlocked.
    Lock(lock::Lock),
    /// Lift an environment's lock; its waiting deployment starts.
    Unlock(unlock::Unlock),
    /// List locked environments: who, since when, why.
    Locks(locks::Locks),
    /// Tear an environment down now, in its turn: its teardown steps, then
    /// `inactive` on GitHub for its deployments.
    Teardown(teardown::Teardown),
    /// End a queued or running deployment (its final status is `error`).
    Cancel(cancel::Cancel),
    /// Ask GitHub (through the running ferry) for a deployment of REF.
    Deploy(deploy::Deploy),
    /// Ask GitHub (through the running ferry) for a new deployment of the
    /// environment's last good version.
    Rollback(rollback::Rollback),
    /// Delivery metrics per repository and environment: deployments,
    /// failure rate, lead time, recovery time, rollbacks.
    Stats(stats::Stats),
}

impl Command {
    /// `serve`, which logs as a daemon; the others say what they have to say.
    pub fn is_serve(&self) -> bool {
        matches!(self, Command::Serve(_))
    }

    pub async fn run(self) -> anyhow::Result<()> {
        match self {
            Command::Serve(c) => c.run().await,
            Command::CheckConfig(c) => c.run().await,
            Command::CheckHosts(c) => c.run().await,
            Command::Deployments(c) => c.run().await,
            Command::Show(c) => c.run().await,
            Command::Logs(c) => c.run().await,
            Command::Lock(c) => c.run().await,
            Command::Unlock(c) => c.run().await,
            Command::Locks(c) => c.run().await,
            Command::Teardown(c) => c.run().await,
            Command::Cancel(c) => c.run().await,
            Command::Deploy(c) => c.run().await,
            Command::Rollback(c) => c.run().await,
            Command::Stats(c) => c.run().await,
        }
    }
}

/// A duration argument as the config writes them ("90m", "30d"), longer
/// than zero; `examples` for the message when it is not one.
pub(crate) fn positive_duration(s: &str, examples: &str) -> Result<std::time::Duration, String> {
    match humantime::parse_duration(s.trim()) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err("must be longer than 0s".into()),
        Err(e) => Err(format!(
            "{s:?} is not a duration ({e}); write it as {examples}"
        )),
    }
}

pub(crate) fn parse_state(s: &str) -> Result<String, String> {
    let words = crate::store::STATE_WORDS;
    if words.contains(&s) {
        return Ok(s.to_string());
    }
    Err(format!("{s:?} is not a state: {}", words.join(", ")))
}
