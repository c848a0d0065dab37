//! What the steering commands share (`lock`, `unlock`, `locks`, `cancel`,
//! `teardown`, `deploy`, `rollback`, and the readers `deployments`, `show`
//! and `logs`): they act through the store, which every replica reads (the
//! runners look for unlocked environments and cancelled deployments twice a
//! second), so they work whichever replica or none is up, and need no
//! socket through the hardened unit. They read only `[storage]` and the
//! targets' names ([`Steering`]).

use anyhow::{Context, bail};

use crate::config::Steering;
use crate::store::{DeploymentId, OperatorAction, SharedStore};

/// `REPO:ENV` as the command line takes it.
pub use crate::store::EnvKey as EnvName;

/// Who runs this command (NAME): the person behind sudo, else the login
/// name of the caller's user id. Not `$USER` or `$LOGNAME`, which anyone
/// can set and which a service or `sudo -i` leaves unset or wrong.
pub fn operator() -> String {
    if let Ok(name) = std::env::var("SUDO_USER")
        && !name.is_empty()
    {
        return name;
    }
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    crate::user::entry(uid)
        .map(|e| e.name)
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| format!("uid {uid}"))
}

/// Records what the operator did, for the running ferry to write to its
/// log with `ACTOR=`. The action itself has happened: a failure here is
/// said, not fatal.
pub(crate) async fn audit(
    store: &SharedStore,
    action: &str,
    env: (&str, &str),
    deployment: Option<DeploymentId>,
    detail: String,
) {
    let a = OperatorAction {
        seq: 0,
        at: crate::store::Timestamp::now(),
        actor: operator(),
        action: action.to_string(),
        repository: env.0.to_string(),
        environment: env.1.to_string(),
        deployment,
        detail,
    };
    if let Err(e) = store.record_action(&a).await {
        eprintln!("warning: done, but not recorded for ferry's log: {e}");
    }
}

/// `env` as the targets spell its repository (GitHub's names ignore
/// case), or why no target owns it.
pub(crate) fn owned(c: &Steering, env: &EnvName) -> anyhow::Result<EnvName> {
    if let Some(t) = c.owner_of(&env.repository, &env.environment) {
        return Ok(EnvName::new(
            t.repository.as_str(),
            env.environment.as_str(),
        ));
    }
    bail!("no target owns {env}; the targets are: {}", c.names())
}

/// Says once that the file's freezes were left out, and why.
pub(super) fn warn_freeze_problems(c: &Steering) {
    for p in &c.freeze_problems {
        eprintln!(
            "warning: freezes left out ({}); run `ferry check-config`",
            p.at(&c.path)
        );
    }
}

pub(crate) async fn open_store(c: &Steering) -> anyhow::Result<crate::store::Opened> {
    if !c.storage.backend.shared() {
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
    match &c.storage.backend {
        crate::config::Backend::Postgres { .. } => {
            "the PostgreSQL database (storage.database_url)".into()
        }
        crate::config::Backend::Sqlite => c.db_path().display().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::EnvName;

    #[test]
    fn environment_names_are_owner_slash_repo_colon_environment() {
        let e: EnvName = "octo-org/web:pr-12:eu".parse().unwrap();
        assert_eq!(
            (e.repository.as_str(), e.environment.as_str()),
            ("octo-org/web", "pr-12:eu")
        );
        for bad in [
            "",
            "web",
            "octo-org/web",
            "octo-org/web:",
            "/web:p",
            "o/:p",
            "a/b/c:p",
        ] {
            assert!(bad.parse::<EnvName>().is_err(), "{bad:?}");
        }
    }
}
