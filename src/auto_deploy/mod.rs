//! Deploying automatically (docs/configuration.md, "Continuous
//! deployment"): ferry starts deployments itself, through GitHub exactly
//! as `ferry deploy` does, for targets with `[target.auto_deploy]`.
//!
//! Three parts offer candidates to the store ([`crate::store::Candidates`]):
//! the `push` webhook (`webhook/push.rs`), [`heads`] (the reconciler of
//! pushes that never came) and [`promotions`] (successes read from the
//! event stream). One part decides on them, [`Deployer`]: it looks at each
//! due candidate under a lease, waits for its checks or checks its soak,
//! and creates its deployment once. The store's unique key makes a sha
//! deployed automatically at most once per environment.

pub mod heads;
mod look;
pub mod promotions;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::{AutoDeploy, Config, Target};
use crate::current::Current;
use crate::github::GitHub;
use crate::store::{Owner, Timestamp};
use crate::webhook::Intake;

/// How often the store is asked for candidates that are due.
const POLL: Duration = Duration::from_secs(1);
/// How long one look may take before another process may look instead;
/// renewed when the creation is sent, and longer than a create request
/// may wait for GitHub's answer ([`crate::github::create::CREATE_TIMEOUT`]), so that two
/// never send at once. After a replica's `kill -9`, its candidates wait
/// this long.
const LEASE: Duration = Duration::from_secs(25);
/// Candidates looked at per round.
const PER_ROUND: i64 = 20;

/// The target that auto-deploys `environment` of `repository`, if any.
pub fn target_of<'c>(
    config: &'c Config,
    repository: &str,
    environment: &str,
) -> Option<&'c Target> {
    config.targets.iter().find(|t| {
        t.auto_deploy.is_some() && t.repository == repository && t.environment == environment
    })
}

/// The targets that follow `branch` of `repository`.
pub fn following<'c>(
    config: &'c Config,
    repository: &str,
    branch: &str,
) -> impl Iterator<Item = &'c Target> {
    let (repository, branch) = (repository.to_string(), branch.to_string());
    config.targets.iter().filter(move |t| {
        t.repository == repository
            && t.auto_deploy.as_ref().and_then(AutoDeploy::branch) == Some(branch.as_str())
    })
}

/// Looks at due candidates and creates their deployments, until `stop`.
pub struct Deployer {
    pub github: Current<GitHub>,
    pub intake: Intake,
    /// Rung by a push and by a checks webhook.
    pub wake: Arc<Notify>,
}

impl Deployer {
    pub async fn run(self, stop: CancellationToken) {
        let owner = Owner::this_process();
        // Alone on the store, the last process's looks are this one's now.
        if !self.intake.store.replicas()
            && let Err(e) = self.intake.store.release_candidates().await
        {
            tracing::warn!(error = %e, "cannot take over the last run's auto-deploy looks: {e}");
        }
        loop {
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = self.wake.notified() => {}
                _ = stop.cancelled() => return,
            }
            let now = Timestamp::now();
            let until = now + LEASE;
            let due = match self
                .intake
                .store
                .due_candidates(&owner, now, until, PER_ROUND)
                .await
            {
                Ok(due) => due,
                Err(e) => {
                    tracing::debug!(error = %e, "cannot look for auto-deploy candidates: {e}");
                    continue;
                }
            };
            for c in due {
                let look = look::Look {
                    deployer: &self,
                    owner: &owner,
                    candidate: &c,
                };
                if let Err(e) = look.run().await {
                    tracing::warn!(repository = %c.offer.repository, environment = %c.offer.environment,
                        "auto-deploy of {} to {}:{}: cannot record the decision: {e}",
                        c.offer.sha, c.offer.repository, c.offer.environment);
                }
            }
        }
    }
}
