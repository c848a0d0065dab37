//! Gating GitHub Actions deployments (docs/github.md, "Gating GitHub
//! Actions deployments"): a run waiting at ferry's deployment protection
//! rule is approved once its environment is neither locked, frozen nor
//! held; until then GitHub is told why, once per reason. Runs live in the
//! store ([`crate::store::ProtectionRuns`]): a restart, `kill -9` or a
//! replica's failover loses none, and an unlock while no ferry ran is
//! honoured at the next start. While a run waits it is looked at every
//! 100 ms (a run's wait is a deploy job held up: an unlock from another
//! process, which sends no signal on SQLite, reaches it within that); the
//! store is asked once a second while none waits.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::current::Current;
use crate::github::{CallError, GitHub};
use crate::store::{Owner, RunEnd, SharedStore, Timestamp, WaitingRun, waiting_on};

/// How often a waiting run's environment is looked at.
const LOOK_EVERY: Duration = Duration::from_millis(100);
/// How often the store is asked for due runs while none waits (a new one
/// rings `wake`), and the gauge of waiting runs is read.
const IDLE_EVERY: Duration = Duration::from_secs(1);
/// A look's lease: longer than one answer to GitHub may take (10 s).
const LEASE: Duration = Duration::from_secs(30);
/// After GitHub did not take an answer (5xx, a rate limit, no answer).
const RETRY: Duration = Duration::from_secs(5);
const PER_ROUND: i64 = 50;

pub struct Protector {
    pub store: SharedStore,
    pub config: Current<Config>,
    pub github: Current<GitHub>,
    /// Rung when a run was stored.
    pub wake: Arc<Notify>,
}

impl Protector {
    pub async fn run(self, stop: CancellationToken) {
        let owner = Owner::this_process();
        if !self.store.replicas()
            && let Err(e) = self.store.release_runs().await
        {
            tracing::warn!(error = %e, "cannot take over the last run's protection rule looks: {e}");
        }
        let mut counted = tokio::time::Instant::now() - IDLE_EVERY;
        let mut waiting = false;
        loop {
            match self.round(&owner).await {
                // The count below, once a second, says when none waits.
                Ok(looked) => waiting |= looked,
                Err(e) => {
                    tracing::debug!(error = %e, "cannot look at runs waiting at the protection rule: {e}")
                }
            }
            if counted.elapsed() >= IDLE_EVERY {
                counted = tokio::time::Instant::now();
                match self.store.waiting_runs().await {
                    Ok(runs) => {
                        waiting = !runs.is_empty();
                        metrics::gauge!(crate::metrics::PROTECTION_WAITING).set(runs.len() as f64);
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "cannot count the runs waiting at the protection rule: {e}")
                    }
                }
            }
            let pause = if waiting { LOOK_EVERY } else { IDLE_EVERY };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = self.wake.notified() => {}
                _ = stop.cancelled() => return,
            }
        }
    }

    /// Looks at the runs due now; whether there were any.
    async fn round(&self, owner: &Owner) -> crate::store::Result<bool> {
        let now = Timestamp::now();
        let due = self
            .store
            .due_runs(owner, now, now + LEASE, PER_ROUND)
            .await?;
        if due.is_empty() {
            return Ok(false);
        }
        // What holds environments now, read once for the round.
        let locks = self.store.locks().await?;
        let holds = self.store.holds().await?;
        let config = self.config.get();
        let lifts = self.store.freeze_lifts(now).await?;
        let at = jiff::Timestamp::now();
        for run in &due {
            let r = &run.run;
            let why = waiting_on(&locks, &holds, &r.repository, &r.environment).or_else(|| {
                crate::admission::freeze::frozen(
                    &config.freezes,
                    &lifts,
                    &r.repository,
                    &r.environment,
                    at,
                )
                .map(|(f, w)| {
                    crate::wording::frozen_waiting(&r.environment, &f.local(w.end, at), &f.name)
                })
            });
            self.answer(owner, run, why).await?;
        }
        Ok(true)
    }

    /// Approves a run whose environment is free; tells GitHub why it
    /// waits, once per reason, otherwise.
    async fn answer(
        &self,
        owner: &Owner,
        run: &WaitingRun,
        why: Option<String>,
    ) -> crate::store::Result<()> {
        let r = &run.run;
        let later = |after: Duration| Timestamp::now() + after;
        let github = self.github.get();
        let (approve, comment) = match &why {
            None => (true, crate::wording::protection_approved(&r.environment)),
            Some(why) if run.reported.as_deref() != Some(why.as_str()) => (false, why.clone()),
            Some(_) => {
                self.store
                    .run_later(run.seq, owner, later(LOOK_EVERY), None)
                    .await?;
                return Ok(());
            }
        };
        let sent = github
            .review_protection_rule(
                &r.callback_url,
                &r.environment,
                approve,
                &crate::github::fit_description(&comment),
                r.installation_id,
            )
            .await;
        let what = format!(
            "GitHub Actions run {} of {} to {}",
            r.run_id, r.repository, r.environment
        );
        match sent {
            Ok(()) if approve => {
                if self.store.end_run(run.seq, owner, RunEnd::Approved).await? {
                    metrics::counter!(crate::metrics::PROTECTION_ANSWERS, "result" => "approved")
                        .increment(1);
                    tracing::info!(repository = %r.repository, environment = %r.environment,
                        "{what}: approved, {} is free", r.environment);
                }
            }
            Ok(()) => {
                metrics::counter!(crate::metrics::PROTECTION_ANSWERS, "result" => "reported")
                    .increment(1);
                tracing::info!(repository = %r.repository, environment = %r.environment,
                    "{what}: waits: {comment}");
                self.store
                    .run_later(run.seq, owner, later(LOOK_EVERY), Some(&comment))
                    .await?;
            }
            Err(CallError::Permanent { reason }) => {
                // GitHub no longer waits for this run (cancelled, answered
                // by someone else): nothing more to say.
                if self.store.end_run(run.seq, owner, RunEnd::Gone).await? {
                    metrics::counter!(crate::metrics::PROTECTION_ANSWERS, "result" => "gone")
                        .increment(1);
                    tracing::info!(repository = %r.repository, environment = %r.environment,
                        "{what}: GitHub no longer waits for an answer ({reason})");
                }
            }
            Err(e) => {
                tracing::warn!(repository = %r.repository, "{what}: cannot answer GitHub ({e}); trying again in {}",
                    crate::format::duration(RETRY));
                self.store
                    .run_later(run.seq, owner, later(RETRY), None)
                    .await?;
            }
        }
        Ok(())
    }
}
