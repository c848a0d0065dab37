//! Notifications to the `[[notify]]` sinks: delivery rows the notifier
//! writes as it reads the event stream ([`super::Events`]), in the same
//! transaction that moves its cursor, so an event becomes each sink's
//! notification exactly once; then sent, at least once, oldest first
//! within each chain (a deployment, or an environment's locks). Each
//! backend implements it in its `notifications.rs`.

use std::time::Duration;

use async_trait::async_trait;

use super::{DeploymentId, EventPosition, Owner, Result};
use crate::store::Timestamp;

/// A notification to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewNotification {
    pub sink: String,
    /// The event's name as the sink hears it (`success`, `locked`, …).
    pub event: String,
    /// What order is kept within: [`chain_of_deployment`] or
    /// [`chain_of_environment`].
    pub chain: String,
    pub deployment: Option<DeploymentId>,
    /// `X-Ferry-Delivery`: unique to this notification, the same on every try.
    pub delivery: String,
    /// The JSON body, the same on every try.
    pub body: String,
    /// When the event happened (ms since the epoch).
    pub at: Timestamp,
    /// The event it tells of: with the sink, its unique key.
    pub position: EventPosition,
}

pub fn chain_of_deployment(id: DeploymentId) -> String {
    format!("deployment:{}", id.0)
}

pub fn chain_of_environment(repository: &str, environment: &str) -> String {
    format!("environment:{repository}:{environment}")
}

/// The Slack message a deployment has in a sink's channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlackMessage {
    /// The channel's id, as Slack answered it (`chat.update` needs it).
    pub channel: String,
    pub ts: String,
}

/// A notification claimed for sending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub id: i64,
    pub sink: String,
    pub event: String,
    pub deployment: Option<DeploymentId>,
    pub delivery: String,
    pub body: String,
    pub created_at: Timestamp,
    /// Tries before this one.
    pub attempts: i64,
    /// The deployment's message in this sink, if one was posted.
    pub slack: Option<SlackMessage>,
}

/// What became of a try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotificationOutcome {
    /// Delivered; for Slack, the message it posted or updated.
    Delivered { slack: Option<SlackMessage> },
    /// Not delivered; tried again at `at` (ms since the epoch).
    RetryAt { at: Timestamp, error: String },
    /// Not delivered, and never tried again.
    GaveUp { error: String },
}

impl NotificationOutcome {
    /// What the notification's row keeps of it: its state, the next try
    /// (a retry) and the error (a retry or a give-up).
    pub fn columns(&self) -> (NotificationState, Option<Timestamp>, Option<&str>) {
        match self {
            NotificationOutcome::Delivered { .. } => (NotificationState::Delivered, None, None),
            NotificationOutcome::RetryAt { at, error } => {
                (NotificationState::Pending, Some(*at), Some(error))
            }
            NotificationOutcome::GaveUp { error } => {
                (NotificationState::GivenUp, None, Some(error))
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotificationState {
    Pending,
    Delivered,
    GivenUp,
}

impl NotificationState {
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationState::Pending => "pending",
            NotificationState::Delivered => "delivered",
            NotificationState::GivenUp => "given_up",
        }
    }

    pub fn parse(s: &str) -> Option<NotificationState> {
        Some(match s {
            "pending" => NotificationState::Pending,
            "delivered" => NotificationState::Delivered,
            "given_up" => NotificationState::GivenUp,
            _ => return None,
        })
    }
}

/// What `ferry show` tells of a notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationRecord {
    pub sink: String,
    pub event: String,
    pub delivery: String,
    pub state: NotificationState,
    pub attempts: i64,
    pub created_at: Timestamp,
    /// Pending: when it is tried next.
    pub next_try_at: Option<Timestamp>,
    pub last_error: Option<String>,
    /// Delivered or given up: when.
    pub done_at: Option<Timestamp>,
}

#[async_trait]
pub trait Notifications: Send + Sync {
    /// Stores `notes` and moves `consumer`'s event cursor past `through`,
    /// in one transaction, if `owner` still holds the consumer's lease;
    /// false (and nothing written) if not. A note already stored (same
    /// sink, same event) is not stored again.
    async fn fan_out(
        &self,
        consumer: &str,
        owner: &Owner,
        notes: &[NewNotification],
        through: EventPosition,
    ) -> Result<bool>;

    /// Up to `limit` of `sink`'s notifications due now, each the oldest
    /// pending one of its chain and not leased to another owner, leased to
    /// `owner` for `lease`, oldest first.
    async fn claim_notifications(
        &self,
        sink: &str,
        owner: &Owner,
        limit: i64,
        lease: Duration,
    ) -> Result<Vec<Notification>>;

    /// Records tries of notifications `owner` claimed, in one transaction;
    /// for each, false (and nothing written) when its lease was lost, and
    /// another owner tries it.
    async fn record_notifications(
        &self,
        owner: &Owner,
        tries: &[(i64, NotificationOutcome)],
    ) -> Result<Vec<bool>>;

    /// [`Notifications::record_notifications`] for one try.
    async fn record_notification(
        &self,
        id: i64,
        owner: &Owner,
        outcome: &NotificationOutcome,
    ) -> Result<bool> {
        let recorded = self
            .record_notifications(owner, &[(id, outcome.clone())])
            .await?;
        Ok(recorded.first().copied().unwrap_or(false))
    }

    /// Releases every claim (at the start of a process that uses the store
    /// alone: whoever held them is gone), so what was in flight at a
    /// `kill -9` is sent again at once rather than when its lease ends.
    async fn release_notifications(&self) -> Result<u64>;

    /// A deployment's notifications, oldest first.
    async fn notifications_of(&self, deployment: DeploymentId) -> Result<Vec<NotificationRecord>>;

    /// The notifications still to be delivered, by sink.
    async fn pending_notifications(&self) -> Result<Vec<(String, i64)>>;

    /// Forgets delivered and given-up notifications done before `before`
    /// (ms since the epoch), and the Slack messages of deployments that
    /// have none left; how many notifications.
    async fn prune_notifications(&self, before: Timestamp) -> Result<u64>;
}
