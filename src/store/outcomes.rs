//! What deployments came to, for the delivery metrics (`ferry stats`,
//! `/metrics`): the deployments that ended, which of them were
//! rollbacks, and each one's commit time.
//!
//! A commit time is read from GitHub once per deployment that ran and
//! ended. The look is queued by a trigger in the transaction that ends
//! the deployment, taken under a lease by one process (like the other
//! leased looks, `looks.rs`), and retried while GitHub is out of reach;
//! nothing waits for it. Each backend implements it in its `outcomes.rs`.

use async_trait::async_trait;

use super::{DeploymentId, Owner, Result, State};
use crate::store::Timestamp;

/// The columns of an [`Ended`], over `deployments d`: the same SQL on
/// both backends (each row's rollback mark and commit time by their keys).
pub(super) const ENDED: &str = "SELECT d.id, d.repository, d.environment, d.state, d.started_at,
        d.finished_at, d.cancelled_by IS NOT NULL AS cancelled,
        EXISTS (SELECT 1 FROM rollbacks r WHERE r.deployment_id = d.id) AS rollback,
        (SELECT c.committed_at FROM commit_times c WHERE c.deployment_id = d.id) AS committed_at
    FROM deployments d";

/// Which rows are [`Ended`]: not a teardown (negative ids), not a lock
/// task. `finished_at IS NOT NULL` lets the partial indexes serve.
pub(super) const IS_ENDED: &str = "d.finished_at IS NOT NULL AND d.id > 0
    AND d.state IN ('success', 'failure', 'error')
    AND d.task NOT IN ('deploy:lock', 'deploy:unlock')";

/// A deployment that ran and ended (not a teardown, not a lock task).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    pub id: DeploymentId,
    pub repository: String,
    pub environment: String,
    /// `success`, `failure` or `error`.
    pub state: State,
    pub started_at: Option<Timestamp>,
    pub finished_at: Timestamp,
    /// Ended by `ferry cancel` (its state is `error`).
    pub cancelled: bool,
    /// A rollback (`ferry rollback`, `.rollback`), or it put its hosts
    /// back itself.
    pub rollback: bool,
    /// Its commit's `committer.date` (ms since the epoch), once read.
    pub committed_at: Option<Timestamp>,
}

impl Ended {
    /// What DORA counts as a deployment: everything that ended but a cancel.
    pub fn counts(&self) -> bool {
        !self.cancelled
    }

    pub fn failed(&self) -> bool {
        self.counts() && matches!(self.state, State::Failure | State::Error)
    }

    /// The word `/metrics` uses: GitHub's state, or `cancelled`.
    pub fn word(&self) -> &'static str {
        if self.cancelled {
            "cancelled"
        } else {
            self.state.as_str()
        }
    }
}

/// How a deployment came to be a rollback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RollbackKind {
    /// `ferry rollback`, `.rollback`.
    Requested,
    /// A failed deployment put its hosts back (`rollback = true`).
    Automatic,
}

impl RollbackKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RollbackKind::Requested => "requested",
            RollbackKind::Automatic => "automatic",
        }
    }
}

/// A commit time to read from GitHub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitLook {
    pub seq: i64,
    pub deployment: DeploymentId,
    pub repository: String,
    pub sha: String,
    pub installation_id: Option<i64>,
    /// Tries so far.
    pub attempts: i64,
}

#[async_trait]
pub trait Outcomes: Send + Sync {
    /// Deployments that ended at or after `since` (ms since the epoch),
    /// of one repository and environment when given, in the order they
    /// ended.
    async fn ended_since(
        &self,
        since: Timestamp,
        environment: Option<(&str, &str)>,
    ) -> Result<Vec<Ended>>;

    /// One ended deployment; None for one that has not ended, a
    /// teardown or a lock task.
    async fn ended(&self, id: DeploymentId) -> Result<Option<Ended>>;

    /// The deployments of `id`'s environment that ended before it, newest
    /// first, at most `limit` (a recovery's run of failures).
    async fn ended_before(&self, id: DeploymentId, limit: i64) -> Result<Vec<Ended>>;

    /// Marks `id` as a rollback; marking it twice changes nothing.
    async fn record_rollback(&self, id: DeploymentId, kind: RollbackKind) -> Result<()>;

    /// Commit times to read by `now`, oldest first, at most `limit`, each
    /// leased to `owner` until `until`.
    async fn due_commit_looks(
        &self,
        owner: &Owner,
        now: Timestamp,
        until: Timestamp,
        limit: i64,
    ) -> Result<Vec<CommitLook>>;

    /// A commit time read before for this repository and sha, by any
    /// deployment (GitHub is not asked twice for one commit).
    async fn known_commit_time(&self, repository: &str, sha: &str) -> Result<Option<Timestamp>>;

    /// The look is done: the commit time, or None with why it cannot be
    /// had (the commit is gone). False when `owner` no longer holds it.
    async fn commit_look_done(
        &self,
        seq: i64,
        owner: &Owner,
        committed_at: Option<Timestamp>,
        error: Option<&str>,
    ) -> Result<bool>;

    /// GitHub did not answer: looked at again at `at`, one more try
    /// counted. False when `owner` no longer holds it.
    async fn commit_look_later(
        &self,
        seq: i64,
        owner: &Owner,
        at: Timestamp,
        error: &str,
    ) -> Result<bool>;

    /// At the start of a process that uses the store alone: the last
    /// one's looks are due at once.
    async fn release_commit_looks(&self) -> Result<u64>;
}
