//! Reads each ended deployment's commit time from GitHub, once, beside
//! everything else: a look is queued in the store when a deployment ends
//! (a trigger), taken by one process under a lease, and tried again
//! while GitHub is out of reach. A commit another deployment shipped is
//! not asked for again. When the time is in, a success's lead time goes
//! to `/metrics` (once: only the look that records it counts it).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::current::Current;
use crate::github::commits::CommitTime;
use crate::github::{CallError, GitHub};
use crate::store::{CommitLook, Owner, SharedStore, Timestamp};

/// How often the store is asked for due looks.
const LOOK_EVERY: Duration = Duration::from_secs(1);
/// A look's lease: longer than one request to GitHub may take.
const LEASE: Duration = Duration::from_secs(60);
/// After GitHub did not answer: the first wait, doubled each try up to
/// [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_secs(5);
const RETRY_MAX: Duration = Duration::from_secs(3600);
/// A refusal other than "no such commit" (a token without Contents:
/// read) is tried this often before the look gives up.
const REFUSALS: i64 = 10;
const PER_ROUND: i64 = 20;

pub struct CommitTimes {
    pub store: SharedStore,
    pub config: Current<Config>,
    pub github: Current<GitHub>,
}

impl CommitTimes {
    pub async fn run(self, stop: CancellationToken) {
        let owner = Owner::this_process();
        if !self.store.replicas()
            && let Err(e) = self.store.release_commit_looks().await
        {
            tracing::warn!(error = %e, "cannot take over the last run's commit time looks: {e}");
        }
        loop {
            if let Err(e) = self.round(&owner).await {
                tracing::debug!(error = %e, "cannot look for commit times to read: {e}");
            }
            tokio::select! {
                _ = tokio::time::sleep(LOOK_EVERY) => {}
                _ = stop.cancelled() => return,
            }
        }
    }

    async fn round(&self, owner: &Owner) -> crate::store::Result<()> {
        let now = Timestamp::now();
        let due = self
            .store
            .due_commit_looks(owner, now, now + LEASE, PER_ROUND)
            .await?;
        for look in &due {
            self.look(owner, look).await?;
        }
        Ok(())
    }

    async fn look(&self, owner: &Owner, look: &CommitLook) -> crate::store::Result<()> {
        let known = self
            .store
            .known_commit_time(&look.repository, &look.sha)
            .await?;
        let read = match known {
            Some(at) => Ok(CommitTime::At(at)),
            None => {
                let github = self.github.get();
                github
                    .commit_time(&look.repository, &look.sha, look.installation_id)
                    .await
            }
        };
        let sha = crate::format::short_sha(&look.sha);
        match read {
            Ok(CommitTime::At(at)) => {
                if self
                    .store
                    .commit_look_done(look.seq, owner, Some(at), None)
                    .await?
                {
                    self.lead_time(look).await?;
                }
            }
            Ok(CommitTime::Missing) => {
                let why = format!("GitHub has no commit {sha} in {}", look.repository);
                tracing::info!(deployment = %look.deployment, "deployment {}: no lead time: {why}", look.deployment);
                self.store
                    .commit_look_done(look.seq, owner, None, Some(&why))
                    .await?;
            }
            Err(CallError::Permanent { reason }) if look.attempts + 1 >= REFUSALS => {
                tracing::warn!(deployment = %look.deployment,
                    "deployment {}: cannot read the time of commit {sha}: {reason}; giving up",
                    look.deployment);
                self.store
                    .commit_look_done(look.seq, owner, None, Some(&reason))
                    .await?;
            }
            Err(e) => {
                let after = match &e {
                    CallError::Retry { after: Some(a), .. } => *a,
                    _ => backoff(look.attempts),
                };
                tracing::debug!(deployment = %look.deployment,
                    "deployment {}: cannot read the time of commit {sha} yet: {e}", look.deployment);
                let at = Timestamp::now() + after;
                self.store
                    .commit_look_later(look.seq, owner, at, &e.to_string())
                    .await?;
            }
        }
        Ok(())
    }

    /// A success's lead time, now that its commit time is in.
    async fn lead_time(&self, look: &CommitLook) -> crate::store::Result<()> {
        let Some(ended) = self.store.ended(look.deployment).await? else {
            return Ok(());
        };
        if let Some(seconds) = super::lead_seconds(&ended) {
            let config = self.config.get();
            let (repository, environment) =
                super::labels(&config, &ended.repository, &ended.environment);
            metrics::histogram!(crate::metrics::LEAD_TIME_SECONDS,
                "repository" => repository, "environment" => environment)
            .record(seconds);
        }
        Ok(())
    }
}

fn backoff(attempts: i64) -> Duration {
    let doublings = attempts.clamp(0, 20) as u32;
    RETRY_FIRST
        .saturating_mul(2u32.saturating_pow(doublings))
        .min(RETRY_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_to_an_hour() {
        assert_eq!(backoff(0), Duration::from_secs(5));
        assert_eq!(backoff(1), Duration::from_secs(10));
        assert_eq!(backoff(3), Duration::from_secs(40));
        assert_eq!(backoff(50), RETRY_MAX);
    }
}
