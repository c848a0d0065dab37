//! GitHub Actions runs waiting at a deployment protection rule
//! (`[protection]`): one row per run, unique by its callback URL, so an
//! event delivered twice is answered once, across restarts and replicas.
//! A waiting run is looked at every second (is its environment free yet?)
//! under a lease; what ferry last told GitHub is kept, so a reason is
//! reported once. Each backend implements it in its `protection.rs`.

use async_trait::async_trait;

use super::{Owner, Result};
use crate::store::Timestamp;

/// A run as the `deployment_protection_rule` event names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRun {
    pub repository: String,
    pub environment: String,
    /// GitHub's Actions run id, from the callback URL (for people).
    pub run_id: i64,
    /// Where the answer goes: checked to be under `github.api_url`.
    pub callback_url: String,
    pub installation_id: Option<i64>,
}

/// A run not answered yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitingRun {
    pub seq: i64,
    pub run: NewRun,
    pub since: Timestamp,
    /// What ferry last reported to GitHub about it, if anything.
    pub reported: Option<String>,
}

/// How a run's wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEnd {
    Approved,
    /// GitHub no longer waits for an answer (a 4xx: the run was cancelled,
    /// or approved by someone else).
    Gone,
}

impl RunEnd {
    pub fn as_str(self) -> &'static str {
        match self {
            RunEnd::Approved => "approved",
            RunEnd::Gone => "gone",
        }
    }
}

/// The runs, in each backend's `protection.rs`.
#[async_trait]
pub trait ProtectionRuns: Send + Sync {
    /// Records a run; false when it was recorded before.
    async fn record_run(&self, run: &NewRun) -> Result<bool>;

    /// Waiting runs due by `now`, oldest first, at most `limit`, each
    /// leased to `owner` until `until`.
    async fn due_runs(
        &self,
        owner: &Owner,
        now: Timestamp,
        until: Timestamp,
        limit: i64,
    ) -> Result<Vec<WaitingRun>>;

    /// Still waiting: looked at again at `at`; `reported` is what GitHub
    /// was told now, if anything. False when the lease was lost.
    async fn run_later(
        &self,
        seq: i64,
        owner: &Owner,
        at: Timestamp,
        reported: Option<&str>,
    ) -> Result<bool>;

    /// Its wait ended. False when the lease was lost or it ended before.
    async fn end_run(&self, seq: i64, owner: &Owner, end: RunEnd) -> Result<bool>;

    /// Every waiting run, oldest first (`ferry locks`, the metrics).
    async fn waiting_runs(&self) -> Result<Vec<WaitingRun>>;

    /// At the start of a process that uses the store alone: the last
    /// one's looks are due at once.
    async fn release_runs(&self) -> Result<u64>;
}
