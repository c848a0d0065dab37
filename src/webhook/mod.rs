//! `POST /webhook`, as rust-lang/bors has it: an extractor ([`Delivery`])
//! verifies the signature and yields one typed [`Event`]; the handler
//! dispatches each kind to the part that acts on it; every way out is an
//! [`Answer`], which records its metric once as it becomes the response.

mod checks;
mod comment;
mod deployment;
mod event;
mod extract;
mod protection;
mod pull_request;
mod push;
mod signature;

use crate::sync::LockExt;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tokio::sync::Notify;

use crate::config::Config;
use crate::current::Current;
use crate::logs::Logs;
use crate::store::{EnvLock, Hold, SharedStore, waiting_on};
pub use deployment::take;
pub use event::RawDeployment;
pub use extract::{Delivery, Event};
pub use signature::SignedDelivery;

/// What `POST /webhook` needs.
#[derive(Clone)]
pub struct Intake {
    pub store: SharedStore,
    pub config: Current<Config>,
    /// Links to and lines in the log of a `deploy:lock` deployment.
    pub logs: Logs,
    pub locks: LockCache,
    /// Rung when a deployment was queued, for the runner and the outbox.
    pub runner: Arc<Notify>,
    pub outbox: crate::sync::Bell,
    /// Rung when a sha's checks changed, for the gatekeeper.
    pub gates: Arc<Notify>,
    /// Rung when a push offered a candidate or a sha's checks changed,
    /// for the auto-deployer.
    pub auto_deploy: Arc<Notify>,
    /// Rung when a pull request command was stored, for the commander.
    pub commands: Arc<Notify>,
    /// Rung when a protection rule's run was stored.
    pub protection: Arc<Notify>,
}

impl Intake {
    /// Something was stored durably: wakes the runner and the outbox, and
    /// answers `202`.
    fn accepted(&self, event: &str, text: String) -> Answer {
        self.runner.notify_one();
        self.outbox.ring();
        Answer::new(StatusCode::ACCEPTED, event, "accepted", text)
    }
}

/// The environment locks and holds, as last read, for the `queued`
/// description of a deployment arriving in a locked or held environment.
/// Whether it waits is the store's to decide at claim time; this only
/// words the status, so a read a quarter of a second old is good enough
/// and spares a burst a query per delivery.
#[derive(Clone, Default)]
pub struct LockCache(Arc<std::sync::Mutex<Option<LocksRead>>>);

/// The locks, holds and freeze lifts, and when they were read.
type LocksRead = (
    std::time::Instant,
    Vec<EnvLock>,
    Vec<Hold>,
    Vec<crate::store::FreezeLift>,
);

impl LockCache {
    const FRESH: std::time::Duration = std::time::Duration::from_millis(250);

    /// What a deployment arriving in the environment waits for, if
    /// anything: a lock, a step ferry could not end, a freeze window.
    async fn waiting(
        &self,
        store: &SharedStore,
        freezes: &[crate::admission::freeze::Freeze],
        repository: &str,
        environment: &str,
    ) -> Option<String> {
        let find = |locks: &[EnvLock], holds: &[Hold], lifts: &[crate::store::FreezeLift]| {
            waiting_on(locks, holds, repository, environment).or_else(|| {
                let now = jiff::Timestamp::now();
                crate::admission::freeze::frozen(freezes, lifts, repository, environment, now).map(
                    |(f, w)| {
                        crate::wording::frozen_waiting(environment, &f.local(w.end, now), &f.name)
                    },
                )
            })
        };
        // Every delivery passes here: answer from the cache without
        // copying it.
        if let Some((at, locks, holds, lifts)) = &*self.0.locked()
            && at.elapsed() < Self::FRESH
        {
            return find(locks, holds, lifts);
        }
        // Only wording: a store that does not answer at once leaves the
        // delivery's own write to report it, within its deadline.
        let quick = std::time::Duration::from_millis(300);
        let locks = tokio::time::timeout(quick, store.locks())
            .await
            .ok()?
            .ok()?;
        let holds = tokio::time::timeout(quick, store.holds())
            .await
            .ok()
            .and_then(|h| h.ok())
            .unwrap_or_default();
        let lifts = if freezes.is_empty() {
            Vec::new()
        } else {
            let now = crate::store::Timestamp::now();
            tokio::time::timeout(quick, store.freeze_lifts(now))
                .await
                .ok()
                .and_then(|l| l.ok())
                .unwrap_or_default()
        };
        let found = find(&locks, &holds, &lifts);
        *self.0.locked() = Some((std::time::Instant::now(), locks, holds, lifts));
        found
    }

    fn forget(&self) {
        *self.0.locked() = None;
    }
}

/// How a delivery was answered: the status code GitHub's delivery log
/// shows, the text beside it, and the `ferry_webhook_deliveries_total`
/// series it counts in (recorded once, as the answer is sent).
#[derive(Debug)]
pub struct Answer {
    pub code: StatusCode,
    /// The `X-GitHub-Event` (folded into "other" for the metric).
    pub event: String,
    /// `accepted`, `duplicate`, `ignored`, `bad_request`, `unauthorized`,
    /// `unavailable`.
    pub result: &'static str,
    pub text: String,
}

impl Answer {
    pub fn new(
        code: StatusCode,
        event: &str,
        result: &'static str,
        text: impl Into<String>,
    ) -> Answer {
        Answer {
            code,
            event: event.to_string(),
            result,
            text: text.into(),
        }
    }

    fn ignored(event: &str, text: impl Into<String>) -> Answer {
        Answer::new(StatusCode::OK, event, "ignored", text)
    }

    fn bad_request(event: &str, text: impl Into<String>) -> Answer {
        Answer::new(StatusCode::BAD_REQUEST, event, "bad_request", text)
    }

    fn unavailable(event: &str) -> Answer {
        Answer::new(
            StatusCode::SERVICE_UNAVAILABLE,
            event,
            "unavailable",
            "storage unavailable; GitHub may redeliver later",
        )
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        crate::metrics::delivery(&self.event, self.result);
        let mut text = self.text;
        text.push('\n');
        (self.code, text).into_response()
    }
}

/// Each kind of event to the part that acts on it.
pub async fn receive(State(app): State<Intake>, delivery: Delivery) -> Answer {
    match delivery.event {
        Event::Ping => Answer::ignored("ping", "pong"),
        Event::Deployment {
            key,
            deployment,
            reason,
        } => take(&app, &key, deployment, &reason).await,
        Event::DeploymentNotCreated => Answer::ignored(
            "deployment",
            "ignored: only action \"created\" starts a deployment",
        ),
        Event::PullRequest(pr) => pull_request::closed(&app, pr).await,
        Event::Push(push) => push::pushed(&app, push).await,
        Event::IssueComment(comment) => comment::commented(&app, comment).await,
        Event::ProtectionRule(rule) => protection::requested(&app, rule).await,
        Event::ChecksChanged { name, checks } => checks::changed(&app, &name, checks).await,
        Event::Other(name) => {
            tracing::debug!(event = %name, delivery = %delivery.id, "ignored event");
            let text = format!("ignored: ferry does not act on {name:?} events");
            Answer::ignored(&name, text)
        }
    }
}
