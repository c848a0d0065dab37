//! The pull-request replies' cursor on the event stream: when a
//! deployment a command made ends, the command edits its reply. Events
//! are handled at least once; recording an end twice changes nothing.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::current::Current;
use crate::store::{Event, EventKind, Owner, SharedStore};
use crate::sync::Listener;
use crate::wording::pr as words;

/// The consumer's name on the event stream.
pub const CONSUMER: &str = "pr_replies";
const BATCH: i64 = 256;
const LEASE: Duration = Duration::from_secs(15);
/// Ends where no bell rings (another replica's) are found this often.
const POLL: Duration = Duration::from_secs(1);

pub struct Ends {
    pub store: SharedStore,
    pub config: Current<Config>,
    /// Rung when a command has a reply to edit.
    pub commands: Arc<Notify>,
}

impl Ends {
    pub async fn run(self, mut statuses: Listener, stop: CancellationToken) {
        let owner = Owner::this_process();
        loop {
            match self.round(&owner).await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "cannot read events for pull request replies: {e}")
                }
            }
            tokio::select! {
                _ = statuses.rung() => {}
                _ = tokio::time::sleep(POLL) => {}
                _ = stop.cancelled() => return,
            }
        }
    }

    /// One batch; whether it was full (there may be more at once).
    async fn round(&self, owner: &Owner) -> crate::store::Result<bool> {
        let Some(events) = self
            .store
            .take_events(CONSUMER, owner, BATCH, LEASE)
            .await?
        else {
            return Ok(false);
        };
        let Some(last) = events.last() else {
            return Ok(false);
        };
        // Without [commands] no reply waits: the cursor only moves on.
        if self.config.get().commands.is_some() {
            for e in &events {
                self.ended(e).await?;
            }
        }
        self.store
            .ack_events(CONSUMER, owner, last.position)
            .await?;
        Ok(events.len() as i64 == BATCH)
    }

    async fn ended(&self, e: &Event) -> crate::store::Result<()> {
        let final_state = matches!(
            e.state.as_deref(),
            Some("success" | "failure" | "error" | "inactive")
        );
        let (EventKind::Status, Some(id), true) = (e.kind, e.deployment, final_state) else {
            return Ok(());
        };
        let Some(text) = ended_text(&self.store, id).await? else {
            return Ok(());
        };
        if self.store.command_deployment_ended(id, &text).await? > 0 {
            self.commands.notify_one();
        }
        Ok(())
    }
}

/// What a reply says of its deployment's end, once it ended: its state,
/// description and how long it ran. A command that learns its deployment's
/// id after the end (a look that died before recording it) reads it here.
pub async fn ended_text(
    store: &SharedStore,
    id: crate::store::DeploymentId,
) -> crate::store::Result<Option<String>> {
    let Some(d) = store.get(id).await? else {
        return Ok(None);
    };
    if d.finished_at.is_none() {
        return Ok(None);
    }
    let took = match (d.started_at, d.finished_at) {
        (Some(s), Some(f)) => Some(crate::format::duration_ms(f - s)),
        _ => None,
    };
    Ok(Some(words::ended(
        d.state_word(),
        &d.description,
        took.as_deref(),
    )))
}
