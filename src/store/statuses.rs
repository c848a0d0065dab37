//! What is said to GitHub about a deployment: a status's state, one
//! queued for the outbox, its record, and how a post went.

use super::*;
use crate::store::Timestamp;

/// A deployment status as GitHub names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusState {
    Queued,
    InProgress,
    Success,
    Failure,
    Error,
    Inactive,
}

impl StatusState {
    pub fn as_str(self) -> &'static str {
        match self {
            StatusState::Queued => "queued",
            StatusState::InProgress => "in_progress",
            StatusState::Success => "success",
            StatusState::Failure => "failure",
            StatusState::Error => "error",
            StatusState::Inactive => "inactive",
        }
    }

    pub fn parse(s: &str) -> Option<StatusState> {
        Some(match s {
            "queued" => StatusState::Queued,
            "in_progress" => StatusState::InProgress,
            "success" => StatusState::Success,
            "failure" => StatusState::Failure,
            "error" => StatusState::Error,
            "inactive" => StatusState::Inactive,
            _ => return None,
        })
    }
}

/// A status to post, as written to the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewStatus {
    pub state: StatusState,
    pub description: String,
    pub log_url: Option<String>,
    pub environment_url: Option<String>,
    pub auto_inactive: Option<bool>,
}

impl NewStatus {
    pub fn new(state: StatusState, description: impl Into<String>) -> NewStatus {
        NewStatus {
            state,
            description: description.into(),
            log_url: None,
            environment_url: None,
            auto_inactive: None,
        }
    }

    pub fn with_log_url(mut self, url: impl Into<String>) -> NewStatus {
        self.log_url = Some(url.into());
        self
    }
}

/// A pending status at the head of its deployment's queue.
#[derive(Debug, Clone)]
pub struct OutboxItem {
    pub seq: i64,
    pub deployment_id: DeploymentId,
    pub repository: String,
    pub installation_id: Option<i64>,
    pub status: NewStatus,
    pub attempts: i64,
    /// A `queued` status of a deployment superseded since: GitHub is sent
    /// only its `inactive` ([`PostOutcome::Coalesced`]).
    pub superseded: bool,
    /// Handed out before without a recorded answer: GitHub may have it
    /// already, so its statuses are read before it is posted again.
    pub in_doubt: bool,
}

/// What became of one attempt to post a status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PostOutcome {
    /// About to be sent: recorded (durably) before the request goes out,
    /// so that a post whose answer is lost is known to be in doubt.
    Trying,
    Sent,
    /// In doubt, and GitHub's list of the deployment's statuses has it.
    Confirmed,
    /// Sent, but no answer came (a timeout, a dropped connection): tried
    /// again at this time (unix ms), after reading GitHub's statuses.
    Unanswered {
        at: Timestamp,
        error: String,
    },
    /// Not sent: a `queued` status of a deployment superseded before it
    /// went out, which GitHub learns of from its `inactive`.
    Coalesced,
    /// Try again at this time (unix ms).
    RetryAt {
        at: Timestamp,
        error: String,
    },
    /// GitHub refused it for good.
    Failed {
        error: String,
    },
}

/// One status of a deployment as the outbox keeps it, for `ferry show`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusRecord {
    pub state: StatusState,
    pub description: String,
    pub log_url: Option<String>,
    /// When it was queued (ms since the epoch).
    pub created_at: Timestamp,
    pub attempts: i64,
    pub next_attempt_at: Timestamp,
    /// When GitHub took it.
    pub sent_at: Option<Timestamp>,
    /// When ferry gave up on it (refused for good, or coalesced).
    pub failed_at: Option<Timestamp>,
    pub last_error: Option<String>,
    /// Sent, and no answer recorded: GitHub's statuses are read before it
    /// is sent again.
    pub in_doubt: bool,
}

/// The statuses GitHub does not have yet, in sum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PendingStatuses {
    pub count: i64,
    /// When the oldest was queued (ms since the epoch).
    pub oldest_at: Option<Timestamp>,
}
