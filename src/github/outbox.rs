//! Sends the statuses the store has queued, oldest first within each
//! deployment, retrying what GitHub asks us to retry, across restarts.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::reach::Reach;
use super::{CallError, GitHub};
use crate::current::Current;
use crate::logs::Logs;
use crate::store::{DeploymentId, OutboxItem, PostOutcome, SharedStore, StatusState, Timestamp};

/// Status posts in flight at once.
const IN_FLIGHT: usize = 16;
const MAX_BACKOFF: Duration = Duration::from_secs(15 * 60);
/// Heads looked at beyond the posts there is room for: `queued` statuses of
/// superseded deployments among them are settled without GitHub. Few are:
/// a deployment superseded within its intake batch never gets one (both
/// stores), so a burst leaves about one per batch. Each head looked at is
/// a row read and returned: 64 made the PostgreSQL outbox's looks 0.5 ms
/// each in a burst, for 7 posts.
const COALESCE_AHEAD: usize = 16;
/// How often the store is polled when nothing wakes us.
const IDLE_POLL: Duration = Duration::from_secs(5);
/// While posts are in flight, the outbox asks the store for more at most
/// this often. Answers from a fast GitHub would otherwise have it ask
/// hundreds of times a second, and on PostgreSQL each look passes over
/// the statuses sent since the last vacuum: in a burst that took a core
/// from intake.
const BUSY_GAP: Duration = Duration::from_millis(20);

/// Between a look and the next one that a wake-up asks for. Every delivery
/// rings, and in a burst each look was a store read per delivery; a lone
/// status still goes out at once.
const WAKE_GAP: Duration = Duration::from_millis(5);

pub struct StatusPoster {
    store: SharedStore,
    github: Current<GitHub>,
    /// Rung when a status is queued.
    wake: crate::sync::Bell,
    /// Mints the log link of a final status queued without one: `ferry
    /// cancel` reads no `server.public_url` (docs/reference.md, "Command line").
    links: Option<Logs>,
}

/// Until when GitHub asked us to wait (`Retry-After`, a rate limit's
/// reset), by installation (None: the token): nothing it covers is sent
/// before then.
type Paused = HashMap<Option<i64>, Instant>;

/// Exponential backoff from 1s, capped, with ±25% jitter so that many
/// statuses refused together do not come back together.
pub fn backoff(attempts: i64) -> Duration {
    crate::backoff::Backoff {
        first: Duration::from_secs(1),
        max: MAX_BACKOFF,
        jitter: true,
    }
    .after(attempts)
}

impl StatusPoster {
    pub fn new(
        store: SharedStore,
        github: Current<GitHub>,
        wake: crate::sync::Bell,
    ) -> StatusPoster {
        StatusPoster {
            store,
            github,
            wake,
            links: None,
        }
    }

    /// Statuses other than `queued` and `inactive` queued without a
    /// `log_url` get `logs`' link to the deployment's log.
    pub fn with_log_links(mut self, logs: Logs) -> StatusPoster {
        self.links = Some(logs);
        self
    }

    /// Runs until `shutdown` fires, then keeps sending whatever is due for
    /// at most `drain` before returning; the rest waits in the store.
    ///
    /// Sends run side by side, at most one per deployment (its statuses go
    /// in order) and [`IN_FLIGHT`] in all: one slow answer from GitHub holds
    /// up only its own deployment.
    pub async fn run(self, shutdown: CancellationToken, drain: Duration) {
        let mut in_flight: JoinSet<(OutboxItem, Result<bool, CallError>)> = JoinSet::new();
        let mut busy: HashSet<DeploymentId> = HashSet::new();
        let mut deadline: Option<Instant> = None;
        let mut looked = Instant::now() - BUSY_GAP;
        let mut paused = Paused::new();
        let mut reach = Reach::default();
        let mut woken = false;
        let mut wake = self.wake.listener();
        loop {
            if !in_flight.is_empty() {
                tokio::time::sleep_until(looked + BUSY_GAP).await;
            } else if woken {
                tokio::time::sleep_until(looked + WAKE_GAP).await;
            }
            woken = false;
            looked = Instant::now();
            paused.retain(|_, until| *until > looked);
            let (started, coalesced) =
                match self.start_due(&mut in_flight, &mut busy, &paused).await {
                    Ok(n) => n,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot read the status outbox: {e}");
                        (0, 0)
                    }
                };
            if coalesced > 0 {
                // More heads may be behind the ones just settled.
                continue;
            }
            if deadline.is_some() && in_flight.is_empty() && started == 0 {
                return;
            }
            let idle = match paused.values().min() {
                Some(until) if in_flight.is_empty() => until
                    .saturating_duration_since(Instant::now())
                    .min(IDLE_POLL),
                _ if in_flight.is_empty() => self.until_next_due().await,
                _ => IDLE_POLL,
            };
            let drained = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                Some(first) = in_flight.join_next(), if !in_flight.is_empty() => {
                    // Whatever else has finished is recorded in the same transaction.
                    let mut done = vec![first];
                    while let Some(more) = in_flight.try_join_next() {
                        done.push(more);
                    }
                    let done = done.into_iter().flatten().collect();
                    self.record(done, &mut busy, &mut paused, &mut reach).await;
                }
                _ = wake.rung() => woken = true,
                _ = tokio::time::sleep(idle) => {}
                _ = shutdown.cancelled(), if deadline.is_none() => {
                    deadline = Some(Instant::now() + drain);
                }
                // Posts still in flight stay pending in the store: the next
                // start sends them again.
                _ = drained => return,
            }
        }
    }

    /// Records finished posts in one transaction: a 429's or a rate
    /// limit's `Retry-After` pauses the installation's posts.
    async fn record(
        &self,
        done: Vec<(OutboxItem, Result<bool, CallError>)>,
        busy: &mut HashSet<DeploymentId>,
        paused: &mut Paused,
        reach: &mut Reach,
    ) {
        let posts: Vec<(i64, PostOutcome)> = done
            .into_iter()
            .map(|(item, result)| {
                busy.remove(&item.deployment_id);
                if let Err(CallError::Retry {
                    after: Some(wait), ..
                }) = &result
                {
                    let until = Instant::now() + *wait;
                    let at = paused.entry(item.installation_id).or_insert(until);
                    *at = (*at).max(until);
                }
                (item.seq, Self::outcome(&item, result, reach))
            })
            .collect();
        match self.store.record_posts(&posts).await {
            // Counted once on disk: a post not recorded is sent again.
            Ok(()) => Self::count(&posts),
            Err(e) => {
                tracing::error!(error = %e, "cannot record status posts; they are sent again: {e}")
            }
        }
    }

    async fn until_next_due(&self) -> Duration {
        match self.store.next_status_due().await {
            Ok(Some(at)) => (at - Timestamp::now()).min(IDLE_POLL),
            _ => IDLE_POLL,
        }
    }

    /// Starts sending the statuses now due whose deployment has none in
    /// flight and whose installation is not paused, and settles the
    /// `queued` statuses of superseded deployments without sending them;
    /// returns how many it started and how many it settled.
    async fn start_due(
        &self,
        in_flight: &mut JoinSet<(OutboxItem, Result<bool, CallError>)>,
        busy: &mut HashSet<DeploymentId>,
        paused: &Paused,
    ) -> crate::store::Result<(usize, usize)> {
        let room = IN_FLIGHT.saturating_sub(in_flight.len());
        let due = self
            .store
            .due_statuses(
                Timestamp::now(),
                (room + busy.len() + COALESCE_AHEAD) as i64,
            )
            .await?;
        let mut start = Vec::new();
        let mut records = Vec::new();
        let mut coalesced = 0;
        for item in due {
            if busy.contains(&item.deployment_id) {
                continue;
            }
            if item.superseded {
                records.push((item.seq, PostOutcome::Coalesced));
                coalesced += 1;
            } else if start.len() < room && !paused.contains_key(&item.installation_id) {
                busy.insert(item.deployment_id);
                records.push((item.seq, PostOutcome::Trying));
                start.push(item);
            }
        }
        if records.is_empty() {
            return Ok((0, 0));
        }
        // Durable before any request goes out: a post whose answer is then
        // lost is known to be in doubt.
        if let Err(e) = self.store.record_posts(&records).await {
            for item in &start {
                busy.remove(&item.deployment_id);
            }
            return Err(e);
        }
        Self::count(&records);
        let started = start.len();
        for mut item in start {
            if let Some(links) = &self.links
                && item.status.log_url.is_none()
                && !matches!(
                    item.status.state,
                    StatusState::Queued | StatusState::Inactive
                )
            {
                item.status.log_url = Some(links.url(item.deployment_id));
            }
            // The client in force now: a reload may have changed the token.
            let github = self.github.get();
            in_flight.spawn(async move {
                let result = Self::deliver(&github, &item).await;
                (item, result)
            });
        }
        Ok((started, coalesced))
    }

    /// Posts a status; one in doubt only if GitHub's list of the
    /// deployment's statuses does not have it yet (then `Ok(true)`).
    async fn deliver(github: &GitHub, item: &OutboxItem) -> Result<bool, CallError> {
        if item.in_doubt && github.has_status(item).await? {
            return Ok(true);
        }
        github.post_status(item).await.map(|()| false)
    }

    fn count(posts: &[(i64, PostOutcome)]) {
        for (_, outcome) in posts {
            let result = match outcome {
                PostOutcome::Trying => continue,
                PostOutcome::Sent => "sent",
                PostOutcome::Confirmed => "confirmed",
                PostOutcome::Coalesced => "coalesced",
                PostOutcome::RetryAt { .. } | PostOutcome::Unanswered { .. } => "retried",
                PostOutcome::Failed { .. } => "refused",
            };
            metrics::counter!(crate::metrics::STATUS_POSTS, "result" => result).increment(1);
        }
    }

    /// What to record for a post, with its log line: while GitHub does
    /// not answer, [`Reach`] says so once and each try is a debug line.
    fn outcome(
        item: &OutboxItem,
        result: Result<bool, CallError>,
        reach: &mut Reach,
    ) -> PostOutcome {
        let state = item.status.state.as_str();
        let id = item.deployment_id;
        let unanswered = match &result {
            Err(CallError::Unreached { reason } | CallError::Unanswered { reason }) => Some(reason),
            Err(CallError::Retry { reason, .. }) if reason.starts_with('5') => Some(reason),
            _ => None,
        };
        // While GitHub does not answer, Reach says so once; each try is a
        // debug line.
        let quiet = match unanswered {
            Some(reason) => {
                reach.failed(reason);
                true
            }
            None => {
                reach.answered();
                false
            }
        };
        match result {
            Ok(false) => {
                tracing::debug!(deployment = %id, status = state, "deployment {id}: {state} posted");
                PostOutcome::Sent
            }
            Ok(true) => {
                tracing::info!(deployment = %id, status = state,
                    "deployment {id}: GitHub already had {state} (its post's answer was lost); not posting it again");
                PostOutcome::Confirmed
            }
            Err(CallError::Unanswered { reason }) => {
                let wait = backoff(item.attempts);
                let line = format!(
                    "deployment {id}: {state} sent without an answer; GitHub's statuses are read before it is sent again: {reason}"
                );
                retry_line(quiet, item, &line);
                PostOutcome::Unanswered {
                    at: Timestamp::now() + wait,
                    error: reason,
                }
            }
            Err(e @ (CallError::Retry { .. } | CallError::Unreached { .. })) => {
                let after = match &e {
                    CallError::Retry { after, .. } => *after,
                    _ => None,
                };
                let reason = e.to_string();
                let wait = after.unwrap_or_else(|| backoff(item.attempts));
                let retry_in = crate::format::duration(Duration::from_secs(wait.as_secs().max(1)));
                let line = format!(
                    "deployment {id}: {state} not posted, will retry in {retry_in}: {reason}"
                );
                retry_line(quiet, item, &line);
                PostOutcome::RetryAt {
                    at: Timestamp::now() + wait,
                    error: reason,
                }
            }
            Err(CallError::Permanent { reason }) => {
                tracing::error!(
                    deployment = %id, repository = %item.repository, status = state,
                    "GitHub refused the {state} status of deployment {id} ({}), giving up on it: {reason}", item.repository
                );
                PostOutcome::Failed { error: reason }
            }
        }
    }
}

/// A try's line: a warning, unless [`Reach`] said already that GitHub
/// does not answer.
fn retry_line(quiet: bool, item: &OutboxItem, line: &str) {
    let (id, state, attempt) = (
        item.deployment_id,
        item.status.state.as_str(),
        item.attempts + 1,
    );
    if quiet {
        tracing::debug!(deployment = %id, status = state, attempt, "{line}");
    } else {
        tracing::warn!(deployment = %id, status = state, attempt, "{line}");
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
