//! A mutex lock that outlives a panic elsewhere: ferry's shared maps (idle
//! connections, running deployments, caches) stay usable after a task
//! that held one panicked, since what they hold is valid at every step.

use std::sync::{Mutex, MutexGuard};

pub trait LockExt<T> {
    /// The guard, poisoned or not.
    fn locked(&self) -> MutexGuard<'_, T>;
}

impl<T> LockExt<T> for Mutex<T> {
    fn locked(&self) -> MutexGuard<'_, T> {
        self.lock().unwrap_or_else(|p| p.into_inner())
    }
}
