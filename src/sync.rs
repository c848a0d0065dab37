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

/// A ring that every listener hears: the GitHub outbox and the notifier
/// both sleep until a status is queued, and a `Notify` wakes only one
/// sleeper (its permit is taken by whoever comes first). Each listener
/// keeps its own place in a `watch` channel, so a ring while it was busy
/// is heard at its next wait.
#[derive(Clone)]
pub struct Bell(std::sync::Arc<tokio::sync::watch::Sender<u64>>);

impl Default for Bell {
    fn default() -> Bell {
        Bell(std::sync::Arc::new(tokio::sync::watch::Sender::new(0)))
    }
}

impl Bell {
    pub fn ring(&self) {
        self.0.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A listener that hears rings from now on.
    pub fn listener(&self) -> Listener {
        let mut rx = self.0.subscribe();
        rx.mark_unchanged();
        Listener(rx)
    }
}

pub struct Listener(tokio::sync::watch::Receiver<u64>);

impl Listener {
    /// Returns at the next ring (at once if one came since the last).
    pub async fn rung(&mut self) {
        if self.0.changed().await.is_err() {
            // The bell is gone: nothing will ring again.
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_listener_hears_a_ring_made_while_it_was_busy() {
        let bell = Bell::default();
        let (mut a, mut b) = (bell.listener(), bell.listener());
        bell.ring();
        a.rung().await;
        b.rung().await;
        let quiet = tokio::time::timeout(std::time::Duration::from_millis(50), a.rung()).await;
        assert!(quiet.is_err(), "heard a ring that was not made");
    }
}
