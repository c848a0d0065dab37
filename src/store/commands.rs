//! Commands in pull request comments (`.deploy`): each comment is a row,
//! unique by repository and comment id, so a comment delivered twice (two
//! delivery ids, one comment) acts once, across restarts and replicas.
//!
//! A command is worked through in steps, each recorded as it is done: the
//! `eyes` reaction, the deployment created (marked *sent* before GitHub is
//! asked, so whoever looks next asks GitHub first), the reply decided and
//! posted (marked sent first too), and, for a deployment, the reply edited
//! once it ended. A look is leased to one process; every change is fenced
//! by the lease. Each backend implements it in its `commands.rs`.

use async_trait::async_trait;

use super::{DeploymentId, Owner, Result};
use crate::store::Timestamp;

/// A comment that is a command, as delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCommand {
    pub repository: String,
    pub comment_id: i64,
    /// The pull request's number.
    pub number: i64,
    /// Who commented.
    pub login: String,
    /// The comment's first line: the command.
    pub line: String,
    pub installation_id: Option<i64>,
}

/// A command and how far it got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandRecord {
    pub seq: i64,
    pub command: NewCommand,
    pub created_at: Timestamp,
    pub reacted: bool,
    /// A deployment was asked of GitHub: it may have it.
    pub create_sent: bool,
    pub deployment: Option<DeploymentId>,
    /// What the reply says, once decided.
    pub reply: Option<String>,
    /// The reply was posted, or may have been.
    pub reply_sent: bool,
    pub reply_id: Option<i64>,
    /// The deployment's end, to edit into the reply.
    pub final_text: Option<String>,
    pub edited: bool,
    pub done: bool,
}

/// What a step changed; unset fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandChange {
    pub reacted: bool,
    pub create_sent: bool,
    pub deployment: Option<DeploymentId>,
    pub reply: Option<String>,
    pub reply_sent: bool,
    pub reply_id: Option<i64>,
    pub edited: bool,
    pub done: bool,
    /// The look's lease runs until then from now on: renewed before each
    /// call to GitHub that changes something, so that nobody else looks
    /// while it may be in flight.
    pub lease_until: Option<Timestamp>,
}

/// The commands, in each backend's `commands.rs`.
#[async_trait]
pub trait Commands: Send + Sync {
    /// Records a command; false when that comment was recorded before.
    async fn record_command(&self, command: &NewCommand) -> Result<bool>;

    /// Commands not done whose next look is due by `now`, oldest first,
    /// at most `limit`, each leased to `owner` until `until`.
    async fn due_commands(
        &self,
        owner: &Owner,
        now: Timestamp,
        until: Timestamp,
        limit: i64,
    ) -> Result<Vec<CommandRecord>>;

    /// Records a step; false (and nothing changed) when `owner`'s lease
    /// was taken over or the command is done.
    async fn change_command(&self, seq: i64, owner: &Owner, change: &CommandChange)
    -> Result<bool>;

    /// Looks at it again at `at` and lets go of the lease.
    async fn command_later(&self, seq: i64, owner: &Owner, at: Timestamp) -> Result<bool>;

    /// Its reply is posted and its deployment runs: it waits, leased to
    /// nobody, until the deployment ends ([`Commands::command_deployment_ended`])
    /// — at once if it ended already.
    async fn park_command(&self, seq: i64, owner: &Owner) -> Result<bool>;

    /// Deployment `id` ended, as `text` says: the command that made it
    /// edits its reply. How many waited for it.
    async fn command_deployment_ended(&self, id: DeploymentId, text: &str) -> Result<u64>;

    /// At the start of a process that uses the store alone: the last
    /// one's looks are due at once.
    async fn release_commands(&self) -> Result<u64>;

    /// The command that created deployment `id`.
    async fn command_of(&self, id: DeploymentId) -> Result<Option<CommandRecord>>;
}

/// Never, for a parked command: far enough, and far from overflowing.
pub const PARKED: Timestamp = Timestamp::from_millis(i64::MAX / 4);
