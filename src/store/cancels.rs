//! Cancel (`ferry cancel`): a waiting deployment ends at once, a running
//! one is flagged for the process running it. Each backend implements it
//! in its `cancels.rs`.

use async_trait::async_trait;

use super::*;

#[async_trait]
pub trait Cancels: Send + Sync {
    /// Ends a waiting deployment at once (`error`, with `status` queued) or
    /// asks the process running it to stop it, recording who and why.
    async fn cancel(
        &self,
        id: DeploymentId,
        cancellation: &Cancellation,
        status: &NewStatus,
    ) -> Result<CancelOutcome>;

    /// How many deployments were cancelled, ever (within retention).
    async fn cancelled(&self) -> Result<i64>;

    /// Running deployments someone asked to cancel, among `claims`.
    async fn cancel_requests(&self, claims: &[Claim]) -> Result<Vec<(Claim, Cancellation)>>;
}
