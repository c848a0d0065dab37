//! The running daemons, as the store knows them: each `ferry serve` (each
//! replica) beats every [`BEAT_EVERY`], so that a command that needs one
//! (`ferry deploy`, and `ferry show` saying why a status waits) can tell
//! within seconds that none runs. Each backend implements it in its
//! `daemons.rs`.

use std::time::Duration;

use async_trait::async_trait;

use super::{Owner, Result};

/// How often a running ferry beats.
pub const BEAT_EVERY: Duration = Duration::from_secs(1);
/// A daemon whose last beat is older than this is taken for gone: a few
/// beats, so that one slow write is not a false alarm.
pub const GONE_AFTER: Duration = Duration::from_secs(3);

/// The newest beat: who, and how long ago by the store's clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastBeat {
    pub name: String,
    pub ago: Duration,
}

impl LastBeat {
    /// Whether a ferry runs now.
    pub fn alive(&self) -> bool {
        self.ago < GONE_AFTER
    }
}

#[async_trait]
pub trait Daemons: Send + Sync {
    /// Records that `me` runs, now; forgets daemons gone for a day.
    async fn beat(&self, me: &Owner) -> Result<()>;

    /// `me` stopped in order: it no longer counts as running.
    async fn gone(&self, me: &Owner) -> Result<()>;

    /// The newest beat of any daemon, if one ever beat.
    async fn last_beat(&self) -> Result<Option<LastBeat>>;
}

/// Whether a ferry runs on `store` now (a store that cannot be read says no).
pub async fn running(store: &dyn Daemons) -> bool {
    matches!(store.last_beat().await, Ok(Some(b)) if b.alive())
}
