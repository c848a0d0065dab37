//! `ferry lock`, `unlock`, `locks`, `teardown` and `cancel`: an operator steering the
//! running ferry. They act through the store, which every replica reads
//! (the runners look for unlocked environments and cancelled deployments
//! twice a second), so they work whichever replica or none is up, and need
//! no socket through the hardened unit.

use anyhow::bail;

use crate::cli::{Failed, clock, open_store};
use crate::config::Config;
use crate::store::{
    CancelOutcome, Cancellation, DeploymentId, EnvLock, NewStatus, State, StatusState,
    TeardownCause, TeardownQueued,
};

/// `REPO:ENV` as the command line takes it: `owner/name:environment`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvName {
    pub repository: String,
    pub environment: String,
}

impl std::str::FromStr for EnvName {
    type Err = String;

    fn from_str(s: &str) -> Result<EnvName, String> {
        let bad = || format!("{s:?} is not REPO:ENV (for example octo-org/web:production)");
        let (repository, environment) = s.split_once(':').ok_or_else(bad)?;
        let (owner, name) = repository.split_once('/').ok_or_else(bad)?;
        if owner.is_empty() || name.is_empty() || name.contains('/') || environment.is_empty() {
            return Err(bad());
        }
        Ok(EnvName {
            repository: repository.into(),
            environment: environment.into(),
        })
    }
}

impl std::fmt::Display for EnvName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.repository, self.environment)
    }
}

/// Who runs this command: the person behind sudo, else the login.
pub fn operator() -> String {
    for var in ["SUDO_USER", "LOGNAME", "USER"] {
        if let Ok(name) = std::env::var(var)
            && !name.is_empty()
        {
            return name;
        }
    }
    // SAFETY: getuid has no preconditions and cannot fail.
    format!("uid {}", unsafe { libc::getuid() })
}

fn owned(c: &Config, env: &EnvName) -> anyhow::Result<()> {
    if c.owns_environment(&env.repository, &env.environment) {
        return Ok(());
    }
    let targets: Vec<String> = c
        .targets
        .iter()
        .map(|t| format!("{}:{}", t.repository, t.environment))
        .collect();
    bail!(
        "no target owns {env}; the targets are: {}",
        if targets.is_empty() {
            "none".to_string()
        } else {
            targets.join(", ")
        }
    )
}

pub async fn lock(c: &Config, env: &EnvName, reason: &str) -> anyhow::Result<()> {
    owned(c, env)?;
    let store = open_store(c).await?.store;
    let lock = EnvLock {
        repository: env.repository.clone(),
        environment: env.environment.clone(),
        holder: operator(),
        reason: reason.to_string(),
        since: crate::store::now_ms(),
    };
    match store.lock(&lock).await? {
        None => {
            println!(
                "locked {env}: its deployments wait until `ferry unlock {env}`; one running now finishes"
            );
            Ok(())
        }
        Some(held) => {
            eprintln!("error: {env} is already locked by {}", held.describe());
            Err(Failed.into())
        }
    }
}

pub async fn unlock(c: &Config, env: &EnvName) -> anyhow::Result<()> {
    owned(c, env)?;
    let store = open_store(c).await?.store;
    match store.unlock(&env.repository, &env.environment).await? {
        Some(was) => {
            println!("unlocked {env} (locked by {})", was.describe());
            Ok(())
        }
        None => {
            eprintln!("error: {env} is not locked");
            Err(Failed.into())
        }
    }
}

pub async fn locks(c: &Config) -> anyhow::Result<()> {
    let store = open_store(c).await?.store;
    let locks = store.locks().await?;
    if locks.is_empty() {
        println!("no environment is locked");
        return Ok(());
    }
    println!(
        "{:<40}  {:<16}  {:<20}  REASON",
        "ENVIRONMENT", "LOCKED BY", "SINCE"
    );
    for l in locks {
        println!(
            "{:<40}  {:<16}  {:<20}  {}",
            format!("{}:{}", l.repository, l.environment),
            l.holder,
            clock(l.since),
            l.reason
        );
    }
    Ok(())
}

pub async fn teardown(c: &Config, env: &EnvName) -> anyhow::Result<()> {
    owned(c, env)?;
    let store = open_store(c).await?.store;
    let cause = TeardownCause::Operator(operator());
    match crate::teardown::queue(&store, &env.repository, &env.environment, &cause).await? {
        TeardownQueued::Queued {
            teardown,
            superseded,
        } => {
            println!(
                "teardown {} of {env} queued: it runs in the environment's turn; follow it with `ferry logs {}`",
                teardown.id, teardown.id
            );
            if !superseded.is_empty() {
                println!(
                    "{} waiting there will not run",
                    crate::format::plural(superseded.len(), "deployment")
                );
            }
            Ok(())
        }
        TeardownQueued::Already(t) => {
            let what = match t.state {
                State::Queued => "is waiting".to_string(),
                State::Running => "is running".to_string(),
                _ => format!(
                    "tore it down at {}",
                    t.finished_at.map_or("-".into(), clock)
                ),
            };
            eprintln!(
                "error: {env} has no deployment since teardown {}, which {what}",
                t.id
            );
            Err(Failed.into())
        }
        TeardownQueued::NoDeployment | TeardownQueued::NotApplicable(_) => {
            eprintln!("error: {env} has no deployment to tear down");
            Err(Failed.into())
        }
    }
}

pub async fn cancel(c: &Config, id: i64, reason: &str) -> anyhow::Result<()> {
    let id = DeploymentId(id);
    let opened = open_store(c).await?;
    let cancellation = Cancellation {
        by: operator(),
        reason: reason.to_string(),
    };
    let logs = crate::logs::Logs::open(
        &c.storage.dir,
        c.server.public_url.as_str(),
        opened.postgres.clone(),
    )
    .await?;
    let status =
        NewStatus::new(StatusState::Error, cancellation.describe()).with_log_url(logs.url(id));
    match opened.store.cancel(id, &cancellation, &status).await? {
        CancelOutcome::Unknown => {
            eprintln!("error: no deployment {id}");
            Err(Failed.into())
        }
        CancelOutcome::Finished(state) => {
            eprintln!("error: deployment {id} has ended already ({state})");
            Err(Failed.into())
        }
        CancelOutcome::Ended => {
            let log = logs.writer(id).await?;
            log.ferry(
                None,
                None,
                &format!("error: {}; it never ran", cancellation.describe()),
            );
            log.flush().await?;
            println!("cancelled deployment {id}: it was waiting and will not run");
            Ok(())
        }
        CancelOutcome::Requested => {
            println!(
                "cancelling deployment {id}: the ferry running it stops its steps on every host"
            );
            Ok(())
        }
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
