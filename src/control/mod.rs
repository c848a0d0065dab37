//! `ferry lock`, `unlock`, `locks`, `teardown` and `cancel` (and, in
//! [`deploy`], `ferry deploy` and `ferry rollback`): an operator steering the
//! running ferry. They act through the store, which every replica reads
//! (the runners look for unlocked environments and cancelled deployments
//! twice a second), so they work whichever replica or none is up, and need
//! no socket through the hardened unit.

pub mod deploy;

use anyhow::bail;

use crate::cli::{Failed, clock, open_store};
use crate::config::Steering;
use crate::store::{
    CancelOutcome, Cancellation, DeploymentId, EnvLock, NewStatus, OperatorAction, SharedStore,
    State, StatusState, TeardownCause, TeardownQueued,
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
    login_name(uid).unwrap_or_else(|| format!("uid {uid}"))
}

/// The passwd entry's name for `uid`, if it has one.
fn login_name(uid: libc::uid_t) -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 4096];
    // SAFETY: an all-zero passwd is a valid out-parameter.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is to memory we own, `buf.len()` is its size,
    // and the strings read below live in `buf`, which outlives them.
    let rc = unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut found) };
    if rc != 0 || found.is_null() || pwd.pw_name.is_null() {
        return None;
    }
    // SAFETY: getpwuid_r succeeded, so pw_name is a NUL-terminated string in `buf`.
    let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
    Some(name.to_string_lossy().into_owned()).filter(|n| !n.is_empty())
}

/// Records what the operator did, for the running ferry to write to its
/// log with `ACTOR=`. The action itself has happened: a failure here is
/// said, not fatal.
pub(super) async fn audit(
    store: &SharedStore,
    action: &str,
    env: (&str, &str),
    deployment: Option<DeploymentId>,
    detail: String,
) {
    let a = OperatorAction {
        seq: 0,
        at: crate::store::now_ms(),
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

pub(crate) fn owned(c: &Steering, env: &EnvName) -> anyhow::Result<()> {
    if c.owns_environment(&env.repository, &env.environment) {
        return Ok(());
    }
    bail!("no target owns {env}; the targets are: {}", c.names())
}

pub async fn lock(c: &Steering, env: &EnvName, reason: &str) -> anyhow::Result<()> {
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
            let why = if reason.is_empty() {
                String::new()
            } else {
                format!(": {reason}")
            };
            audit(
                &store,
                "lock",
                (&env.repository, &env.environment),
                None,
                format!("locked {env}{why}"),
            )
            .await;
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

/// Says once that the file's freezes were left out, and why.
fn warn_freeze_problems(c: &Steering) {
    for p in &c.freeze_problems {
        eprintln!(
            "warning: freezes left out ({}); run `ferry check-config`",
            p.at(&c.path)
        );
    }
}

/// Lifts every freeze window holding the environment now, until each ends;
/// what it lifted (windows lifted before are not lifted again).
async fn lift_freezes(
    c: &Steering,
    store: &SharedStore,
    env: &EnvName,
) -> anyhow::Result<Vec<String>> {
    let all = crate::freeze::lift(
        store,
        &c.freezes,
        &env.repository,
        &env.environment,
        &operator(),
    )
    .await?;
    let mut lifted = Vec::new();
    for (freeze, until, new) in all {
        if new {
            println!(
                "lifted freeze {freeze} for {env} until {until}; its next window holds it again"
            );
            lifted.push(format!("freeze {freeze} until {until}"));
        }
    }
    Ok(lifted)
}

pub async fn unlock(c: &Steering, env: &EnvName) -> anyhow::Result<()> {
    owned(c, env)?;
    warn_freeze_problems(c);
    let store = open_store(c).await?.store;
    let lock = store.unlock(&env.repository, &env.environment).await?;
    let holds = store
        .release_holds(&env.repository, &env.environment)
        .await?;
    let freezes = lift_freezes(c, &store, env).await?;
    if lock.is_none() && holds.is_empty() && freezes.is_empty() {
        eprintln!("error: {env} is not locked");
        return Err(Failed.into());
    }
    let mut lifted = freezes;
    if let Some(was) = &lock {
        println!("unlocked {env} (locked by {})", was.describe());
        lifted.push(format!("lock of {}", was.holder));
    }
    for h in &holds {
        println!(
            "released {env}: the step of deployment {} on {} may still run there (ferry {})",
            h.deployment,
            h.host(),
            h.describe()
        );
        lifted.push(format!(
            "hold on the step of deployment {} on {}",
            h.deployment,
            h.host()
        ));
    }
    audit(
        &store,
        "unlock",
        (&env.repository, &env.environment),
        None,
        format!("unlocked {env} ({})", lifted.join(", ")),
    )
    .await;
    Ok(())
}

/// The environments a freeze holds now, among those a target names
/// exactly and those with a deployment waiting: (environment, freeze,
/// window).
async fn frozen_now(
    c: &Steering,
    store: &SharedStore,
) -> anyhow::Result<Vec<(String, String, crate::freeze::Window, String)>> {
    if c.freezes.is_empty() {
        return Ok(Vec::new());
    }
    let now = jiff::Timestamp::now();
    let lifts = store.freeze_lifts(crate::freeze::ms(now)).await?;
    let mut candidates: Vec<(String, String)> = c
        .targets
        .iter()
        .filter(|t| !t.environment.contains(['*', '?', '[']))
        .map(|t| (t.repository.clone(), t.environment.clone()))
        .collect();
    candidates.extend(store.waiting_environments().await?);
    candidates.sort();
    candidates.dedup();
    Ok(candidates
        .into_iter()
        .filter_map(|(r, e)| {
            let (f, w) = crate::freeze::frozen(&c.freezes, &lifts, &r, &e, now)?;
            let until = f.local(w.end, now);
            Some((format!("{r}:{e}"), f.name.clone(), w, until))
        })
        .collect())
}

pub async fn locks(c: &Steering, json: bool) -> anyhow::Result<()> {
    warn_freeze_problems(c);
    let store = open_store(c).await?.store;
    let locks = store.locks().await?;
    let holds = store.holds().await?;
    let frozen = frozen_now(c, &store).await?;
    if json {
        // JSON Lines: one environment held per line, whatever holds it.
        let line = |r: &str, e: &str, kind: &str, by: &str, since: Option<i64>, reason: &str| {
            serde_json::json!({
                "repository": r,
                "environment": e,
                "kind": kind,
                "by": by,
                "since": since.map(clock),
                "reason": reason,
            })
        };
        for l in &locks {
            let v = line(
                &l.repository,
                &l.environment,
                "lock",
                &l.holder,
                Some(l.since),
                &l.reason,
            );
            println!("{v}");
        }
        for h in &holds {
            let v = line(
                &h.repository,
                &h.environment,
                "hold",
                "ferry",
                None,
                &h.describe(),
            );
            println!("{v}");
        }
        for (env, freeze, window, until) in &frozen {
            let (r, e) = env.split_once(':').unwrap_or((env.as_str(), ""));
            let by = crate::wording::freeze_holder(freeze);
            let since = Some(crate::freeze::ms(window.start));
            let v = line(r, e, "freeze", &by, since, &format!("frozen until {until}"));
            println!("{v}");
        }
        return Ok(());
    }
    if locks.is_empty() && holds.is_empty() && frozen.is_empty() {
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
    for h in holds {
        println!(
            "{:<40}  {:<16}  {:<20}  held: {}",
            format!("{}:{}", h.repository, h.environment),
            "ferry",
            "-",
            h.describe()
        );
    }
    for (env, freeze, window, until) in frozen {
        println!(
            "{:<40}  {:<16}  {:<20}  frozen until {until}",
            env,
            crate::wording::freeze_holder(&freeze),
            clock(crate::freeze::ms(window.start)),
        );
    }
    Ok(())
}

pub async fn teardown(c: &Steering, env: &EnvName, yes: bool) -> anyhow::Result<()> {
    owned(c, env)?;
    let store = open_store(c).await?.store;
    // A review app is torn down on request; anything else (production)
    // only when the operator says so twice: GitHub then shows it destroyed.
    let latest = store.latest_deployments(&env.repository).await?;
    if let Some(d) = latest.iter().find(|d| d.environment == env.environment)
        && !d.transient
        && !yes
    {
        eprintln!(
            "error: {}",
            crate::wording::teardown_needs_yes(&env.to_string(), d.id)
        );
        return Err(Failed.into());
    }
    let cause = TeardownCause::Operator(operator());
    match crate::teardown::queue(&store, &env.repository, &env.environment, &cause).await? {
        TeardownQueued::Queued {
            teardown,
            superseded,
        } => {
            audit(
                &store,
                "teardown",
                (&env.repository, &env.environment),
                Some(teardown.id),
                format!("queued teardown {} of {env}", teardown.id),
            )
            .await;
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

pub async fn cancel(c: &Steering, id: i64, reason: &str, rollback: bool) -> anyhow::Result<()> {
    let id = DeploymentId(id);
    let opened = open_store(c).await?;
    let store = opened.store;
    let cancellation = Cancellation {
        by: operator(),
        reason: reason.to_string(),
        rollback,
    };
    // No log_url: the command does not read server.public_url, and the
    // outbox adds the link as it posts (GitHub's deployment page shows it).
    let status = NewStatus::new(StatusState::Error, cancellation.describe());
    let outcome = store.cancel(id, &cancellation, &status).await?;
    let d = match outcome {
        CancelOutcome::Unknown => {
            eprintln!(
                "error: {}",
                crate::wording::no_deployment(id, &crate::cli::where_stored(c))
            );
            return Err(Failed.into());
        }
        CancelOutcome::Finished(state) => {
            eprintln!("error: deployment {id} has ended already ({state})");
            return Err(Failed.into());
        }
        _ => store.get(id).await?,
    };
    let env = d
        .as_ref()
        .map(|d| (d.repository.clone(), d.environment.clone()))
        .unwrap_or_default();
    let why = if reason.is_empty() {
        String::new()
    } else {
        format!(": {reason}")
    };
    let was = match outcome {
        CancelOutcome::Ended => {
            let logs = crate::logs::Logs::open(&c.storage.dir, "", opened.database.clone()).await?;
            let log = logs.writer(id).await?;
            log.ferry(
                None,
                None,
                &format!("error: {}; it never ran", cancellation.describe()),
            );
            log.flush().await?;
            println!("cancelled deployment {id}: it was waiting and will not run");
            "waiting"
        }
        _ => {
            println!(
                "cancelling deployment {id}: the ferry running it stops its steps on every host"
            );
            "running"
        }
    };
    audit(
        &store,
        "cancel",
        (&env.0, &env.1),
        Some(id),
        format!(
            "cancelled deployment {id} of {}:{} (it was {was}{}){why}",
            env.0,
            env.1,
            if rollback && was == "running" {
                "; putting back its hosts"
            } else {
                ""
            }
        ),
    )
    .await;
    Ok(())
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
