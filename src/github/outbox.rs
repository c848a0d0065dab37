//! Sends the statuses the store has queued, oldest first within each
//! deployment, retrying what GitHub asks us to retry, across restarts.

use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use super::CallError;
use crate::daemon::Shared;
use crate::store::{OutboxItem, Store, now_ms};

const BATCH: i64 = 16;
const MAX_BACKOFF: Duration = Duration::from_secs(15 * 60);
/// How often the store is polled when nothing wakes us.
const IDLE_POLL: Duration = Duration::from_secs(5);

pub struct Outbox {
    store: Store,
    shared: Shared,
    wake: Arc<Notify>,
}

/// Exponential backoff from 1s, capped, with ±25% jitter so that many
/// statuses refused together do not come back together.
pub fn backoff(attempts: i64) -> Duration {
    let base = Duration::from_secs(1u64 << attempts.clamp(0, 20)).min(MAX_BACKOFF);
    let jitter = RandomState::new().hash_one(now_ms()) % 1000;
    base.mul_f64(0.75 + jitter as f64 / 2000.0)
}

impl Outbox {
    pub fn new(shared: Shared) -> Outbox {
        Outbox {
            store: shared.store.clone(),
            wake: shared.outbox_wake.clone(),
            shared,
        }
    }

    /// Runs until `shutdown` fires, then keeps sending whatever is due for
    /// at most `drain` before returning; the rest waits in the store.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>, drain: Duration) {
        let mut deadline = None;
        loop {
            let sent_any = match self.send_due().await {
                Ok(n) => n > 0,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the status outbox");
                    false
                }
            };
            if let Some(deadline) = deadline {
                if !sent_any || tokio::time::Instant::now() >= deadline {
                    return;
                }
                continue;
            }
            if sent_any {
                continue;
            }
            let sleep = self.until_next_due().await;
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(sleep) => {}
                _ = shutdown.wait_for(|stop| *stop) => {
                    deadline = Some(tokio::time::Instant::now() + drain);
                }
            }
        }
    }

    async fn until_next_due(&self) -> Duration {
        match self.store.next_status_due().await {
            Ok(Some(at)) => {
                Duration::from_millis((at - now_ms()).clamp(0, IDLE_POLL.as_millis() as i64) as u64)
            }
            _ => IDLE_POLL,
        }
    }

    /// Sends every status due now; returns how many were attempted.
    async fn send_due(&self) -> Result<usize, sqlx::Error> {
        let due = self.store.due_statuses(now_ms(), BATCH).await?;
        let n = due.len();
        let mut sends = JoinSet::new();
        for item in due {
            // The client in force now: a reload may have changed the token.
            let github = self.shared.live().github.clone();
            sends.spawn(async move {
                let result = github.post_status(&item).await;
                (item, result)
            });
        }
        while let Some(joined) = sends.join_next().await {
            let Ok((item, result)) = joined else { continue };
            self.record(&item, result).await?;
        }
        Ok(n)
    }

    async fn record(
        &self,
        item: &OutboxItem,
        result: Result<(), CallError>,
    ) -> Result<(), sqlx::Error> {
        let state = item.status.state.as_str();
        match result {
            Ok(()) => {
                tracing::info!(deployment = %item.deployment_id, status = state, "status posted");
                metrics::counter!(crate::metrics::STATUS_POSTS, "result" => "sent").increment(1);
                self.store.status_sent(item.seq).await
            }
            Err(CallError::Retry { after, reason }) => {
                let wait = after.unwrap_or_else(|| backoff(item.attempts));
                metrics::counter!(crate::metrics::STATUS_POSTS, "result" => "retried").increment(1);
                tracing::warn!(
                    deployment = %item.deployment_id, status = state, attempt = item.attempts + 1,
                    retry_in = %humantime::format_duration(Duration::from_secs(wait.as_secs().max(1))),
                    "status not posted, will retry: {reason}"
                );
                self.store
                    .status_retry_at(item.seq, now_ms() + wait.as_millis() as i64, &reason)
                    .await
            }
            Err(CallError::Permanent { reason }) => {
                metrics::counter!(crate::metrics::STATUS_POSTS, "result" => "failed").increment(1);
                tracing::error!(
                    deployment = %item.deployment_id, repository = %item.repository, status = state,
                    "GitHub refused the status, giving up on it: {reason}"
                );
                self.store.status_failed(item.seq, &reason).await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::backoff;
    use std::time::Duration;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(
            backoff(0) >= Duration::from_millis(750) && backoff(0) <= Duration::from_millis(1250)
        );
        assert!(backoff(3) >= Duration::from_secs(6) && backoff(3) <= Duration::from_secs(10));
        assert!(backoff(60) <= Duration::from_secs(15 * 60 * 5 / 4));
        assert!(backoff(60) >= Duration::from_secs(15 * 60 * 3 / 4));
    }
}
