//! Every state change, once: the event stream the consumers read (the
//! notifications, pull-request replies, protection-rule approvals and
//! metrics of this round). A change is recorded in the transaction that
//! makes it, by triggers on the tables that hold the state (a status
//! queued for a deployment, a lock taken or lifted, a teardown's end), so
//! no code path can change state and forget to say so.
//!
//! Each consumer reads through a cursor of its own and never holds up
//! intake, the runner or another consumer. With replicas, one replica at
//! a time holds a consumer's lease ([`Events::take_events`]); a cursor
//! moves only under the lease that took the events ([`Events::ack_events`]),
//! so an event is handled once unless the handler dies before its ack,
//! and then again by the next holder (at least once). The GitHub outbox
//! reads its own delivery rows (`status_outbox`), written in the same
//! transaction as each status event. Each backend implements it in its
//! `events.rs`.

use std::time::Duration;

use async_trait::async_trait;

use super::{DeploymentId, Owner, Result};
use crate::store::Timestamp;

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A status was queued for a deployment (`state`: GitHub's word for it).
    Status,
    /// An environment was locked (`actor`: who holds it; `description`: why).
    Lock,
    /// A lock was lifted (`actor`: who had held it).
    Unlock,
    /// A teardown ended (`state`: its final state).
    Teardown,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Status => "status",
            EventKind::Lock => "lock",
            EventKind::Unlock => "unlock",
            EventKind::Teardown => "teardown",
        }
    }

    pub fn parse(s: &str) -> Option<EventKind> {
        Some(match s {
            "status" => EventKind::Status,
            "lock" => EventKind::Lock,
            "unlock" => EventKind::Unlock,
            "teardown" => EventKind::Teardown,
            _ => return None,
        })
    }
}

/// Where an event stands in the stream: the order consumers read it in.
/// On PostgreSQL, the writing transaction's id first (replicas commit out
/// of `seq` order); on SQLite (one writer) always 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct EventPosition {
    pub xid: i64,
    pub seq: i64,
}

/// One state change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub position: EventPosition,
    /// When it happened (ms since the epoch).
    pub at: Timestamp,
    pub kind: EventKind,
    pub deployment: Option<DeploymentId>,
    pub repository: String,
    pub environment: String,
    pub state: Option<String>,
    pub description: String,
    pub actor: Option<String>,
    /// A lock's end (`ferry lock --for`), unix milliseconds.
    pub until: Option<Timestamp>,
}

#[async_trait]
pub trait Events: Send + Sync {
    /// The next events after `consumer`'s cursor, at most `limit`, oldest
    /// first, with `consumer` leased to `owner` for `lease`; `None` while
    /// another owner's lease holds. A consumer seen for the first time
    /// starts at the end of the stream: it is told of what happens from
    /// now on, not of the store's whole history.
    async fn take_events(
        &self,
        consumer: &str,
        owner: &Owner,
        limit: i64,
        lease: Duration,
    ) -> Result<Option<Vec<Event>>>;

    /// Moves `consumer`'s cursor past `through`; false (and nothing moved)
    /// when `owner` no longer holds its lease.
    async fn ack_events(
        &self,
        consumer: &str,
        owner: &Owner,
        through: EventPosition,
    ) -> Result<bool>;

    /// Forgets events from before `before` (ms since the epoch); how many.
    async fn prune_events(&self, before: Timestamp) -> Result<u64>;
}

/// How long events are kept: a consumer stopped for longer misses what
/// happened before (its deliveries would be stale by then anyway).
pub const EVENT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
