//! The statuses queued for GitHub, sent in order per deployment. Each
//! backend implements it in its `outbox.rs`.

use async_trait::async_trait;

use super::*;
use crate::store::Timestamp;

#[async_trait]
pub trait Outbox: Send + Sync {
    /// The first pending status of each deployment that is due by `now`,
    /// oldest first. Later statuses of a deployment wait for its head.
    /// Where replicas share the store, the heads returned are claimed for a
    /// while (until [`Store::record_posts`] says what became of them), so
    /// each status is sent by one replica at a time.
    async fn due_statuses(&self, now: Timestamp, limit: i64) -> Result<Vec<OutboxItem>>;

    /// When the next pending status becomes due, if any is pending (and,
    /// with replicas, this one is the one sending).
    async fn next_status_due(&self) -> Result<Option<Timestamp>>;

    /// How many statuses wait for GitHub.
    async fn pending_statuses(&self) -> Result<i64> {
        Ok(self.pending_summary().await?.count)
    }

    /// The deployments with a status GitHub does not have yet (waiting or
    /// being retried; not those ferry gave up on).
    async fn awaiting_github(&self) -> Result<std::collections::HashSet<DeploymentId>>;

    /// How many statuses wait for GitHub, and when the oldest of them was
    /// queued (ms since the epoch): `/metrics`' view of an outage.
    async fn pending_summary(&self) -> Result<PendingStatuses>;

    /// Every status of one deployment, in order, sent or not.
    async fn statuses_of(&self, id: DeploymentId) -> Result<Vec<StatusRecord>>;

    /// Records what became of status posts, by outbox seq.
    async fn record_posts(&self, posts: &[(i64, PostOutcome)]) -> Result<()>;
}
