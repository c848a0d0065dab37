//! The notify cursor on the event stream: each event becomes one stored
//! notification per sink that hears it, in the transaction that moves the
//! cursor (`Notifications::fan_out`). With replicas, one holds the cursor's
//! lease at a time; the others wait their turn.

use std::collections::HashMap;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::body;
use crate::config::Config;
use crate::current::Current;
use crate::logs::Logs;
use crate::store::Timestamp;
use crate::store::{Deployment, DeploymentId, Event, NewNotification, Owner, SharedStore};
use crate::sync::{Bell, Listener};

/// The consumer's name on the event stream.
pub const CONSUMER: &str = "notify";
/// Events read at once.
const BATCH: i64 = 256;
/// The cursor's lease: renewed at every look, at least every [`POLL`].
const LEASE: Duration = Duration::from_secs(15);
/// Between a look that found events and the next: each look is two writes
/// (the cursor's lease, then the cursor), and in a burst every delivery
/// rings. A pause this long gathers a burst's events into batches, while a
/// lone status still goes out at once. Measured (docs/benchmarks.md): with
/// 10 ms the SQLite writer's rounds for the fan-out cost a burst 10% of its
/// rate; with 50 ms, nothing measurable.
const GAP: Duration = Duration::from_millis(50);
/// Changes made where no bell rings (`ferry lock` from the command line,
/// another replica's statuses between its announcements) are found this
/// often.
const POLL: Duration = Duration::from_millis(500);

pub struct Fanout {
    pub store: SharedStore,
    pub config: Current<Config>,
    pub logs: Logs,
    pub store_created: Timestamp,
    /// Rung when notifications were stored: the sinks' workers listen.
    pub stored: Bell,
}

impl Fanout {
    pub async fn run(self, mut statuses: Listener, stop: CancellationToken) {
        let owner = Owner::this_process();
        let mut failing = false;
        loop {
            match self.round(&owner).await {
                Ok(Some(true)) => {
                    failing = false;
                    continue;
                }
                Ok(Some(false)) => {
                    failing = false;
                    tokio::time::sleep(GAP).await;
                }
                Ok(None) => failing = false,
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(error = %e, "cannot read events for notifications; trying again: {e}");
                }
                Err(e) => tracing::debug!(error = %e, "cannot read events for notifications: {e}"),
            }
            tokio::select! {
                _ = statuses.rung() => {}
                _ = tokio::time::sleep(POLL) => {}
                _ = stop.cancelled() => return,
            }
        }
    }

    /// Reads and fans out one batch: None when there was nothing to read,
    /// else whether there may be more at once (the batch was full).
    async fn round(&self, owner: &Owner) -> crate::store::Result<Option<bool>> {
        let Some(events) = self
            .store
            .take_events(CONSUMER, owner, BATCH, LEASE)
            .await?
        else {
            return Ok(None);
        };
        let Some(last) = events.last() else {
            return Ok(None);
        };
        let through = last.position;
        let notes = self.notes(&events).await?;
        let full = events.len() as i64 == BATCH;
        if self.store.fan_out(CONSUMER, owner, &notes, through).await? {
            if !notes.is_empty() {
                self.stored.ring();
            }
            return Ok(Some(full));
        }
        Ok(None)
    }

    /// The notifications the sinks in force hear of `events`.
    async fn notes(&self, events: &[Event]) -> crate::store::Result<Vec<NewNotification>> {
        let config = self.config.get();
        let mut notes = Vec::new();
        if config.sinks.is_empty() {
            // Still read: the cursor stays at the end, so a sink added
            // later hears what happens from then on, not a week of history.
            return Ok(notes);
        }
        let mut deployments: HashMap<DeploymentId, Option<Deployment>> = HashMap::new();
        for e in events {
            let Some(event) = body::event_name(e) else {
                continue;
            };
            let hearing: Vec<_> = config
                .sinks
                .iter()
                .filter(|s| s.hears(event, &e.repository, &e.environment))
                .collect();
            if hearing.is_empty() {
                continue;
            }
            let deployment = match e.deployment {
                Some(id) if event.of_deployment() => {
                    if let std::collections::hash_map::Entry::Vacant(v) = deployments.entry(id) {
                        v.insert(self.store.get(id).await?);
                    }
                    match &deployments[&id] {
                        // A teardown's own statuses are not a deployment's.
                        Some(d) if d.teardown_of.is_none() => Some(d),
                        _ => continue,
                    }
                }
                _ => None,
            };
            let log_url = deployment.map(|d| self.logs.url(d.id));
            for sink in hearing {
                notes.push(body::notification(
                    &sink.name,
                    event,
                    e,
                    deployment,
                    log_url.as_deref(),
                    self.store_created,
                ));
            }
        }
        Ok(notes)
    }
}
