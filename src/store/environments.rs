//! Environments: their key, their locks, and what else holds one (a step
//! ferry could not end, a `deploy:lock` deployment).

use std::fmt;

use crate::wording;

use super::*;
use crate::store::Timestamp;

/// What a deployment arriving in (or waiting in) an environment waits
/// for, as its `queued` description and log page say: a lock first, then
/// a step ferry could not end.
pub fn waiting_on(
    locks: &[EnvLock],
    holds: &[Hold],
    repository: &str,
    environment: &str,
) -> Option<String> {
    EnvLock::find(locks, repository, environment)
        .map(EnvLock::waiting)
        .or_else(|| {
            holds
                .iter()
                .find(|h| h.repository == repository && h.environment == environment)
                .map(Hold::waiting)
        })
}

/// An environment held by an operator: its deployments wait until it is
/// unlocked, which only an unlock ever does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvLock {
    pub repository: String,
    pub environment: String,
    /// Who locked it (a login).
    pub holder: String,
    /// Why, as given; may be empty.
    pub reason: String,
    /// Unix milliseconds.
    pub since: Timestamp,
    /// When it lifts by itself (`ferry lock --for`), unix milliseconds.
    pub until: Option<Timestamp>,
}

impl EnvLock {
    /// The lock of `repository`'s `environment` among `locks`, if any.
    pub fn find<'a>(
        locks: &'a [EnvLock],
        repository: &str,
        environment: &str,
    ) -> Option<&'a EnvLock> {
        locks
            .iter()
            .find(|l| l.repository == repository && l.environment == environment)
    }

    /// What a deployment waiting on this lock says: on GitHub (its
    /// `queued` description) and on its log page.
    pub fn waiting(&self) -> String {
        crate::wording::locked_waiting(&self.environment, &self.describe())
    }

    /// "alice since 2026-11-21 14:05 UTC: reason".
    pub fn describe(&self) -> String {
        let since = self.since.rfc3339();
        // 2026-11-21T14:05:09Z → 2026-11-21 14:05 UTC
        let since = format!("{} {} UTC", &since[..10], &since[11..16]);
        crate::wording::held_by(&self.holder, &since, &self.reason)
    }
}

/// A deployment whose task is `deploy:lock` or `deploy:unlock` (Heaven's
/// convention): it locks or unlocks its environment for its creator and
/// runs nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockTask {
    Lock,
    Unlock,
}

impl LockTask {
    pub fn of(task: &str) -> Option<LockTask> {
        match task {
            "deploy:lock" => Some(LockTask::Lock),
            "deploy:unlock" => Some(LockTask::Unlock),
            _ => None,
        }
    }

    /// The final status for an outcome. Sent with `auto_inactive: false`:
    /// GitHub would otherwise mark the environment's live deployment
    /// inactive, as if this one had replaced what runs there.
    pub fn status(state: State, description: &str, log_url: &str) -> NewStatus {
        let mut s = NewStatus::new(state.final_status(), description).with_log_url(log_url);
        s.auto_inactive = Some(false);
        s
    }

    /// The deployment's final state and description, given the lock that
    /// held its environment before it (`held`) and, for an unlock, the
    /// freeze windows it lifted too (`lifted`, in words; may be empty).
    pub fn outcome(self, creator: &str, held: Option<&EnvLock>, lifted: &str) -> (State, String) {
        match (self, held) {
            (LockTask::Lock, None) => (State::Success, wording::locked_by(creator)),
            (LockTask::Lock, Some(l)) => (State::Failure, wording::already_locked(&l.describe())),
            (LockTask::Unlock, Some(l)) if lifted.is_empty() => {
                (State::Success, wording::unlocked_by(creator, &l.describe()))
            }
            (LockTask::Unlock, Some(l)) => (
                State::Success,
                format!(
                    "{}; lifted {lifted}",
                    wording::unlocked_by(creator, &l.describe())
                ),
            ),
            (LockTask::Unlock, None) if !lifted.is_empty() => {
                (State::Success, wording::freeze_lifted_by(creator, lifted))
            }
            (LockTask::Unlock, None) => (State::Success, wording::NOTHING_TO_UNLOCK.into()),
        }
    }
}

/// A step left running on a host that ferry could not end yet (the host
/// did not answer after a crash, a dead replica or a lost connection): no
/// deployment starts in its environment until ferry has ended it, the host
/// rebooted, or an operator released it with `ferry unlock`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    pub repository: String,
    pub environment: String,
    /// The deployment whose step it is (it has ended).
    pub deployment: DeploymentId,
    pub step: RemoteStep,
}

impl Hold {
    /// The host as logs and descriptions name it (no user).
    pub fn host(&self) -> String {
        self.step.host_name()
    }

    /// "cannot end the step of deployment 41 on web1 yet".
    pub fn describe(&self) -> String {
        crate::wording::hold(self.deployment, &self.host())
    }

    /// What a deployment waiting on this hold says (its `queued`).
    pub fn waiting(&self) -> String {
        crate::wording::held_waiting(&self.environment, &self.describe())
    }
}

/// One environment of one repository: what locks, holds, freezes and the
/// queue's turns are kept by. The command line names it `REPO:ENV`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EnvKey {
    pub repository: String,
    pub environment: String,
}

impl EnvKey {
    pub fn new(repository: impl Into<String>, environment: impl Into<String>) -> EnvKey {
        EnvKey {
            repository: repository.into(),
            environment: environment.into(),
        }
    }
}

impl fmt::Display for EnvKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.repository, self.environment)
    }
}

/// `REPO:ENV`, as the command line takes it: `owner/name:environment`.
impl std::str::FromStr for EnvKey {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<EnvKey, String> {
        let bad = || format!("{s:?} is not REPO:ENV (for example octo-org/web:production)");
        let (repository, environment) = s.split_once(':').ok_or_else(bad)?;
        let (owner, name) = repository.split_once('/').ok_or_else(bad)?;
        if owner.is_empty() || name.is_empty() || name.contains('/') || environment.is_empty() {
            return Err(bad());
        }
        Ok(EnvKey::new(repository, environment))
    }
}

/// As a `[repository, environment]` pair: SQLite's claim reads the held
/// environments as a JSON array of those.
impl serde::Serialize for EnvKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        (&self.repository, &self.environment).serialize(s)
    }
}
