//! Notifications (docs/reference.md, "Notifications"): the event stream's
//! consumer that tells the `[[notify]]` sinks, a generic webhook or a
//! Slack channel each.
//!
//! Two stages, apart from intake, the runner and the GitHub outbox:
//! - [`fanout`] reads the events through the `notify` cursor and stores
//!   one notification per sink that hears each, in the transaction that
//!   moves the cursor: stored before sent, exactly once.
//! - [`send`] runs one worker per sink: it claims the oldest pending
//!   notification of each chain (a deployment, or an environment's locks),
//!   a few at a time, and sends them with a client of its own, so a sink
//!   that hangs or is down holds up nothing but itself.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::current::Current;
use crate::logs::Logs;
use crate::store::{SharedStore, SlackMessage};
use crate::sync::Bell;

pub(crate) mod body;
mod fanout;
mod send;
mod slack;
mod webhook;

/// How a try went.
#[derive(Debug)]
pub enum Tried {
    /// For Slack, the message posted or updated.
    Delivered(Option<SlackMessage>),
    /// Try again, after `after` if the receiver said so.
    Retry {
        after: Option<Duration>,
        reason: String,
    },
    /// Never again; `fix` tells the operator what to change.
    GiveUp {
        reason: String,
        fix: Option<&'static str>,
    },
}

/// A request that got no answer: no connection, or none within the
/// timeout. Both are tried again. The URL is left out of the reason (a
/// webhook's may carry a key in its query); the innermost cause says what
/// happened.
fn sent_error(e: reqwest::Error) -> Tried {
    let reason = if e.is_timeout() {
        format!("no answer within {}s", send::TIMEOUT.as_secs())
    } else {
        let connect = e.is_connect();
        let e = e.without_url();
        let mut cause: &dyn std::error::Error = &e;
        while let Some(next) = cause.source() {
            cause = next;
        }
        if connect {
            format!("cannot connect: {cause}")
        } else {
            format!("no answer: {cause}")
        }
    };
    Tried::Retry {
        after: None,
        reason,
    }
}

/// `Retry-After`: seconds, or an HTTP date.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get("retry-after")?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = jiff::fmt::rfc2822::parse(value).ok()?.timestamp();
    Some(crate::store::Timestamp::from_jiff(at) - crate::store::Timestamp::now())
}

/// The notifier: the fan-out and a worker per configured sink.
pub struct Notifier {
    pub store: SharedStore,
    pub config: Current<Config>,
    pub logs: Logs,
    /// Rung when a status is queued.
    pub statuses: Bell,
}

/// How often the sinks in force are compared with the workers running
/// (a reload may add one).
const LOOK_EVERY: Duration = Duration::from_secs(1);
/// How often the pending counts are refreshed: each is a pass over the
/// pending notifications' index, long when a sink has been down a while.
const COUNT_EVERY: Duration = Duration::from_secs(5);

impl Notifier {
    pub async fn run(self, stop: CancellationToken) {
        let store_created = match self.store.created_at().await {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, "notifications are off until ferry restarts: cannot read the store: {e}");
                return;
            }
        };
        if !self.store.replicas()
            && let Err(e) = self.store.release_notifications().await
        {
            tracing::warn!(error = %e, "cannot release the last run's notification claims: {e}");
        }
        let stored = Bell::default();
        let tasks = TaskTracker::new();
        tasks.spawn(
            fanout::Fanout {
                store: self.store.clone(),
                config: self.config.clone(),
                logs: self.logs.clone(),
                store_created,
                stored: stored.clone(),
            }
            .run(self.statuses.listener(), stop.clone()),
        );
        let mut workers: std::collections::HashMap<String, tokio::task::JoinHandle<()>> =
            Default::default();
        let mut counted = tokio::time::Instant::now() - COUNT_EVERY;
        loop {
            let config = self.config.get();
            workers.retain(|_, w| !w.is_finished());
            for sink in &config.sinks {
                if !workers.contains_key(&sink.name) {
                    let worker = send::Worker::new(
                        sink.name.clone(),
                        self.store.clone(),
                        self.config.clone(),
                    );
                    let handle = tasks.spawn(worker.run(stored.listener(), stop.clone()));
                    workers.insert(sink.name.clone(), handle);
                }
            }
            if counted.elapsed() >= COUNT_EVERY {
                counted = tokio::time::Instant::now();
                self.count_pending(&config).await;
            }
            tokio::select! {
                _ = tokio::time::sleep(LOOK_EVERY) => {}
                _ = stop.cancelled() => break,
            }
        }
        tasks.close();
        tasks.wait().await;
    }

    /// `ferry_notifications_pending{sink}`, counted in the store (every
    /// replica reports the same).
    async fn count_pending(&self, config: &Config) {
        let Ok(pending) = self.store.pending_notifications().await else {
            return;
        };
        for sink in &config.sinks {
            let n = pending
                .iter()
                .find(|(s, _)| *s == sink.name)
                .map_or(0, |(_, n)| *n);
            metrics::gauge!(crate::metrics::NOTIFICATIONS_PENDING, "sink" => sink.name.clone())
                .set(n as f64);
        }
    }
}
