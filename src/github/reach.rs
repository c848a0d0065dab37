//! Whether GitHub answers, as the outbox's posts find it. While it does
//! not, every status of every deployment fails on every try: a line per
//! try (70 in four minutes for nine deployments) buried the one thing an
//! operator needs, so the journal gets one line when GitHub stops
//! answering and one when it is back; the tries in between are debug.

use std::time::Instant;

use crate::cmd::clock;
use crate::store::Timestamp;

#[derive(Default)]
pub struct Reach {
    /// Since when (ms since the epoch, and this process's clock), and how
    /// many tries failed since.
    down: Option<(Timestamp, Instant, u64)>,
}

impl Reach {
    /// A try that did not get GitHub's answer (unreachable, no answer, a
    /// server error). The first since GitHub last answered is said here;
    /// the caller logs each try at debug.
    pub fn failed(&mut self, reason: &str) {
        match &mut self.down {
            Some((_, _, n)) => *n += 1,
            None => {
                let since = Timestamp::now();
                tracing::warn!(
                    since = %clock(since),
                    "GitHub unreachable since {}: {reason}; statuses wait in the store and are retried (ferry show ID says where each stands)",
                    clock(since)
                );
                self.down = Some((since, Instant::now(), 1));
            }
        }
    }

    /// GitHub answered (whatever it said).
    pub fn answered(&mut self) {
        if let Some((since, at, n)) = self.down.take() {
            tracing::info!(
                since = %clock(since),
                "GitHub answers again, after {} unreachable ({n} tries failed meanwhile); the statuses that waited are being sent",
                crate::format::duration(at.elapsed())
            );
        }
    }
}
