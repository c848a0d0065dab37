//! The records the store keeps, as the rest of ferry sees them.

use crate::wording;
use std::fmt;

use super::StatusState;
use crate::store::Timestamp;

/// GitHub's id of a deployment; also ferry's primary key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeploymentId(pub i64);

impl DeploymentId {
    /// Teardowns are jobs of ferry's own, not GitHub deployments: they
    /// take negative ids, so no GitHub id is ever taken and no status is
    /// ever posted for them.
    pub fn is_teardown(self) -> bool {
        self.0 < 0
    }
}

impl fmt::Display for DeploymentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::str::FromStr for DeploymentId {
    type Err = std::num::ParseIntError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(DeploymentId)
    }
}

/// Where a deployment is in ferry's life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Queued,
    Running,
    Success,
    Failure,
    Error,
    Inactive,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Queued => "queued",
            State::Running => "running",
            State::Success => "success",
            State::Failure => "failure",
            State::Error => "error",
            State::Inactive => "inactive",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        Some(match s {
            "queued" => State::Queued,
            "running" => State::Running,
            "success" => State::Success,
            "failure" => State::Failure,
            "error" => State::Error,
            "inactive" => State::Inactive,
            _ => return None,
        })
    }

    pub fn is_final(self) -> bool {
        !matches!(self, State::Queued | State::Running)
    }

    /// The GitHub status that announces this final state.
    pub fn final_status(self) -> StatusState {
        match self {
            State::Success => StatusState::Success,
            State::Failure => StatusState::Failure,
            State::Inactive => StatusState::Inactive,
            _ => StatusState::Error,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A deployment as accepted from a webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDeployment {
    pub id: DeploymentId,
    pub repository: String,
    pub environment: String,
    pub task: String,
    pub git_ref: String,
    pub sha: String,
    /// The deployment's `payload`, as compact JSON.
    pub payload: String,
    pub creator: String,
    pub production: bool,
    pub transient: bool,
    pub installation_id: Option<i64>,
    /// Waits for its target's `require_checks` before it may run (read
    /// back: still waiting).
    pub gated: bool,
}

#[derive(Debug, Clone)]
pub struct Deployment {
    pub spec: NewDeployment,
    pub state: State,
    pub description: String,
    /// Unix milliseconds.
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    /// How many times it was claimed: the fencing token of the claim that
    /// returned it. A write that names an older attempt changes nothing.
    pub attempt: i64,
    /// The process holding its lease while it runs, as [`Owner`] names it.
    pub owner: Option<String>,
    /// Set once someone asked to cancel it.
    pub cancelled: Option<Cancellation>,
    /// For a teardown: the environment's latest deployment when it was
    /// asked for, whose variables its steps see.
    pub teardown_of: Option<DeploymentId>,
}

impl Deployment {
    /// How logs and pages name it: "deployment 5", "teardown -3 of
    /// deployment 5".
    pub fn name(&self) -> String {
        match self.teardown_of {
            Some(latest) => format!("teardown {} of deployment {latest}", self.id),
            None => format!("deployment {}", self.id),
        }
    }

    /// Its task as its steps see it (`FERRY_TASK`).
    pub fn task_run(&self) -> &str {
        match self.teardown_of {
            Some(_) => "teardown",
            None => &self.task,
        }
    }

    /// The claim under which this copy was handed out.
    pub fn claim(&self) -> Claim {
        Claim {
            id: self.id,
            attempt: self.attempt,
        }
    }
}

/// A running deployment as one process holds it: writes about it go
/// through only while `attempt` is still the deployment's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Claim {
    pub id: DeploymentId,
    pub attempt: i64,
}

/// This process, as leases name it: `host (pid N)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner(pub String);

impl Owner {
    pub fn this_process() -> Owner {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "localhost".into());
        Owner(format!("{host} (pid {})", std::process::id()))
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The words `ferry deployments` and `ferry show` use for a deployment's
/// state, in the table, `--state` and `--json` alike: the store's states,
/// and `cancelled` for an `error` an operator caused (GitHub gets `error`).
pub const STATE_WORDS: [&str; 7] = [
    "queued",
    "running",
    "success",
    "failure",
    "error",
    "cancelled",
    "inactive",
];

impl Deployment {
    /// Its state as [`STATE_WORDS`] say it.
    pub fn state_word(&self) -> &'static str {
        match (&self.cancelled, self.state) {
            (Some(_), State::Error) => "cancelled",
            (_, state) => state.as_str(),
        }
    }
}

impl std::ops::Deref for Deployment {
    type Target = NewDeployment;
    fn deref(&self) -> &NewDeployment {
        &self.spec
    }
}

/// What intake did with a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    /// Queued; these older ones waiting in its environment became inactive.
    New {
        superseded: Vec<DeploymentId>,
    },
    DuplicateDelivery,
    DuplicateDeployment,
}

/// Where a webhook delivery came from, for de-duplication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryKey {
    pub hook_id: String,
    pub delivery_id: String,
}

/// A step running on a host, with what it takes to end it from elsewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteStep {
    /// As in the config: `[user@]name[:port]`.
    pub host: String,
    pub pgid: i64,
    /// The host's boot id when the step started: a rebooted host is left alone.
    pub boot_id: String,
}

impl RemoteStep {
    /// The host as logs and descriptions name it (no user).
    pub fn host_name(&self) -> String {
        crate::config::Host::parse(&self.host)
            .map(|h| h.to_string())
            .unwrap_or_else(|_| self.host.clone())
    }
}

/// Who asked for a deployment to end early, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cancellation {
    pub by: String,
    pub reason: String,
    /// `ferry cancel --rollback`: put back the hosts it changed.
    pub rollback: bool,
}

impl Cancellation {
    /// "Cancelled by NAME" and ": reason" when one was given.
    pub fn describe(&self) -> String {
        wording::cancelled_by(&self.by, &self.reason)
    }
}

/// What asking to cancel a deployment did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelOutcome {
    Unknown,
    /// It had ended already, in this state.
    Finished(State),
    /// It was waiting: it is now `error`, with its status queued.
    Ended,
    /// It runs: the process running it is asked to stop it.
    Requested,
}

/// Why an environment is torn down; the store checks it again when it
/// queues the teardown, against the environment's latest deployment then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TeardownCause {
    /// A pull request closed: its head branch or sha is the latest
    /// deployment's ref or sha (a transient one).
    PullRequest {
        number: i64,
        head_ref: String,
        head_sha: String,
    },
    /// The latest deployment (a transient one) ended at or before this
    /// (unix ms): `teardown_after` passed.
    Idle { ended_before: Timestamp },
    /// `ferry teardown`, by this person: any environment.
    Operator(String),
}

impl TeardownCause {
    /// Whether `latest` (the environment's latest deployment) is one this
    /// cause tears down.
    pub fn applies_to(&self, latest: &Deployment) -> bool {
        match self {
            TeardownCause::PullRequest {
                head_ref, head_sha, ..
            } => {
                let branch = |r: &str| r.strip_prefix("refs/heads/").unwrap_or(r).to_string();
                latest.transient
                    && ((!head_ref.is_empty() && branch(&latest.git_ref) == branch(head_ref))
                        || (!head_sha.is_empty() && latest.sha == *head_sha))
            }
            TeardownCause::Idle { ended_before } => {
                latest.transient && latest.finished_at.is_some_and(|f| f <= *ended_before)
            }
            TeardownCause::Operator(_) => true,
        }
    }

    /// The teardown's description while it waits.
    pub fn describe(&self) -> String {
        match self {
            TeardownCause::PullRequest { number, .. } => {
                wording::teardown_for_pull_request(*number)
            }
            TeardownCause::Idle { .. } => wording::TEARDOWN_IDLE.into(),
            TeardownCause::Operator(by) => wording::teardown_asked_by(by),
        }
    }

    /// Automatic causes tear an environment down once per latest
    /// deployment, whatever came of it; an operator may try again after a
    /// teardown failed.
    pub fn automatic(&self) -> bool {
        !matches!(self, TeardownCause::Operator(_))
    }
}

/// What asking for a teardown did.
#[derive(Debug, Clone)]
pub enum TeardownQueued {
    /// Queued: the teardown, as stored. `superseded` waiting deployments
    /// became `inactive`.
    Queued {
        teardown: Deployment,
        superseded: Vec<DeploymentId>,
    },
    /// A teardown since the latest deployment already waits, runs, or
    /// (for automatic causes, or when it succeeded) ended: nothing changed.
    Already(Deployment),
    /// The environment has no deployment to tear down.
    NoDeployment,
    /// The cause does not apply to the latest deployment (not transient,
    /// another branch, not idle long enough): nothing changed.
    NotApplicable(Box<Deployment>),
}

/// The description of deployments a teardown made `inactive`, and of
/// those it superseded while they waited.
/// Why a status was never sent, in the outbox's history.
pub use crate::wording::{COALESCED, SUPERSEDED_BY_TEARDOWN, TORN_DOWN};

/// Something an operator did through the command line, for the running
/// ferry to write to its log once ([`Actions`](super::Actions)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorAction {
    /// Order of recording; 0 for one not recorded yet.
    pub seq: i64,
    pub at: Timestamp,
    /// NAME: who ran the command.
    pub actor: String,
    /// `lock`, `unlock`, `cancel`, `teardown`.
    pub action: String,
    pub repository: String,
    pub environment: String,
    pub deployment: Option<DeploymentId>,
    /// What it did, in words: "locked octo-org/web:production: db migration".
    pub detail: String,
}
