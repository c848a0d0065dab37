//! One sink's worker: claims its due notifications (the oldest pending of
//! each chain, so a deployment's events arrive in order), sends a few at a
//! time with a client of its own, and records each try. A sink that hangs
//! costs its own workers' time only: each request ends within [`TIMEOUT`].

use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{Tried, slack, webhook};
use crate::config::{Config, Sink, SinkKind};
use crate::current::Current;
use crate::store::{Notification, NotificationOutcome, Owner, SharedStore, Timestamp};
use crate::sync::Listener;

/// A receiver that has not answered by then is tried again later.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// Sends in flight per sink (and so connections to it).
const IN_FLIGHT: usize = 8;
/// A claim's lease: a Slack try may make two requests.
const LEASE: Duration = Duration::from_secs(25);
/// Retries stop this long after the event.
const GIVE_UP_AFTER: Duration = Duration::from_secs(24 * 3600);
/// The store is looked at this often when nothing rings (retries fall due).
const POLL: Duration = Duration::from_millis(500);
/// After stop, sends in flight get this long to be recorded.
const DRAIN: Duration = Duration::from_secs(3);

fn backoff(attempts: i64) -> Duration {
    crate::backoff::Backoff {
        first: Duration::from_secs(1),
        max: Duration::from_secs(10 * 60),
        jitter: true,
    }
    .after(attempts)
}

pub struct Worker {
    name: String,
    /// Whether the sink's last try failed and was retried: the journal
    /// says once that a sink stopped answering, and once that it is back,
    /// not once per notification while it is down.
    failing: std::sync::atomic::AtomicBool,
    store: SharedStore,
    config: Current<Config>,
    owner: Owner,
    http: reqwest::Client,
}

type Sends = JoinSet<(Sink, Notification, Tried)>;

impl Worker {
    pub fn new(name: String, store: SharedStore, config: Current<Config>) -> Worker {
        let http = reqwest::Client::builder()
            .user_agent(crate::github::USER_AGENT)
            .connect_timeout(TIMEOUT)
            .timeout(TIMEOUT)
            .pool_max_idle_per_host(IN_FLIGHT)
            .build()
            .unwrap_or_default();
        Worker {
            name,
            failing: Default::default(),
            store,
            config,
            owner: Owner::this_process(),
            http,
        }
    }

    /// The sink as configured now; None once a reload removed it.
    fn sink(&self) -> Option<Sink> {
        self.config
            .get()
            .sinks
            .iter()
            .find(|s| s.name == self.name)
            .cloned()
    }

    pub async fn run(self, mut stored: Listener, stop: CancellationToken) {
        let mut sends = Sends::new();
        loop {
            let Some(sink) = self.sink() else {
                break;
            };
            let room = IN_FLIGHT - sends.len();
            if room > 0 {
                match self
                    .store
                    .claim_notifications(&self.name, &self.owner, room as i64, LEASE)
                    .await
                {
                    Ok(due) => {
                        for n in due {
                            let (http, sink) = (self.http.clone(), sink.clone());
                            sends.spawn(async move {
                                let tried = send(&http, &sink, &n).await;
                                (sink, n, tried)
                            });
                        }
                    }
                    Err(e) => tracing::warn!(sink = %self.name, error = %e,
                        "cannot read notifications for sink {}: {e}", self.name),
                }
            }
            tokio::select! {
                Some(first) = sends.join_next(), if !sends.is_empty() => {
                    // Whatever else has finished is recorded in the same transaction.
                    let mut done = vec![first];
                    while let Some(more) = sends.try_join_next() {
                        done.push(more);
                    }
                    self.record(done.into_iter().flatten().collect()).await;
                }
                _ = stored.rung() => {}
                _ = tokio::time::sleep(POLL), if sends.len() < IN_FLIGHT => {}
                _ = stop.cancelled() => break,
            }
        }
        // What is still in flight gets a moment; the rest is tried again
        // once its lease runs out.
        let _ = tokio::time::timeout(DRAIN, async {
            while let Some(done) = sends.join_next().await {
                self.record(done.into_iter().collect()).await;
            }
        })
        .await;
    }

    async fn record(&self, done: Vec<(Sink, Notification, Tried)>) {
        let tries: Vec<(i64, NotificationOutcome)> = done
            .into_iter()
            .map(|(sink, n, tried)| (n.id, outcome(&sink, &n, tried, &self.failing)))
            .collect();
        match self.store.record_notifications(&self.owner, &tries).await {
            Ok(recorded) => {
                for ((id, outcome), recorded) in tries.iter().zip(recorded) {
                    if !recorded {
                        tracing::debug!(sink = %self.name,
                            "notification {id} was taken over by another ferry; its try is not recorded");
                        continue;
                    }
                    let result = match outcome {
                        NotificationOutcome::Delivered { .. } => "delivered",
                        NotificationOutcome::RetryAt { .. } => "retried",
                        NotificationOutcome::GaveUp { .. } => "given_up",
                    };
                    metrics::counter!(crate::metrics::NOTIFICATIONS, "sink" => self.name.clone(), "result" => result)
                        .increment(1);
                }
            }
            Err(e) => tracing::warn!(sink = %self.name, error = %e,
                "cannot record notifications' tries; they are sent again: {e}"),
        }
    }
}

async fn send(http: &reqwest::Client, sink: &Sink, n: &Notification) -> Tried {
    match &sink.kind {
        SinkKind::Webhook { url, secret } => webhook::send(http, url, secret.as_ref(), n).await,
        SinkKind::Slack {
            token,
            channel,
            api_url,
        } => slack::send(http, api_url, token, channel, n).await,
    }
}

/// What to record of a try, with its journal line: a give-up is a warning
/// for a webhook and an error for Slack (its errors need the operator); a
/// retry is a warning when the sink stops answering (`failing` was false),
/// and an info line says when it answers again; the tries between are
/// debug lines.
fn outcome(
    sink: &Sink,
    n: &Notification,
    tried: Tried,
    failing: &std::sync::atomic::AtomicBool,
) -> NotificationOutcome {
    use std::sync::atomic::Ordering::Relaxed;
    let what = match n.deployment {
        Some(d) => format!("{} of deployment {d}", n.event),
        None => n.event.clone(),
    };
    let name = &sink.name;
    match tried {
        Tried::Delivered(slack) => {
            if failing.swap(false, Relaxed) {
                tracing::info!(sink = %name, "{name} answers again; the notifications waiting for it go out");
            }
            tracing::debug!(sink = %name, delivery = %n.delivery, "notified {name} of {what}");
            NotificationOutcome::Delivered { slack }
        }
        Tried::Retry { after, reason } => {
            if Timestamp::now() - n.created_at > GIVE_UP_AFTER {
                let error = format!("not delivered within 24 hours; the last try: {reason}");
                tracing::warn!(sink = %name, delivery = %n.delivery,
                    "gave up notifying {name} of {what}: {error}");
                return NotificationOutcome::GaveUp { error };
            }
            let wait = after.unwrap_or_else(|| backoff(n.attempts));
            let retry_in = crate::format::duration(Duration::from_secs(wait.as_secs().max(1)));
            let line =
                format!("could not notify {name} of {what}, trying again in {retry_in}: {reason}");
            if !failing.swap(true, Relaxed) {
                tracing::warn!(sink = %name, delivery = %n.delivery,
                    "{line} (said once while {name} does not answer; its notifications wait, retried for up to 24 hours)");
            } else {
                tracing::debug!(sink = %name, delivery = %n.delivery, attempt = n.attempts + 1, "{line}");
            }
            NotificationOutcome::RetryAt {
                at: Timestamp::now() + wait,
                error: reason,
            }
        }
        Tried::GiveUp { reason, fix } => {
            let error = match fix {
                Some(fix) => format!("{reason}: {fix}"),
                None => reason,
            };
            match sink.kind {
                SinkKind::Slack { .. } => tracing::error!(sink = %name, delivery = %n.delivery,
                    "gave up notifying {name} of {what}: {error}"),
                SinkKind::Webhook { .. } => tracing::warn!(sink = %name, delivery = %n.delivery,
                    "gave up notifying {name} of {what}: {error}"),
            }
            NotificationOutcome::GaveUp { error }
        }
    }
}
