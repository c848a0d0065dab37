//! Freeze windows lifted for one environment (`ferry unlock` while a
//! `[[freeze]]` holds it): the windows themselves are config, computed on
//! the clock by every replica alike ([`crate::admission::freeze`]); only the operator's
//! decision to let one environment through is state, shared here.

use async_trait::async_trait;

use super::Result;
use crate::store::Timestamp;

/// A freeze that no longer holds an environment until its window ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreezeLift {
    pub repository: String,
    pub environment: String,
    /// The `[[freeze]]`'s name.
    pub freeze: String,
    /// The end of the window lifted (ms since the epoch): the next window
    /// holds the environment again.
    pub until: Timestamp,
    pub by: String,
    pub at: Timestamp,
}

impl FreezeLift {
    /// Whether this lift lets `environment` through `freeze`'s window
    /// ending at `until`.
    pub fn covers(
        &self,
        repository: &str,
        environment: &str,
        freeze: &str,
        until: Timestamp,
    ) -> bool {
        self.repository == repository
            && self.environment == environment
            && self.freeze == freeze
            && self.until == until
    }
}

/// The lifts, in each backend's `freezes.rs`.
#[async_trait]
pub trait Freezes: Send + Sync {
    /// Records a lift (and forgets lifts whose window ended before it);
    /// false if that window was lifted already.
    async fn lift_freeze(&self, lift: &FreezeLift) -> Result<bool>;

    /// The lifts whose window has not ended by `now`.
    async fn freeze_lifts(&self, now: Timestamp) -> Result<Vec<FreezeLift>>;
}
