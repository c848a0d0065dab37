//! What the steering commands (`deployments`, `show`, `logs`, `lock`,
//! `unlock`, `locks`, `cancel`, `teardown`) read of the config: the
//! `[storage]` table and the targets' repositories, environments and
//! tasks, nothing else. An operator runs them during an incident with
//! `sudo`, where the secret files are out of reach (`${CREDENTIALS_DIRECTORY}`
//! is only set for the service) and while a half-edited file on disk has
//! problems the running daemon does not share: neither may stop them.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};

use super::raw::RawStorage;
use super::{Checker, ConfigError, ENV_CREDENTIALS, Problem, Seg, Storage, line_of};
use crate::glob;

/// The part of the config the steering commands act on.
#[derive(Debug, Clone)]
pub struct Steering {
    pub path: PathBuf,
    pub storage: Storage,
    pub targets: Vec<Owned>,
    /// `[[freeze]]`, for `ferry locks` and `ferry unlock`; empty when the
    /// file's freezes have a problem (said in `freeze_problems`).
    pub freezes: Vec<crate::admission::freeze::Freeze>,
    pub freeze_problems: Vec<Problem>,
}

/// What a target owns, as far as steering goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owned {
    pub repository: super::RepoName,
    /// Exact name or glob (`review-*`).
    pub environment: String,
    pub task: String,
}

impl Steering {
    pub fn load(path: &Path) -> Result<Steering, ConfigError> {
        let text = super::read_text(path)?;
        Steering::parse(&text, path, &|k| std::env::var(k).ok())
    }

    /// `env` looks up `FERRY_DATABASE_URL` (and `CREDENTIALS_DIRECTORY`);
    /// tests pass their own.
    pub fn parse(
        text: &str,
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Steering, ConfigError> {
        let fail = |problems| ConfigError {
            path: path.to_path_buf(),
            problems,
        };
        // A file that is not TOML at all cannot be read for anything.
        let doc = DeTable::parse(text).map_err(|e| {
            fail(vec![Problem {
                key: "(syntax)".into(),
                line: e.span().map(|s| line_of(text, s.start)),
                message: e.message().trim().to_string(),
            }])
        })?;
        let mut cx = Checker {
            text,
            doc: doc.get_ref(),
            base: path.parent().unwrap_or(Path::new(".")),
            problems: Vec::new(),
            warnings: Vec::new(),
            suggested: HashSet::new(),
            credentials: env(ENV_CREDENTIALS),
        };
        let storage = cx
            .section::<RawStorage>(&[Seg::Key("storage")])
            .and_then(|raw| cx.storage(raw, env));
        let targets = owned_targets(doc.get_ref());
        // A freeze with a problem does not stop an operator: it is left out,
        // and said.
        let before = cx.problems.len();
        let freezes = cx.freezes().unwrap_or_default();
        let freeze_problems = cx.problems.split_off(before);
        match storage {
            Some(storage) if cx.problems.is_empty() => Ok(Steering {
                path: path.to_path_buf(),
                storage,
                targets,
                freezes: if freeze_problems.is_empty() {
                    freezes
                } else {
                    Vec::new()
                },
                freeze_problems,
            }),
            _ => Err(fail(cx.problems)),
        }
    }

    /// Whether any target owns the environment, whatever its task.
    pub fn owns_environment(&self, repository: &str, environment: &str) -> bool {
        self.owner_of(repository, environment).is_some()
    }

    /// The first target that owns the environment, whatever its task.
    pub fn owner_of(&self, repository: &str, environment: &str) -> Option<&Owned> {
        self.targets
            .iter()
            .find(|t| t.repository == repository && glob::matches(&t.environment, environment))
    }

    /// Whether a target runs `task` in the environment (or the task is
    /// `deploy:lock` / `deploy:unlock`, which any owner of it takes).
    pub fn owns(&self, repository: &str, environment: &str, task: &str) -> bool {
        if crate::store::LockTask::of(task).is_some() {
            return self.owns_environment(repository, environment);
        }
        self.targets.iter().any(|t| {
            t.repository == repository
                && t.task == task
                && glob::matches(&t.environment, environment)
        })
    }

    pub fn db_path(&self) -> PathBuf {
        self.storage.dir.join("ferry.db")
    }

    /// "octo-org/web:production, …" for messages.
    pub fn names(&self) -> String {
        let names: Vec<String> = self
            .targets
            .iter()
            .map(|t| format!("{}:{}", t.repository, t.environment))
            .collect();
        if names.is_empty() {
            "none".into()
        } else {
            names.join(", ")
        }
    }
}

impl From<&super::Config> for Steering {
    fn from(c: &super::Config) -> Steering {
        Steering {
            path: c.path.clone(),
            storage: c.storage.clone(),
            targets: c
                .targets
                .iter()
                .map(|t| Owned {
                    repository: t.repository.clone(),
                    environment: t.environment.clone(),
                    task: t.task.clone(),
                })
                .collect(),
            freezes: c.freezes.clone(),
            freeze_problems: Vec::new(),
        }
    }
}

/// Every `[[target]]` with a string repository and environment; anything
/// else about a target (hosts, steps, unknown keys) is the daemon's and
/// `check-config`'s business, not a reason to refuse a lock.
fn owned_targets(doc: &DeTable) -> Vec<Owned> {
    let Some((_, targets)) = doc.iter().find(|(k, _)| k.get_ref().as_ref() == "target") else {
        return Vec::new();
    };
    let DeValue::Array(targets) = targets.get_ref() else {
        return Vec::new();
    };
    let text = |t: &DeTable, key: &str| {
        t.iter()
            .find(|(k, _)| k.get_ref().as_ref() == key)
            .and_then(|(_, v)| match v.get_ref() {
                DeValue::String(s) => Some(s.to_string()),
                _ => None,
            })
    };
    targets
        .iter()
        .filter_map(|t| match t.get_ref() {
            DeValue::Table(t) => Some(Owned {
                repository: super::RepoName::new(text(t, "repository")?),
                environment: text(t, "environment")?,
                task: text(t, "task").unwrap_or_else(|| super::DEFAULT_TASK.to_string()),
            }),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Steering, ConfigError> {
        Steering::parse(text, Path::new("/etc/ferry/ferry.toml"), &|_| None)
    }

    #[test]
    fn secrets_and_other_keys_problems_do_not_stop_it() {
        let s = parse(
            r#"
[server]
public_url = 42
[github]
webhook_secret_file = "${CREDENTIALS_DIRECTORY}/webhook-secret"
token_file = "${CREDENTIALS_DIRECTORY}/github-token"
[storage]
dir = "/srv/ferry"
[[target]]
repository = "octo-org/web"
environment = "production"
hosts = ["web1"]
colour = "unknown key"
[[target.steps]]
name = "x"
[[target]]
repository = "octo-org/api"
environment = "review-*"
task = "deploy:api"
"#,
        )
        .unwrap();
        assert_eq!(s.storage.dir, PathBuf::from("/srv/ferry"));
        assert!(s.owns_environment("octo-org/web", "production"));
        assert!(s.owns_environment("octo-org/api", "review-7"));
        assert!(!s.owns_environment("octo-org/web", "staging"));
        assert_eq!(s.targets[0].task, "deploy");
        assert_eq!(s.targets[1].task, "deploy:api");
    }

    #[test]
    fn storage_problems_still_stop_it_with_key_and_line() {
        let e = parse("[storage]\ndir = \"/x\"\nlog_retention = \"soon\"\n").unwrap_err();
        let text = e.to_string();
        assert!(text.contains("storage"), "{text}");
        let e = parse("[storage]\ndri = \"/x\"\n").unwrap_err();
        assert!(e.to_string().contains("dri"), "{e}");
        assert!(e.to_string().contains("ferry.toml:2:"), "{e}");
        let e = parse("not toml [").unwrap_err();
        assert!(e.to_string().contains("syntax"), "{e}");
    }

    #[test]
    fn the_database_url_comes_from_the_environment_first() {
        let s = Steering::parse(
            "[storage]\ndatabase_url = \"postgres://file@db/ferry\"\n",
            Path::new("/etc/ferry/ferry.toml"),
            &|k| (k == super::super::ENV_DATABASE_URL).then(|| "postgres://env@db/ferry".into()),
        )
        .unwrap();
        let crate::config::Backend::Postgres { url } = s.storage.backend else {
            panic!("not PostgreSQL");
        };
        assert_eq!(url.expose_str(), "postgres://env@db/ferry");
    }
}
