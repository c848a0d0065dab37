//! The TOML configuration: parsing, defaults, validation and secrets.
//!
//! The document is parsed once with spans, then every section is checked on
//! its own so that one run of `check-config` reports every problem (each with
//! its key and line) rather than stopping at the first.

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

mod auto_deploy;
mod checker;
mod commands;
mod protection;
pub use commands::{Commands, Role};
pub use protection::Protection;
mod freezes;
mod github;
mod host;
mod notify;
mod raw;
mod repo_name;
mod runner;
mod secret;
mod server;
mod ssh;
mod steering;
mod storage;
mod targets;
pub use auto_deploy::AutoDeploy;
use checker::{Checker, Seg, line_of, read_text};
pub use host::Host;
pub use notify::{DEFAULT_SLACK_API_URL, NotifyEvent, Sink, SinkKind};
use raw::{
    RawCommands, RawConfig, RawDuration, RawFreeze, RawGitHub, RawHostCheck, RawNotify,
    RawProtection, RawRollback, RawRunner, RawServer, RawSsh, RawStep, RawStorage, RawTarget, keys,
};
pub use repo_name::RepoName;
pub use secret::Secret;
pub use steering::{Owned, Steering};

use crate::glob;

pub const DEFAULT_PATH: &str = "/etc/ferry/ferry.toml";
pub const ENV_CONFIG: &str = "FERRY_CONFIG";
pub const ENV_WEBHOOK_SECRET: &str = "FERRY_WEBHOOK_SECRET";
pub const ENV_GITHUB_TOKEN: &str = "FERRY_GITHUB_TOKEN";
pub const ENV_DATABASE_URL: &str = "FERRY_DATABASE_URL";
/// A target's task when it names none.
pub const DEFAULT_TASK: &str = "deploy";

#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub server: Server,
    pub github: GitHubSettings,
    pub storage: Storage,
    pub runner: RunnerSettings,
    pub ssh: Ssh,
    pub targets: Vec<Target>,
    /// `[[freeze]]` windows.
    pub freezes: Vec<crate::admission::freeze::Freeze>,
    /// `[[notify]]` sinks.
    pub sinks: Vec<Sink>,
    /// `[commands]`: commands in pull request comments, when set.
    pub commands: Option<Commands>,
    /// `[protection]`: GitHub Actions runs gated by locks and freezes.
    pub protection: Option<Protection>,
    /// Things that are legal but probably not what the operator meant.
    pub warnings: Vec<Problem>,
}

#[derive(Debug, Clone)]
pub struct Server {
    pub listen: SocketAddr,
    /// Without a trailing slash.
    pub public_url: String,
    /// `/metrics` only here (and not on `listen`) when set: its labels
    /// name repositories and environments.
    pub metrics_listen: Option<SocketAddr>,
}

#[derive(Debug, Clone)]
pub struct GitHubSettings {
    /// Without a trailing slash, e.g. `https://ghe.example.com/api/v3`.
    pub api_url: String,
    pub webhook_secrets: Vec<Secret>,
    pub auth: GitHubAuth,
    /// How often ferry lists each repository's deployments for those whose
    /// webhook never came; zero: never.
    pub reconcile_every: Duration,
}

#[derive(Debug, Clone)]
pub enum GitHubAuth {
    Token(Secret),
    App {
        app_id: u64,
        private_key_pem: Secret,
    },
}

#[derive(Debug, Clone)]
pub struct Storage {
    pub dir: PathBuf,
    pub log_retention: Duration,
    /// Where deployments are kept.
    pub backend: Backend,
}

/// The store's backend: SQLite in `storage.dir` (one box), or PostgreSQL
/// shared by replicas (`storage.database_url`). Adding a backend is one
/// variant here and one arm in `store::open`.
#[derive(Debug, Clone)]
pub enum Backend {
    Sqlite,
    /// The URL is a secret: it may carry a password.
    Postgres {
        url: Secret,
    },
}

impl Backend {
    /// Whether several processes share the store (and `serve` does not
    /// hold `storage.dir` for itself).
    pub fn shared(&self) -> bool {
        matches!(self, Backend::Postgres { .. })
    }
}

#[derive(Debug, Clone)]
pub struct RunnerSettings {
    pub max_concurrent: NonZeroUsize,
    pub shutdown_grace: Duration,
}

#[derive(Debug, Clone)]
pub struct Ssh {
    pub identity_file: Option<PathBuf>,
    pub known_hosts_file: PathBuf,
    pub connect_timeout: Duration,
    pub config_file: Option<PathBuf>,
    /// SSH handshakes in flight at once, across all deployments.
    pub max_connections: NonZeroUsize,
    /// How long a connection left idle by a deployment stays open for the
    /// next one to the same host; zero closes it with its deployment.
    pub idle_timeout: Duration,
    /// Between keepalives on a connection; a host that answers none of
    /// [`KEEPALIVES_MISSED`] in a row is lost.
    pub keepalive: Duration,
}

#[derive(Debug, Clone)]
pub struct Target {
    pub repository: RepoName,
    /// Exact name or glob (`review-*`).
    pub environment: String,
    pub task: String,
    pub hosts: Vec<Host>,
    /// `None`: all hosts at once.
    pub parallel: Option<NonZeroUsize>,
    pub timeout: Duration,
    pub environment_url: Option<String>,
    pub supersede: bool,
    pub auto_inactive: bool,
    /// How long after an environment's latest deployment ended it is torn
    /// down, if it is transient.
    pub teardown_after: Option<Duration>,
    pub steps: Vec<Step>,
    /// Run by a teardown (`FERRY_TASK=teardown`); none is fine.
    pub teardown: Vec<Step>,
    /// Run on each host after its steps, until each passes.
    pub checks: Vec<HostCheck>,
    /// A failed deployment puts back the hosts where its steps started.
    pub rollback: bool,
    /// `[[target.rollback]]`; none: the target's steps put a host back.
    pub rollback_steps: Vec<Step>,
    /// Check runs and status contexts that must have passed on the sha
    /// before the steps start; `*`: every one reported. Empty: none.
    pub require_checks: Vec<String>,
    /// How long a deployment waits for them.
    pub checks_timeout: Duration,
    /// `[target.auto_deploy]`: ferry starts its deployments itself.
    pub auto_deploy: Option<AutoDeploy>,
}

/// `[[target.checks]]`: a script that tells whether what was deployed on a
/// host works, tried every `interval` until it passes or `within` passed.
#[derive(Debug, Clone)]
pub struct HostCheck {
    pub name: String,
    pub run: String,
    pub within: Duration,
    pub interval: Duration,
}

impl Target {
    pub fn owns(&self, repository: &str, environment: &str, task: &str) -> bool {
        self.repository == repository
            && self.task == task
            && glob::matches(&self.environment, environment)
    }
}

#[derive(Debug, Clone)]
pub struct Step {
    pub name: String,
    pub run: String,
}

/// One thing wrong with the config, named by its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub line: Option<usize>,
    pub message: String,
}

impl Problem {
    /// `path:line: key: message`, as compilers print it.
    pub fn at(&self, path: &Path) -> String {
        match self.line {
            Some(line) => format!("{}:{line}: {}: {}", path.display(), self.key, self.message),
            None => format!("{}: {}: {}", path.display(), self.key, self.message),
        }
    }
}

/// Every problem found in one config file.
#[derive(Debug)]
pub struct ConfigError {
    pub path: PathBuf,
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(
            f,
            "invalid config {}: {n} problem{}",
            self.path.display(),
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            write!(f, "\n  {}", p.at(&self.path))?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Where to read the config from: `--config`, else `$FERRY_CONFIG`, else the default.
pub fn resolve_path(flag: Option<PathBuf>) -> PathBuf {
    flag.or_else(|| std::env::var_os(ENV_CONFIG).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_PATH))
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = read_text(path)?;
        Config::parse(&text, path, &|k| std::env::var(k).ok())
    }

    /// `env` looks up the secret environment variables; tests pass their own.
    pub fn parse(
        text: &str,
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let fail = |problems| ConfigError {
            path: path.to_path_buf(),
            problems,
        };
        let doc = match DeTable::parse(text) {
            Ok(doc) => doc,
            Err(e) => {
                return Err(fail(vec![Problem {
                    key: "(syntax)".into(),
                    line: e.span().map(|s| line_of(text, s.start)),
                    message: e.message().trim().to_string(),
                }]));
            }
        };
        let base = path.parent().unwrap_or(Path::new("."));
        let mut cx = Checker {
            text,
            doc: doc.get_ref(),
            base,
            problems: Vec::new(),
            warnings: Vec::new(),
            suggested: HashSet::new(),
            credentials: env(ENV_CREDENTIALS),
        };
        let config = cx.check(path, env);
        match config {
            Some(mut c) if cx.problems.is_empty() => {
                c.warnings = cx.warnings;
                Ok(c)
            }
            _ => Err(fail(cx.problems)),
        }
    }

    /// The first target that owns this deployment, as docs/configuration.md says.
    /// A repository's name as the targets spell it, when one names it
    /// (GitHub's names ignore case); else as given. What a webhook brings
    /// is stored under this spelling, so the store's exact comparisons
    /// (locks, the queue, steering) agree with the config's.
    pub fn repository_as_configured(&self, name: &str) -> String {
        self.targets
            .iter()
            .find(|t| t.repository == name)
            .map_or_else(|| name.to_string(), |t| t.repository.to_string())
    }

    /// Whether any target owns the environment, whatever its task.
    pub fn owns_environment(&self, repository: &str, environment: &str) -> bool {
        self.targets
            .iter()
            .any(|t| t.repository == repository && glob::matches(&t.environment, environment))
    }

    pub fn target_for(&self, repository: &str, environment: &str, task: &str) -> Option<&Target> {
        self.targets
            .iter()
            .find(|t| t.owns(repository, environment, task))
    }

    pub fn db_path(&self) -> PathBuf {
        self.storage.dir.join("ferry.db")
    }
}

// Defaults, each named once; config/ferry.example.toml shows the same.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_API_URL: &str = "https://api.github.com";
pub const DEFAULT_STORAGE_DIR: &str = "/var/lib/ferry";
pub const DEFAULT_LOG_RETENTION: Duration = Duration::from_secs(30 * 86400);
pub const DEFAULT_MAX_CONCURRENT: usize = 8;
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(60);
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// `[[target.checks]]`'s `within` and `interval`.
pub const DEFAULT_CHECK_WITHIN: Duration = Duration::from_secs(60);
pub const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_secs(2);
/// How long a deployment waits for its `require_checks`.
pub const DEFAULT_CHECKS_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// A `[[freeze]]`'s `timezone`.
pub const DEFAULT_FREEZE_TIMEZONE: &str = "UTC";
/// A whole deployment's `timeout`.
pub const DEFAULT_TARGET_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Below sshd's default `MaxStartups 10:30:100`, where it starts dropping
/// connections that have not authenticated yet.
pub const DEFAULT_MAX_CONNECTIONS: usize = 8;
/// `github.reconcile_every`: a missed delivery is found within five
/// minutes, at one conditional request (free when nothing changed) per
/// repository.
pub const DEFAULT_RECONCILE_EVERY: Duration = Duration::from_secs(300);
/// `ssh.keepalive`: ssh's own default in ferry's ssh_config until now.
pub const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(15);
/// Keepalives a host may leave unanswered before it is lost (ssh's
/// `ServerAliveCountMax`).
pub const KEEPALIVES_MISSED: u32 = 3;
/// As long as ssh's masters already linger after ferry lets go of them
/// (`ControlPersist`), and Ansible's default.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

pub const ENV_CREDENTIALS: &str = "CREDENTIALS_DIRECTORY";

#[cfg(test)]
mod tests;
