//! Steps running on hosts, with what it takes to end them from elsewhere;
//! a step whose deployment ended but that ferry could not end yet is a
//! [`Hold`] on its environment. Each backend implements it in its
//! `steps.rs`.

use async_trait::async_trait;

use super::*;

#[async_trait]
pub trait Steps: Send + Sync {
    /// Remembers a step's process group on a host while it runs.
    async fn remember_step(
        &self,
        id: DeploymentId,
        host: &str,
        pgid: u32,
        boot_id: &str,
    ) -> Result<()>;

    async fn forget_step(&self, id: DeploymentId, host: &str) -> Result<()>;

    /// Steps a dead process left running.
    async fn remote_steps(&self, id: DeploymentId) -> Result<Vec<RemoteStep>>;

    /// Every hold, oldest deployment first.
    async fn holds(&self) -> Result<Vec<Hold>>;

    /// Lets an environment's deployments start again although ferry could
    /// not end the steps left there (`ferry unlock`); returns the holds
    /// lifted.
    async fn release_holds(&self, repository: &str, environment: &str) -> Result<Vec<Hold>>;
}
