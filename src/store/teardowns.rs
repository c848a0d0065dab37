//! Review apps torn down: a teardown is a job in its environment's turn,
//! stored as a deployment with a negative id ([`DeploymentId::is_teardown`])
//! that posts nothing itself. Each backend implements it in its
//! `teardown.rs`.

use async_trait::async_trait;

use super::*;

#[async_trait]
pub trait Teardowns: Send + Sync {
    /// The latest deployment of each environment of `repository`
    /// (teardowns aside).
    async fn latest_deployments(&self, repository: &str) -> Result<Vec<Deployment>>;

    /// The latest deployments of transient environments that ended and
    /// were not torn down since, oldest first.
    async fn ended_transient(&self) -> Result<Vec<Deployment>>;

    /// Queues a teardown of an environment if `cause` applies to its latest
    /// deployment and none since is waiting, running or done; deployments
    /// waiting there become `inactive`, in the same transaction.
    async fn queue_teardown(
        &self,
        repository: &str,
        environment: &str,
        cause: &TeardownCause,
    ) -> Result<TeardownQueued>;

    /// Gives a teardown its final state, if `claim` still holds (None if
    /// not). When it succeeded, every deployment of its environment from
    /// before it that is not `inactive` yet becomes `inactive`
    /// ([`TORN_DOWN`]), each with its status queued; those are returned.
    async fn finish_teardown(
        &self,
        claim: Claim,
        state: State,
        description: &str,
    ) -> Result<Option<Vec<DeploymentId>>>;
}
