//! Deployments waiting for their sha's required checks (`require_checks`):
//! in their environment's turn, holding it, without a runner slot or a
//! lease. The gate is a column of the deployment, so waiting survives
//! restarts and replicas: whichever ferry looks next reads it there.

use async_trait::async_trait;

use super::{Deployment, DeploymentId, NewStatus, Result};
use crate::store::Timestamp;

/// The gates, in each backend's `gates.rs`.
#[async_trait]
pub trait Gates: Send + Sync {
    /// Deployments waiting for their checks whose look is due by `now`,
    /// oldest first, at most `limit`; each one's next look moves to `next`,
    /// so that with replicas each look is one replica's.
    async fn due_gates(
        &self,
        now: Timestamp,
        next: Timestamp,
        limit: i64,
    ) -> Result<Vec<Deployment>>;

    /// Its checks passed: it runs in its turn. False if it no longer waits
    /// (superseded, cancelled, ended).
    async fn open_gate(&self, id: DeploymentId) -> Result<bool>;

    /// Its checks failed or never passed: it ends, unrun, in `status`'s
    /// state with `status` queued. False if it no longer waits.
    async fn fail_gate(&self, id: DeploymentId, status: &NewStatus) -> Result<bool>;

    /// Still waiting: queues `status` (a `queued` naming what it waits for)
    /// unless its description is the deployment's already. Whether it did.
    async fn gate_waiting(&self, id: DeploymentId, status: &NewStatus) -> Result<bool>;

    /// Its next look is at `at` (sooner than the round's: its checks
    /// timeout is nearer).
    async fn next_look(&self, id: DeploymentId, at: Timestamp) -> Result<()>;

    /// A check of `sha` changed (a `check_run`, `check_suite` or `status`
    /// webhook): its waiting deployments are looked at now. How many.
    async fn look_again(&self, repository: &str, sha: &str) -> Result<u64>;
}
