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

mod raw;
mod steering;
use raw::{
    RawConfig, RawGitHub, RawRunner, RawServer, RawSsh, RawStep, RawStorage, RawTarget, keys,
};
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
    pub github: GitHub,
    pub storage: Storage,
    pub runner: Runner,
    pub ssh: Ssh,
    pub targets: Vec<Target>,
    /// Things that are legal but probably not what the operator meant.
    pub warnings: Vec<Problem>,
}

#[derive(Debug, Clone)]
pub struct Server {
    pub listen: SocketAddr,
    /// Without a trailing slash.
    pub public_url: String,
}

#[derive(Debug, Clone)]
pub struct GitHub {
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
    /// PostgreSQL shared by replicas; None: SQLite in `dir`. A secret, as
    /// it may carry a password.
    pub database_url: Option<Secret>,
}

#[derive(Debug, Clone)]
pub struct Runner {
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
    pub repository: String,
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
}

impl Target {
    pub fn owns(&self, repository: &str, environment: &str, task: &str) -> bool {
        self.repository == repository
            && self.task == task
            && glob::matches(&self.environment, environment)
    }
}

/// A host as written in the config: `[user@]name[:port]`, IPv6 as `[::1]:22`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Host {
    pub user: Option<String>,
    pub name: String,
    pub port: Option<u16>,
}

impl Host {
    pub fn parse(s: &str) -> Result<Host, String> {
        if s.is_empty() {
            return Err("empty host".into());
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("{s:?} contains white space"));
        }
        let (user, rest) = match s.rsplit_once('@') {
            Some((u, r)) if !u.is_empty() => (Some(u.to_string()), r),
            Some(_) => return Err(format!("{s:?} has an empty user before '@'")),
            None => (None, s),
        };
        let (name, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (name, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("{s:?} opens '[' without closing it"))?;
            match after {
                "" => (name, None),
                p if p.starts_with(':') => (name, Some(&p[1..])),
                _ => return Err(format!("{s:?}: unexpected text after ']'")),
            }
        } else {
            match rest.split_once(':') {
                Some((n, p)) => (n, Some(p)),
                None => (rest, None),
            }
        };
        if name.is_empty() {
            return Err(format!("{s:?} has no host name"));
        }
        // ssh would read a leading '-' as an option.
        if name.starts_with('-') || user.as_deref().is_some_and(|u| u.starts_with('-')) {
            return Err(format!("{s:?} may not start with '-'"));
        }
        let port = match port {
            None => None,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => Some(n),
                _ => {
                    return Err(format!(
                        "{s:?} has an invalid port {p:?} (expected 1-65535)"
                    ));
                }
            },
        };
        Ok(Host {
            user,
            name: name.to_string(),
            port,
        })
    }
}

impl Host {
    /// The host as a config writes it, for [`Host::parse`] to read back.
    pub fn spec(&self) -> String {
        match &self.user {
            Some(u) => format!("{u}@{self}"),
            None => self.to_string(),
        }
    }
}

/// How a host is named in logs and descriptions: no user, port only when set.
impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.port, self.name.contains(':')) {
            (Some(p), true) => write!(f, "[{}]:{p}", self.name),
            (Some(p), false) => write!(f, "{}:{p}", self.name),
            (None, _) => f.write_str(&self.name),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Step {
    pub name: String,
    pub run: String,
}

/// A value that must never reach a log line.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Secret {
        Secret(bytes.into())
    }
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
    pub fn expose_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
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
        Config::load_as(path, false)
    }

    /// For the commands that only use the store (`deployments`, `lock`,
    /// `cancel`, ...): a member of group ferry may not read the secret files
    /// (systemd hands them to the service alone), and needs none of them.
    fn load_as(path: &Path, secrets_optional: bool) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            path: path.to_path_buf(),
            problems: vec![Problem {
                key: "(file)".into(),
                line: None,
                message: format!("cannot read config: {e}"),
            }],
        })?;
        Config::parse_as(&text, path, &|k| std::env::var(k).ok(), secrets_optional)
    }

    /// `env` looks up the secret environment variables; tests pass their own.
    pub fn parse(
        text: &str,
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        Config::parse_as(text, path, env, false)
    }

    fn parse_as(
        text: &str,
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
        secrets_optional: bool,
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
            secrets_optional,
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

    /// The first target that owns this deployment, as SPEC.md says.
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
// ---- checking ---------------------------------------------------------------

#[derive(Clone, Copy)]
enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

struct Checker<'a> {
    text: &'a str,
    doc: &'a DeTable<'a>,
    base: &'a Path,
    problems: Vec<Problem>,
    warnings: Vec<Problem>,
    /// Keys offered as "did you mean": their absence is not reported again.
    suggested: HashSet<String>,
    /// Where systemd put the LoadCredential= files, if it did.
    credentials: Option<String>,
    /// Secret files this user may not read stand as [`WITHHELD`].
    secrets_optional: bool,
}

/// A secret the loading user may not read (see `load_without_secrets`).
const WITHHELD: &[u8] = b"(withheld from this user)";

pub const ENV_CREDENTIALS: &str = "CREDENTIALS_DIRECTORY";

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

fn key_name(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

fn keep_only(table: &mut DeTable, known: &[&str]) {
    let unknown: Vec<String> = table
        .iter()
        .map(|(k, _)| k.get_ref().to_string())
        .filter(|k| !known.contains(&k.as_str()))
        .collect();
    for k in unknown {
        table.remove(k.as_str());
    }
}

fn lookup<'v>(table: &'v DeTable<'v>, key: &str) -> Option<&'v Spanned<DeValue<'v>>> {
    table
        .iter()
        .find(|(k, _)| k.get_ref().as_ref() == key)
        .map(|(_, v)| v)
}

/// The closest edit-distance match among `known`, for "did you mean" hints.
fn suggest<'k>(word: &str, known: &[&'k str]) -> Option<&'k str> {
    fn distance(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut prev: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut cur = vec![i + 1];
            for (j, cb) in b.iter().enumerate() {
                let sub = prev[j] + usize::from(ca != *cb);
                cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
            }
            prev = cur;
        }
        prev[b.len()]
    }
    known
        .iter()
        .map(|k| (distance(word, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

impl<'a> Checker<'a> {
    fn span_of(&self, path: &[Seg]) -> Option<Range<usize>> {
        let mut span = None;
        let mut table: Option<&DeTable> = Some(self.doc);
        let mut value: Option<&Spanned<DeValue>> = None;
        for seg in path {
            let next = match (seg, table, value) {
                (Seg::Key(k), Some(t), _) => lookup(t, k),
                (Seg::Index(i), _, Some(v)) => match v.get_ref() {
                    DeValue::Array(a) => a.get(*i),
                    _ => None,
                },
                _ => None,
            };
            let Some(v) = next else { break };
            span = Some(v.span());
            value = Some(v);
            table = match v.get_ref() {
                DeValue::Table(t) => Some(t),
                _ => None,
            };
        }
        span
    }

    fn problem(&mut self, path: &[Seg], message: impl Into<String>) {
        let message = message.into();
        if message.starts_with("missing") && self.suggested.contains(&key_name(path)) {
            return;
        }
        let line = self.span_of(path).map(|s| line_of(self.text, s.start));
        self.problems.push(Problem {
            key: key_name(path),
            line,
            message,
        });
    }

    fn warning(&mut self, path: &[Seg], message: impl Into<String>) {
        let line = self.span_of(path).map(|s| line_of(self.text, s.start));
        self.warnings.push(Problem {
            key: key_name(path),
            line,
            message: message.into(),
        });
    }

    /// Reports every key of `table` not in `known`; true when all were known.
    fn known_keys(&mut self, table: &DeTable, known: &[&str], path: &[Seg]) -> bool {
        let mut ok = true;
        for (k, _) in table.iter() {
            let k = k.get_ref().as_ref();
            if known.contains(&k) {
                continue;
            }
            ok = false;
            let mut p = path.to_vec();
            p.push(Seg::Key(k));
            let hint = match suggest(k, known) {
                Some(s) => {
                    let mut p = path.to_vec();
                    p.push(Seg::Key(s));
                    self.suggested.insert(key_name(&p));
                    format!("unknown key '{k}' (did you mean '{s}'?)")
                }
                None => format!("unknown key '{k}' (known keys: {})", known.join(", ")),
            };
            self.problem(&p, hint);
        }
        ok
    }

    /// Deserializes the table at `path` into `T`, or reports why it cannot.
    fn section<T: DeserializeOwned + Default>(&mut self, path: &[Seg]) -> Option<T> {
        let Some(span) = self.span_of(path) else {
            return Some(T::default());
        };
        // Any problem at all, here or elsewhere, and parse() returns none.
        self.table_at(path, span)
    }

    fn table_at<T: DeserializeOwned>(&mut self, path: &[Seg], span: Range<usize>) -> Option<T> {
        let known = keys::<T>();
        let value = self.value_at(path)?;
        let DeValue::Table(table) = value.get_ref() else {
            self.problem(
                path,
                format!("expected a table, found {}", value.get_ref().type_str()),
            );
            return None;
        };
        // Unknown keys are reported, then set aside so that the rest of the
        // table is still checked in the same run.
        self.known_keys(table, known, path);
        let mut owned = table.clone();
        owned.make_owned();
        keep_only(&mut owned, known);
        for list in raw::STEP_LISTS {
            if let Some(steps) = owned.get_mut(list)
                && let DeValue::Array(steps) = steps.get_mut()
            {
                for step in steps.iter_mut() {
                    if let DeValue::Table(t) = step.get_mut() {
                        keep_only(t, keys::<RawStep>());
                    }
                }
            }
        }
        let de = toml::Deserializer::from(Spanned::new(span, owned));
        match T::deserialize(de) {
            Ok(v) => Some(v),
            Err(e) => {
                let line = e.span().map(|s| line_of(self.text, s.start));
                self.problems.push(Problem {
                    key: key_name(path),
                    line,
                    message: e.message().trim().to_string(),
                });
                None
            }
        }
    }

    fn value_at(&self, path: &[Seg]) -> Option<&'a Spanned<DeValue<'a>>> {
        let mut value: Option<&'a Spanned<DeValue<'a>>> = None;
        for seg in path {
            value = match (seg, value) {
                (Seg::Key(k), None) => lookup(self.doc, k),
                (Seg::Key(k), Some(v)) => match v.get_ref() {
                    DeValue::Table(t) => lookup(t, k),
                    _ => None,
                },
                (Seg::Index(i), Some(v)) => match v.get_ref() {
                    DeValue::Array(a) => a.get(*i),
                    _ => None,
                },
                (Seg::Index(_), None) => None,
            };
            value?;
        }
        value
    }

    /// A path from the config: `$CREDENTIALS_DIRECTORY` (or `${…}`) at its
    /// start expanded, relative paths taken from the config file's directory.
    fn path(&self, p: PathBuf) -> PathBuf {
        let s = p.to_string_lossy();
        let rest = s
            .strip_prefix("${CREDENTIALS_DIRECTORY}")
            .or_else(|| s.strip_prefix("$CREDENTIALS_DIRECTORY"));
        let p = match (rest, &self.credentials) {
            (Some(rest), Some(dir)) => PathBuf::from(format!("{dir}{rest}")),
            _ => p,
        };
        if p.is_absolute() {
            p
        } else {
            self.base.join(p)
        }
    }

    /// "cannot read", with a hint when a credential path was not expanded.
    fn unreadable(&self, file: &Path, e: &std::io::Error) -> String {
        let mut m = format!("cannot read {}: {e}", file.display());
        if file.to_string_lossy().contains("CREDENTIALS_DIRECTORY") && self.credentials.is_none() {
            m.push_str(" ($CREDENTIALS_DIRECTORY is only set under systemd with LoadCredential=)");
        }
        m
    }

    fn check(&mut self, path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Option<Config> {
        self.known_keys(self.doc, keys::<RawConfig>(), &[]);
        let server: Option<RawServer> = self.section(&[Seg::Key("server")]);
        let github: Option<RawGitHub> = self.section(&[Seg::Key("github")]);
        let storage: Option<RawStorage> = self.section(&[Seg::Key("storage")]);
        let runner: Option<RawRunner> = self.section(&[Seg::Key("runner")]);
        let ssh: Option<RawSsh> = self.section(&[Seg::Key("ssh")]);

        let server = server.and_then(|s| self.server(s));
        let github = github.and_then(|g| self.github(g, env));
        let storage = storage.and_then(|s| self.storage(s, env));
        let runner = runner.and_then(|r| self.runner(r));
        let ssh = ssh.and_then(|s| self.ssh(s));
        let targets = self.targets();

        Some(Config {
            path: path.to_path_buf(),
            server: server?,
            github: github?,
            storage: storage?,
            runner: runner?,
            ssh: ssh?,
            targets: targets?,
            warnings: Vec::new(),
        })
    }

    fn storage(
        &mut self,
        raw: RawStorage,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Option<Storage> {
        let from_env = env(ENV_DATABASE_URL).filter(|s| !s.trim().is_empty());
        let at = [Seg::Key("storage"), Seg::Key("database_url")];
        let database_url = match from_env.or(raw.database_url) {
            None => None,
            Some(url) => {
                let url = url.trim().to_string();
                if let Err(why) = check_database_url(&url) {
                    self.problem(&at, why);
                    return None;
                }
                Some(Secret::new(url.into_bytes()))
            }
        };
        Some(Storage {
            dir: self.path(raw.dir.unwrap_or_else(|| PathBuf::from("/var/lib/ferry"))),
            log_retention: raw.log_retention.unwrap_or(Duration::from_secs(30 * 86400)),
            database_url,
        })
    }

    fn server(&mut self, raw: RawServer) -> Option<Server> {
        let at = |k| [Seg::Key("server"), Seg::Key(k)];
        let listen = raw.listen.as_deref().unwrap_or("127.0.0.1:8080");
        let listen = match listen.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                self.problem(
                    &at("listen"),
                    format!("{listen:?} is not an address and port, e.g. \"127.0.0.1:8080\""),
                );
                None
            }
        };
        let public_url = match raw.public_url {
            None => {
                self.problem(
                    &at("public_url"),
                    "missing: set the URL GitHub users reach ferry at, e.g. \"https://deploy.example.com\" (every log_url starts with it)",
                );
                None
            }
            Some(u) => self.http_url(&at("public_url"), &u),
        };
        Some(Server {
            listen: listen?,
            public_url: public_url?,
        })
    }

    fn http_url(&mut self, path: &[Seg], url: &str) -> Option<String> {
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"));
        match rest {
            Some(r) if !r.is_empty() && !r.starts_with('/') && !url.contains(['?', '#', ' ']) => {
                Some(url.trim_end_matches('/').to_string())
            }
            _ => {
                self.problem(
                    path,
                    format!(
                        "{url:?} is not an http(s) URL without query, e.g. \"https://host/path\""
                    ),
                );
                None
            }
        }
    }

    fn read_file(&mut self, path: &[Seg], file: &Path) -> Option<Vec<u8>> {
        match std::fs::read(file) {
            Ok(b) => Some(b),
            Err(e) if self.secrets_optional && e.kind() == std::io::ErrorKind::PermissionDenied => {
                Some(WITHHELD.to_vec())
            }
            Err(e) => {
                let m = self.unreadable(file, &e);
                self.problem(path, m);
                None
            }
        }
    }

    fn github(&mut self, raw: RawGitHub, env: &dyn Fn(&str) -> Option<String>) -> Option<GitHub> {
        let at = |k| [Seg::Key("github"), Seg::Key(k)];
        let api_url = match raw.api_url {
            Some(u) => self.http_url(&at("api_url"), &u),
            None => Some("https://api.github.com".to_string()),
        };

        let from_env = env(ENV_WEBHOOK_SECRET).filter(|s| !s.trim().is_empty());
        let secrets = match (from_env, raw.webhook_secret_file) {
            (Some(s), _) => Some(vec![Secret::new(s.trim().as_bytes())]),
            (None, Some(file)) => {
                let file = self.path(file);
                self.read_file(&at("webhook_secret_file"), &file)
                    .and_then(|bytes| {
                        let text = String::from_utf8_lossy(&bytes);
                        let secrets: Vec<Secret> = text
                            .lines()
                            .map(str::trim)
                            .filter(|l| !l.is_empty())
                            .map(|l| Secret::new(l.as_bytes()))
                            .collect();
                        if secrets.is_empty() {
                            self.problem(
                                &at("webhook_secret_file"),
                                format!("{} holds no secret (one per line)", file.display()),
                            );
                            return None;
                        }
                        Some(secrets)
                    })
            }
            (None, None) => {
                self.problem(
                    &at("webhook_secret_file"),
                    format!("missing: set it, or {ENV_WEBHOOK_SECRET}; ferry never accepts unsigned webhooks"),
                );
                None
            }
        };

        let token_env = env(ENV_GITHUB_TOKEN).filter(|s| !s.trim().is_empty());
        let auth = match (
            token_env,
            raw.token_file,
            raw.app_id,
            raw.app_private_key_file,
        ) {
            (Some(t), _, _, _) => Some(GitHubAuth::Token(Secret::new(t.trim().as_bytes()))),
            (None, Some(_), Some(_), _) => {
                self.problem(
                    &at("app_id"),
                    "token_file and app_id both set: use a token or a GitHub App, not both",
                );
                None
            }
            (None, Some(file), None, key) => {
                if key.is_some() {
                    self.problem(&at("app_private_key_file"), "set without app_id");
                }
                let file = self.path(file);
                self.read_file(&at("token_file"), &file).and_then(|b| {
                    let t = String::from_utf8_lossy(&b).trim().to_string();
                    if t.is_empty() {
                        self.problem(&at("token_file"), format!("{} is empty", file.display()));
                        return None;
                    }
                    Some(GitHubAuth::Token(Secret::new(t.into_bytes())))
                })
            }
            (None, None, Some(app_id), Some(key)) => {
                let key = self.path(key);
                self.read_file(&at("app_private_key_file"), &key)
                    .and_then(|pem| match crate::github::app::check_private_key(&pem) {
                        _ if pem == WITHHELD => Some(GitHubAuth::App {
                            app_id,
                            private_key_pem: Secret::new(pem),
                        }),
                        Ok(()) => Some(GitHubAuth::App {
                            app_id,
                            private_key_pem: Secret::new(pem),
                        }),
                        Err(e) => {
                            self.problem(
                                &at("app_private_key_file"),
                                format!("{}: {e}", key.display()),
                            );
                            None
                        }
                    })
            }
            (None, None, Some(_), None) => {
                self.problem(
                    &at("app_private_key_file"),
                    "missing: app_id needs the App's private key (.pem)",
                );
                None
            }
            (None, None, None, _) => {
                self.problem(
                    &at("token_file"),
                    format!("missing: set token_file, {ENV_GITHUB_TOKEN}, or app_id with app_private_key_file"),
                );
                None
            }
        };
        Some(GitHub {
            api_url: api_url?,
            webhook_secrets: secrets?,
            auth: auth?,
            reconcile_every: raw.reconcile_every.unwrap_or(DEFAULT_RECONCILE_EVERY),
        })
    }

    fn runner(&mut self, raw: RawRunner) -> Option<Runner> {
        let max = raw.max_concurrent.unwrap_or(8);
        let max_concurrent = match usize::try_from(max).ok().and_then(NonZeroUsize::new) {
            Some(n) => n,
            None => {
                self.problem(
                    &[Seg::Key("runner"), Seg::Key("max_concurrent")],
                    format!("{max} is not a positive number"),
                );
                return None;
            }
        };
        Some(Runner {
            max_concurrent,
            shutdown_grace: raw.shutdown_grace.unwrap_or(Duration::from_secs(60)),
        })
    }

    fn ssh(&mut self, raw: RawSsh) -> Option<Ssh> {
        let at = |k| [Seg::Key("ssh"), Seg::Key(k)];
        let mut ok = true;
        let mut existing = |cx: &mut Self, key: &'static str, p: Option<PathBuf>| {
            let p = p.map(|p| cx.path(p));
            if let Some(f) = &p
                && let Err(e) = std::fs::metadata(f)
            {
                let m = cx.unreadable(f, &e);
                cx.problem(&at(key), m);
                ok = false;
            }
            p
        };
        let identity_file = existing(self, "identity_file", raw.identity_file);
        let config_file = existing(self, "config_file", raw.config_file);
        let known_hosts_file = match raw.known_hosts_file {
            Some(p) => existing(self, "known_hosts_file", Some(p)),
            None => {
                self.problem(
                    &at("known_hosts_file"),
                    "missing: ferry checks host keys strictly; collect them with `ssh-keyscan -H HOST >> known_hosts` and verify the fingerprints",
                );
                ok = false;
                None
            }
        };
        let max = raw
            .max_connections
            .unwrap_or(DEFAULT_MAX_CONNECTIONS as i64);
        let max_connections = usize::try_from(max).ok().and_then(NonZeroUsize::new);
        if max_connections.is_none() {
            self.problem(
                &at("max_connections"),
                format!("{max} is not a positive number"),
            );
            ok = false;
        }
        let connect_timeout = raw.connect_timeout.unwrap_or(Duration::from_secs(10));
        if connect_timeout < Duration::from_secs(1) {
            self.problem(&at("connect_timeout"), "must be at least 1s");
            ok = false;
        }
        // ssh counts ServerAliveInterval in whole seconds; 0 turns it off.
        let keepalive = raw.keepalive.unwrap_or(DEFAULT_KEEPALIVE);
        if keepalive < Duration::from_secs(1) || keepalive.subsec_nanos() != 0 {
            self.problem(
                &at("keepalive"),
                "must be a whole number of seconds, at least 1s (ssh's ServerAliveInterval)",
            );
            ok = false;
        }
        if !ok {
            return None;
        }
        Some(Ssh {
            identity_file,
            known_hosts_file: known_hosts_file?,
            connect_timeout,
            config_file,
            max_connections: max_connections?,
            idle_timeout: raw.idle_timeout.unwrap_or(DEFAULT_IDLE_TIMEOUT),
            keepalive,
        })
    }

    fn targets(&mut self) -> Option<Vec<Target>> {
        let Some(value) = self.value_at(&[Seg::Key("target")]) else {
            self.problem(
                &[Seg::Key("target")],
                "no [[target]]: ferry would accept no deployment",
            );
            return None;
        };
        let DeValue::Array(items) = value.get_ref() else {
            self.problem(&[Seg::Key("target")], "expected [[target]] tables");
            return None;
        };
        let mut targets = Vec::new();
        let mut all_ok = true;
        let mut seen = HashSet::new();
        for (i, item) in items.iter().enumerate() {
            let path = [Seg::Key("target"), Seg::Index(i)];
            self.step_keys(&path);
            let raw: Option<RawTarget> = self.table_at(&path, item.span());
            match raw.and_then(|r| self.target(i, r)) {
                Some(t) => {
                    if !seen.insert((t.repository.clone(), t.environment.clone(), t.task.clone())) {
                        self.warning(
                            &path,
                            format!(
                                "{} {} (task {}) is owned by an earlier target; this one never runs",
                                t.repository, t.environment, t.task
                            ),
                        );
                    }
                    targets.push(t)
                }
                None => all_ok = false,
            }
        }
        all_ok.then_some(targets)
    }

    /// Reports unknown keys inside `[[target.steps]]` and
    /// `[[target.teardown]]`, all of them.
    fn step_keys(&mut self, target: &[Seg]) {
        for list in raw::STEP_LISTS {
            let mut path = target.to_vec();
            path.push(Seg::Key(list));
            let Some(DeValue::Array(steps)) = self.value_at(&path).map(|v| v.get_ref()) else {
                continue;
            };
            for (j, s) in steps.iter().enumerate() {
                if let DeValue::Table(t) = s.get_ref() {
                    let mut p = path.clone();
                    p.push(Seg::Index(j));
                    self.known_keys(t, keys::<RawStep>(), &p);
                }
            }
        }
    }

    /// The steps of one of a target's step lists (`steps`, `teardown`),
    /// or None after reporting every bad one.
    fn steps(&mut self, i: usize, list: &'static str, raw: Vec<RawStep>) -> Option<Vec<Step>> {
        let mut ok = true;
        let mut steps = Vec::new();
        let mut names = HashSet::new();
        for (j, s) in raw.into_iter().enumerate() {
            let p = |k| {
                [
                    Seg::Key("target"),
                    Seg::Index(i),
                    Seg::Key(list),
                    Seg::Index(j),
                    Seg::Key(k),
                ]
            };
            match (s.name, s.run) {
                (Some(name), Some(run)) if !name.trim().is_empty() && !run.trim().is_empty() => {
                    if !names.insert(name.clone()) {
                        self.problem(
                            &p("name"),
                            format!("step name {name:?} is used twice in this list"),
                        );
                        ok = false;
                    }
                    steps.push(Step { name, run })
                }
                (name, run) => {
                    if name.is_none_or(|n| n.trim().is_empty()) {
                        self.problem(&p("name"), "missing: every step needs a name");
                    }
                    if run.is_none_or(|r| r.trim().is_empty()) {
                        self.problem(&p("run"), "missing: every step needs a script to run");
                    }
                    ok = false;
                }
            }
        }
        ok.then_some(steps)
    }

    fn target(&mut self, i: usize, raw: RawTarget) -> Option<Target> {
        let at = |k| [Seg::Key("target"), Seg::Index(i), Seg::Key(k)];
        let mut ok = true;
        let repository = match raw.repository {
            Some(r) if is_repository(&r) => Some(r),
            Some(r) => {
                self.problem(&at("repository"), format!("{r:?} is not \"owner/name\""));
                None
            }
            None => {
                self.problem(&at("repository"), "missing, e.g. \"octo-org/web\"");
                None
            }
        };
        let environment = match raw.environment {
            Some(e) if !e.trim().is_empty() => Some(e),
            _ => {
                self.problem(
                    &at("environment"),
                    "missing, e.g. \"production\" or \"review-*\"",
                );
                None
            }
        };
        let task = raw.task.unwrap_or_else(|| DEFAULT_TASK.into());
        let mut hosts = Vec::new();
        match raw.hosts {
            Some(list) if !list.is_empty() => {
                let mut seen = HashSet::new();
                for (j, h) in list.iter().enumerate() {
                    let p = [
                        Seg::Key("target"),
                        Seg::Index(i),
                        Seg::Key("hosts"),
                        Seg::Index(j),
                    ];
                    match Host::parse(h) {
                        Ok(host) if !seen.insert(host.clone()) => {
                            self.problem(&p, format!("{h:?} is listed twice"));
                            ok = false;
                        }
                        Ok(host) => hosts.push(host),
                        Err(e) => {
                            self.problem(&p, e);
                            ok = false;
                        }
                    }
                }
            }
            _ => {
                self.problem(
                    &at("hosts"),
                    "missing: list at least one \"user@host[:port]\"",
                );
                ok = false;
            }
        }
        let parallel = match raw.parallel {
            None => None,
            Some(n) => match usize::try_from(n).ok().and_then(NonZeroUsize::new) {
                Some(n) => Some(n),
                None => {
                    self.problem(&at("parallel"), format!("{n} is not a positive number"));
                    ok = false;
                    None
                }
            },
        };
        let timeout = raw.timeout.unwrap_or(Duration::from_secs(30 * 60));
        if timeout.is_zero() {
            self.problem(&at("timeout"), "must be longer than 0s");
            ok = false;
        }
        let environment_url = match raw.environment_url {
            None => None,
            Some(u) => {
                let v = self.http_url(&at("environment_url"), &u);
                ok &= v.is_some();
                v
            }
        };
        let steps = self.steps(i, "steps", raw.steps);
        let teardown = self.steps(i, "teardown", raw.teardown);
        let teardown_after = raw.teardown_after;
        if teardown_after.is_some_and(|t| t.is_zero()) {
            self.problem(&at("teardown_after"), "must be longer than 0s");
            ok = false;
        }
        let (Some(steps), Some(teardown)) = (steps, teardown) else {
            return None;
        };
        if ok && steps.is_empty() {
            self.warning(
                &[Seg::Key("target"), Seg::Index(i)],
                "no [[target.steps]]: its deployments will end in 'error'",
            );
        }
        if !ok {
            return None;
        }
        Some(Target {
            repository: repository?,
            environment: environment?,
            task,
            hosts,
            parallel,
            timeout,
            environment_url,
            supersede: raw.supersede.unwrap_or(true),
            auto_inactive: raw.auto_inactive.unwrap_or(true),
            teardown_after,
            steps,
            teardown,
        })
    }
}

fn is_repository(r: &str) -> bool {
    let ok_part = |p: &str| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    matches!(r.split_once('/'), Some((o, n)) if ok_part(o) && ok_part(n))
}

#[cfg(test)]
mod tests;

/// The form of a PostgreSQL URL; whether the database answers is
/// `check-config`'s to find out.
fn check_database_url(url: &str) -> Result<(), String> {
    let example = "e.g. \"postgres://ferry@db.internal/ferry\"";
    let Some(rest) = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
    else {
        return Err(format!(
            "not a PostgreSQL URL: it must start with postgres:// ({example}); \
             without database_url ferry keeps its state in SQLite under storage.dir"
        ));
    };
    let host = rest.split(['/', '?']).next().unwrap_or_default();
    let host = host.rsplit('@').next().unwrap_or_default();
    if host.is_empty() && !rest.contains("host=") {
        return Err(format!("names no host ({example})"));
    }
    Ok(())
}
