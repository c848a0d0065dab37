//! The pull-request replies' cursor on the event stream: when a
//! deployment a command made ends, the command edits its reply. Events
//! are handled at least once; recording an end twice changes nothing.

use std::sync::Arc;

use tokio::sync::Notify;

use crate::config::Config;
use crate::current::Current;
use crate::store::{Event, EventKind, SharedStore};
use crate::wording::pr as words;

/// The consumer's name on the event stream.
pub const CONSUMER: &str = "pr_replies";

pub struct Ends {
    pub store: SharedStore,
    pub config: Current<Config>,
    /// Rung when a command has a reply to edit.
    pub commands: Arc<Notify>,
}

#[async_trait::async_trait]
impl crate::cursor::Handler for Ends {
    fn consumer(&self) -> &'static str {
        CONSUMER
    }

    async fn handle(&self, e: &Event) -> crate::store::Result<()> {
        // Without [commands] no reply waits: the cursor only moves on.
        if self.config.get().commands.is_none() {
            return Ok(());
        }
        self.ended(e).await
    }
}

impl Ends {
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
        (Some(s), Some(f)) => Some(crate::format::duration(f - s)),
        _ => None,
    };
    Ok(Some(words::ended(
        d.state_word(),
        &d.description,
        took.as_deref(),
    )))
}
