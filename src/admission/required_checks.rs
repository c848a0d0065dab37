//! Required checks (docs/configuration.md, "Required checks"): a deployment of a target with
//! `require_checks` waits in its environment's turn until its sha's check
//! runs and commit statuses have passed, and ends `failure` when one
//! failed or none passed within `checks_timeout`.
//!
//! The waiting is in the store ([`crate::store::Gates`]), not here: the
//! gatekeeper holds no runner slot and no lease, and whichever ferry runs
//! next (after a restart, on another replica) looks again. It looks at
//! least every [`LOOK_EVERY`], and within a second of a `check_run`,
//! `check_suite` or `status` webhook for the sha ([`crate::store::Gates::look_again`]).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::current::Current;
use crate::github::checks::CheckState;
use crate::github::{CallError, GitHub};
use crate::logs::Logs;
use crate::store::{Deployment, NewStatus, SharedStore, StatusState, Timestamp};
use crate::wording;

/// How often a waiting deployment's checks are read without a webhook.
pub const LOOK_EVERY: Duration = Duration::from_secs(15);
/// How often the store is asked for looks that are due.
const POLL: Duration = Duration::from_secs(1);
/// Deployments looked at per round.
const PER_ROUND: i64 = 20;

/// What the checks say about a sha.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Passed,
    /// The first required check that failed.
    Failed(String),
    /// The required checks not passed yet (none named: `*`, and nothing
    /// reported yet).
    Pending(Vec<String>),
}

/// Decides on `required` (names, or `*` for every one reported, and at
/// least one) from what GitHub reported. A failure decides at once; a
/// missing check is pending.
pub fn decide(required: &[String], reported: &[(String, CheckState)]) -> Verdict {
    let mut pending = Vec::new();
    let mut failed = None;
    let mut note = |name: &str, outcome: Option<CheckState>| match outcome {
        Some(CheckState::Passed) => {}
        Some(CheckState::Failed) => {
            failed.get_or_insert_with(|| name.to_string());
        }
        Some(CheckState::Pending) | None => {
            if !pending.iter().any(|p| p == name) {
                pending.push(name.to_string());
            }
        }
    };
    if required.iter().any(|r| r == "*") {
        for (name, outcome) in reported {
            note(name, Some(*outcome));
        }
    }
    for name in required.iter().filter(|r| *r != "*") {
        let outcome = reported.iter().find(|(n, _)| n == name).map(|(_, o)| *o);
        note(name, outcome);
    }
    if let Some(name) = failed {
        return Verdict::Failed(name);
    }
    if required.iter().any(|r| r == "*") && reported.is_empty() {
        return Verdict::Pending(Vec::new());
    }
    if pending.is_empty() {
        Verdict::Passed
    } else {
        Verdict::Pending(pending)
    }
}

/// Looks at the checks of waiting deployments, until `stop`.
pub struct Gatekeeper {
    pub store: SharedStore,
    pub github: Current<GitHub>,
    pub config: Current<Config>,
    pub logs: Logs,
    /// Rung by a checks webhook.
    pub wake: Arc<Notify>,
    /// Rung when a gate opened, and when a status was queued.
    pub runner: Arc<Notify>,
    pub outbox: crate::sync::Bell,
}

impl Gatekeeper {
    pub async fn run(self, stop: CancellationToken) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = self.wake.notified() => {}
                _ = stop.cancelled() => return,
            }
            let now = Timestamp::now();
            let next = now + LOOK_EVERY;
            match self.store.due_gates(now, next, PER_ROUND).await {
                Ok(due) => {
                    for d in due {
                        if let Err(e) = self.look(&d).await {
                            tracing::warn!(deployment = %d.id, error = %e,
                                "deployment {}: cannot record what its checks say: {e}", d.id);
                        }
                    }
                }
                Err(e) => {
                    tracing::debug!(error = %e, "cannot look for deployments waiting for checks: {e}")
                }
            }
        }
    }

    /// One look at one deployment's checks, and what follows from it.
    async fn look(&self, d: &Deployment) -> crate::store::Result<()> {
        let config = self.config.get();
        let Some(target) = config
            .target_for(&d.repository, &d.environment, &d.task)
            .filter(|t| !t.require_checks.is_empty())
        else {
            // The config no longer asks for checks here: the runner decides.
            if self.store.open_gate(d.id).await? {
                self.runner.notify_one();
            }
            return Ok(());
        };
        let required = &target.require_checks;
        let waited = Timestamp::now() - d.created_at;
        // The timeout is looked at when it falls, not at the round after.
        let deadline = d.created_at + target.checks_timeout;
        if deadline > Timestamp::now() && deadline < Timestamp::now() + LOOK_EVERY {
            self.store.next_look(d.id, deadline).await?;
        }
        let github = self.github.get();
        let reported = async {
            let installation = github
                .installation_of_deployment(&d.repository, d.installation_id)
                .await?;
            github
                .commit_checks(&d.repository, &d.sha, installation)
                .await
        }
        .await;
        let reported = match reported {
            Ok(reported) => reported,
            Err(e) => return self.unread(d, target, waited, e).await,
        };
        let verdict = decide(required, &reported);
        match verdict {
            Verdict::Passed => {
                if self.store.open_gate(d.id).await? {
                    tracing::info!(deployment = %d.id, "deployment {}: the required checks passed on {}", d.id, d.sha);
                    self.log(d, &format!("required checks passed on {}", d.sha))
                        .await;
                    self.runner.notify_one();
                }
            }
            Verdict::Failed(name) => {
                self.fail(d, &wording::required_check_failed(&name, &d.sha))
                    .await?;
            }
            Verdict::Pending(names) if waited >= target.checks_timeout => {
                let name = names.first().map_or("*", String::as_str);
                let text = wording::required_check_timed_out(name, &d.sha, target.checks_timeout);
                self.fail(d, &text).await?;
            }
            Verdict::Pending(names) => {
                let names = if names.is_empty() {
                    required.clone()
                } else {
                    names
                };
                // Queued only when it says something new.
                self.waiting(d, &wording::checks_waiting(&d.sha, &names))
                    .await?;
            }
        }
        Ok(())
    }

    /// GitHub did not say: fails the deployment once its checks had
    /// their time, else says why it waits when GitHub refuses to show
    /// them (a token without the permissions).
    async fn unread(
        &self,
        d: &Deployment,
        target: &crate::config::Target,
        waited: Duration,
        e: CallError,
    ) -> crate::store::Result<()> {
        if waited >= target.checks_timeout {
            let name = target.require_checks.first().map_or("*", String::as_str);
            let text = wording::required_check_timed_out(name, &d.sha, target.checks_timeout);
            return self.fail(d, &text).await;
        }
        let refused = matches!(&e, CallError::Permanent { reason }
            if reason.starts_with("403") || reason.starts_with("404"));
        if refused {
            tracing::error!(deployment = %d.id, repository = %d.repository,
                "deployment {}: GitHub refuses to show the checks of {} ({e}): give the token or App Checks: read and Commit statuses: read", d.id, d.sha);
            self.waiting(d, &wording::checks_refused(&d.sha, &e.to_string()))
                .await?;
        } else {
            tracing::warn!(deployment = %d.id, "deployment {}: cannot read the checks of {}: {e}", d.id, d.sha);
        }
        Ok(())
    }

    async fn waiting(&self, d: &Deployment, text: &str) -> crate::store::Result<()> {
        let status = NewStatus::new(StatusState::Queued, text).with_log_url(self.logs.url(d.id));
        if self.store.gate_waiting(d.id, &status).await? {
            self.log(d, text).await;
            self.outbox.ring();
        }
        Ok(())
    }

    async fn fail(&self, d: &Deployment, text: &str) -> crate::store::Result<()> {
        let status = NewStatus::new(StatusState::Failure, text).with_log_url(self.logs.url(d.id));
        if self.store.fail_gate(d.id, &status).await? {
            tracing::warn!(deployment = %d.id, repository = %d.repository, environment = %d.environment,
                "deployment {} of {} to {}: failure: {text}", d.id, d.repository, d.environment);
            self.log(d, &format!("failure: {text}")).await;
            self.outbox.ring();
        }
        Ok(())
    }

    /// A line in the deployment's own log; a log that cannot be written
    /// changes nothing about the deployment.
    async fn log(&self, d: &Deployment, text: &str) {
        if let Ok(log) = self.logs.writer(d.id).await {
            log.ferry(None, None, text);
            let _ = log.flush().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn named_checks_must_each_pass() {
        let required = names(&["test", "lint"]);
        let reported = vec![("test".to_string(), CheckState::Passed)];
        assert_eq!(
            decide(&required, &reported),
            Verdict::Pending(names(&["lint"]))
        );
        let mut all = reported.clone();
        all.push(("lint".into(), CheckState::Passed));
        all.push(("unrelated".into(), CheckState::Failed));
        assert_eq!(decide(&required, &all), Verdict::Passed);
        all[1].1 = CheckState::Failed;
        assert_eq!(decide(&required, &all), Verdict::Failed("lint".into()));
        all[1].1 = CheckState::Pending;
        assert_eq!(decide(&required, &all), Verdict::Pending(names(&["lint"])));
    }

    #[test]
    fn a_star_means_every_reported_check_and_at_least_one() {
        let every = names(&["*"]);
        assert_eq!(decide(&every, &[]), Verdict::Pending(vec![]));
        let reported = vec![
            ("build".to_string(), CheckState::Passed),
            ("e2e".to_string(), CheckState::Pending),
        ];
        assert_eq!(decide(&every, &reported), Verdict::Pending(names(&["e2e"])));
        let passed = vec![("build".to_string(), CheckState::Passed)];
        assert_eq!(decide(&every, &passed), Verdict::Passed);
        let failed = vec![
            ("build".to_string(), CheckState::Failed),
            ("e2e".to_string(), CheckState::Pending),
        ];
        assert_eq!(decide(&every, &failed), Verdict::Failed("build".into()));
    }

    #[test]
    fn outcomes_as_github_reports_them() {
        assert_eq!(
            CheckState::of_run("completed", Some("success")),
            CheckState::Passed
        );
        assert_eq!(
            CheckState::of_run("completed", Some("neutral")),
            CheckState::Passed
        );
        assert_eq!(
            CheckState::of_run("completed", Some("skipped")),
            CheckState::Passed
        );
        assert_eq!(
            CheckState::of_run("completed", Some("failure")),
            CheckState::Failed
        );
        assert_eq!(
            CheckState::of_run("completed", Some("cancelled")),
            CheckState::Failed
        );
        assert_eq!(CheckState::of_run("in_progress", None), CheckState::Pending);
        assert_eq!(CheckState::of_status("success"), CheckState::Passed);
        assert_eq!(CheckState::of_status("error"), CheckState::Failed);
        assert_eq!(CheckState::of_status("pending"), CheckState::Pending);
    }
}
