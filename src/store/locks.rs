//! Environment locks (`ferry lock`, `deploy:lock` deployments). Each
//! backend implements it in its `locks.rs`.

use async_trait::async_trait;

use super::*;
use crate::store::Timestamp;

#[async_trait]
pub trait Locks: Send + Sync {
    /// Locks an environment; if it is locked already, changes nothing and
    /// returns the lock that holds it.
    async fn lock(&self, lock: &EnvLock) -> Result<Option<EnvLock>>;

    /// Lifts an environment's lock, `by` whom (the unlock event names
    /// them); returns it, or None if there was none.
    async fn unlock(
        &self,
        repository: &str,
        environment: &str,
        by: &str,
    ) -> Result<Option<EnvLock>>;

    /// Lifts every lock whose `until` (`ferry lock --for`) is past by
    /// `now`, the unlock events naming `by`; the locks lifted.
    async fn expire_locks(&self, now: Timestamp, by: &str) -> Result<Vec<EnvLock>>;

    /// Every lock, oldest first.
    async fn locks(&self) -> Result<Vec<EnvLock>>;

    /// Records a `deploy:lock` / `deploy:unlock` deployment and does what
    /// it asks, all at once: unless the delivery or deployment is a
    /// duplicate, the lock changes, and the deployment is stored finished
    /// with its final status ([`LockTask::status`]) queued. `reason` is a
    /// lock's reason; for an unlock, the freeze windows it lifted, in words.
    async fn accept_lock_task(
        &self,
        delivery: &DeliveryKey,
        deployment: &NewDeployment,
        task: LockTask,
        reason: &str,
        log_url: &str,
    ) -> Result<(Accepted, Option<(State, String)>)>;
}
