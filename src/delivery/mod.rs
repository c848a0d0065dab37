//! Delivery metrics (docs/operations.md, "Delivery metrics"): DORA's
//! figures from ferry's own store. `ferry stats` computes them over a
//! window ([`figures`]); `/metrics` counts each deployment's end as it
//! happens ([`Ends`], a consumer of the event stream); the commit times
//! that lead times need are read from GitHub once per deployment
//! ([`commit_times`]).
//!
//! Labels stay bounded: a repository and environment are named as the
//! target that owns them names them, so `review-*` is one series however
//! many review apps come and go, and what no target owns is `other`.

pub mod commit_times;
pub mod figures;

use async_trait::async_trait;

use crate::config::Config;
use crate::current::Current;
use crate::store::{Ended, Event, EventKind, SharedStore, State};

/// A success's recovery looks this far back for the run of failures it
/// ended; a longer run counts from the oldest of these.
const RECOVERY_LOOKBACK: i64 = 200;

/// The (repository, environment) labels for an environment: its
/// target's names (a glob for review apps), or `other`.
pub fn labels(config: &Config, repository: &str, environment: &str) -> (String, String) {
    let of_repository = || config.targets.iter().filter(|t| t.repository == repository);
    match of_repository().find(|t| crate::glob::matches(&t.environment, environment)) {
        Some(t) => (t.repository.to_string(), t.environment.clone()),
        None => match of_repository().next() {
            Some(t) => (t.repository.to_string(), "other".into()),
            None => ("other".into(), "other".into()),
        },
    }
}

/// The finished counters and delivery histograms of every target at zero
/// from the start, so a deployment's first end is an increase
/// (Prometheus' `increase()` sees a series that first appears at 1 as no
/// change), and a dashboard has its series before anything ended.
pub fn register(config: &Config) {
    for t in &config.targets {
        let (r, e) = (t.repository.to_string(), t.environment.clone());
        for state in ["success", "failure", "error", "cancelled"] {
            metrics::counter!(crate::metrics::FINISHED,
                "repository" => r.clone(), "environment" => e.clone(), "state" => state)
            .increment(0);
        }
        // Registered: the exporter shows them with empty buckets.
        for name in [
            crate::metrics::DEPLOYMENT_SECONDS,
            crate::metrics::LEAD_TIME_SECONDS,
            crate::metrics::RECOVERY_SECONDS,
        ] {
            let _ =
                metrics::histogram!(name, "repository" => r.clone(), "environment" => e.clone());
        }
    }
    metrics::counter!(crate::metrics::SSH_CONNECT_FAILURES).increment(0);
    for sink in &config.sinks {
        for result in ["delivered", "retried", "given_up"] {
            metrics::counter!(crate::metrics::NOTIFICATIONS,
                "sink" => sink.name.clone(), "result" => result)
            .increment(0);
        }
    }
}

/// The lead time of a success whose commit time is known, in seconds.
pub fn lead_seconds(ended: &Ended) -> Option<f64> {
    let committed = ended.committed_at?;
    (ended.state == State::Success && !ended.cancelled)
        .then(|| (ended.finished_at - committed).as_secs_f64())
}

/// Counts each deployment's end on `/metrics`: the cursor is shared by
/// the replicas and leased to one at a time, so each end is counted once,
/// by the replica that read it (sums over replicas are right).
pub struct Ends {
    pub store: SharedStore,
    pub config: Current<Config>,
}

#[async_trait]
impl crate::cursor::Handler for Ends {
    fn consumer(&self) -> &'static str {
        "delivery_metrics"
    }

    async fn handle(&self, event: &Event) -> crate::store::Result<()> {
        let Some(id) = event.deployment else {
            return Ok(());
        };
        let is_end = matches!(
            event.state.as_deref(),
            Some("success" | "failure" | "error")
        );
        if event.kind != EventKind::Status || !is_end || id.is_teardown() {
            return Ok(());
        }
        let Some(ended) = self.store.ended(id).await? else {
            return Ok(());
        };
        let config = self.config.get();
        let (r, e) = labels(&config, &ended.repository, &ended.environment);
        metrics::counter!(crate::metrics::FINISHED,
            "repository" => r.clone(), "environment" => e.clone(), "state" => ended.word())
        .increment(1);
        let series = [("repository", r), ("environment", e)];
        if let Some(started) = ended.started_at {
            let seconds = (ended.finished_at - started).as_secs_f64();
            metrics::histogram!(crate::metrics::DEPLOYMENT_SECONDS, &series).record(seconds);
        }
        // The lead time waits for the commit time: `commit_times` records it.
        if ended.state == State::Success && !ended.cancelled {
            let before = self.store.ended_before(id, RECOVERY_LOOKBACK).await?;
            if let Some(first) = figures::recovered_from(&before) {
                let seconds = (ended.finished_at - first).as_secs_f64();
                metrics::histogram!(crate::metrics::RECOVERY_SECONDS, &series).record(seconds);
            }
        }
        Ok(())
    }
}
