//! Commands in pull request comments (docs/configuration.md, "Commands in
//! pull requests"): `.deploy`, `.rollback`, `.lock`, `.unlock`, `.help`.
//!
//! Intake (`webhook/comment.rs`) stores each command once, by its comment
//! id. The [`Commander`] works through each stored command under a lease,
//! one recorded step at a time ([`act`]): the `eyes` reaction, the
//! commenter's role, the act itself, the reply, and the reply edited once
//! the deployment it made ended ([`ends`], a cursor on the event stream).

pub mod act;
mod deployments;
pub mod ends;
mod locks;
pub mod parse;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::current::Current;
use crate::github::GitHub;
use crate::logs::Logs;
use crate::store::{Owner, Timestamp};
use crate::webhook::Intake;

/// How often the store is asked for commands that are due.
const POLL: Duration = Duration::from_secs(1);
/// How long a look's lease lasts: renewed before each call to GitHub that
/// changes something, and longer than one such call may take (10 s), so
/// that two processes never make one at once. After a replica's `kill -9`,
/// its commands wait this long.
pub(crate) const LEASE: Duration = Duration::from_secs(25);
/// Commands looked at per round.
const PER_ROUND: i64 = 20;

/// Works through stored commands, until `stop`.
pub struct Commander {
    pub github: Current<GitHub>,
    pub intake: Intake,
    pub logs: Logs,
    /// Rung when a command was stored, and when a deployment it made ended.
    pub wake: Arc<Notify>,
}

impl Commander {
    pub async fn run(self, stop: CancellationToken) {
        let owner = Owner::this_process();
        if !self.intake.store.replicas()
            && let Err(e) = self.intake.store.release_commands().await
        {
            tracing::warn!(error = %e, "cannot take over the last run's pull request commands: {e}");
        }
        loop {
            let now = Timestamp::now();
            let until = now + LEASE;
            match self
                .intake
                .store
                .due_commands(&owner, now, until, PER_ROUND)
                .await
            {
                Ok(due) => {
                    let mut looks: Vec<act::Look> = due
                        .into_iter()
                        .map(|record| act::Look {
                            commander: &self,
                            owner: &owner,
                            record,
                        })
                        .collect();
                    // Every comment is seen before any is acted on.
                    for look in &mut looks {
                        look.react_first().await;
                    }
                    for look in looks {
                        if let Err(e) = look.run().await {
                            tracing::warn!(error = %e, "a pull request command: cannot record a step: {e}");
                        }
                    }
                }
                Err(e) => {
                    tracing::debug!(error = %e, "cannot look for pull request commands: {e}")
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = self.wake.notified() => {}
                _ = stop.cancelled() => return,
            }
        }
    }
}
