//! Deployments an operator asked for from the command line (`ferry deploy`,
//! `ferry rollback`): the command has no credentials, so it leaves the
//! request in the store, one running ferry (any replica) takes it, creates
//! the deployment on GitHub and records GitHub's answer, which the command
//! is waiting to read.
//!
//! Every request has a deadline (the command's 30 s): no ferry takes one
//! after it, and the one that took it gives up on GitHub before it, so a
//! command that said "nothing was created" is never proved wrong later.

use std::time::Duration;

use async_trait::async_trait;

use super::{Deployment, DeploymentId, Owner, Result, State};

/// What to ask GitHub for: the fields of `POST /repos/{r}/deployments`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployRequest {
    /// Who asked (NAME).
    pub actor: String,
    pub repository: String,
    pub environment: String,
    /// A branch, tag or sha; for a rollback, the good deployment's sha.
    pub git_ref: String,
    pub task: String,
    /// JSON text.
    pub payload: String,
    pub description: String,
    /// Send `required_contexts: []` (`--force`, and every rollback).
    pub skip_contexts: bool,
    /// Sent when set (a rollback repeats the original's flags).
    pub production: Option<bool>,
    pub transient: Option<bool>,
    /// The deployment a rollback puts back.
    pub rollback_of: Option<DeploymentId>,
}

/// What came of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestAnswer {
    /// GitHub created this deployment.
    Created(DeploymentId),
    /// GitHub answered, and not with a deployment: its status and message
    /// ("409 Conflict: Commit status checks failed for main.").
    Refused(String),
    /// GitHub could not be reached before the deadline; nothing was sent.
    Unreachable(String),
    /// The request was sent and no answer came before the deadline:
    /// GitHub may have created the deployment.
    InDoubt(String),
}

impl RequestAnswer {
    /// The kind and the text, as stored.
    pub fn to_parts(&self) -> (&'static str, Option<i64>, String) {
        match self {
            RequestAnswer::Created(id) => ("created", Some(id.0), String::new()),
            RequestAnswer::Refused(t) => ("refused", None, t.clone()),
            RequestAnswer::Unreachable(t) => ("unreachable", None, t.clone()),
            RequestAnswer::InDoubt(t) => ("in_doubt", None, t.clone()),
        }
    }

    pub fn from_parts(kind: &str, deployment: Option<i64>, text: String) -> Option<RequestAnswer> {
        Some(match kind {
            "created" => RequestAnswer::Created(DeploymentId(deployment?)),
            "refused" => RequestAnswer::Refused(text),
            "unreachable" => RequestAnswer::Unreachable(text),
            "in_doubt" => RequestAnswer::InDoubt(text),
            _ => return None,
        })
    }
}

/// Where a request is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestState {
    /// No ferry took it yet.
    Pending,
    /// A ferry took it (`by`) and is asking GitHub.
    Taken {
        by: String,
    },
    Answered(RequestAnswer),
    /// The command gave up before any ferry took it: none ever will.
    Withdrawn,
}

/// A request a ferry took, with the time left before its deadline.
#[derive(Debug, Clone)]
pub struct TakenRequest {
    pub seq: i64,
    pub request: DeployRequest,
    pub left: Duration,
}

/// The requests, in each backend's `requests.rs`.
#[async_trait]
pub trait Requests: Send + Sync {
    /// Leaves a request for the running ferry, to be taken within `within`
    /// (measured on the database's clock); returns its number.
    async fn request_deployment(&self, request: &DeployRequest, within: Duration) -> Result<i64>;

    /// Takes the oldest pending request with more than `margin` left
    /// before its deadline, for `owner`; with replicas, each is taken once.
    async fn take_request(&self, owner: &Owner, margin: Duration) -> Result<Option<TakenRequest>>;

    /// Records what came of a taken request.
    async fn answer_request(&self, seq: i64, answer: &RequestAnswer) -> Result<()>;

    /// Where request `seq` is (None: no such request).
    async fn request_state(&self, seq: i64) -> Result<Option<RequestState>>;

    /// The command stops waiting: a request no ferry took is withdrawn
    /// for good. Returns the state it is left in.
    async fn withdraw_request(&self, seq: i64) -> Result<Option<RequestState>>;
}

/// The state a stored row describes: its answer, who took it, whether it
/// was withdrawn.
pub(crate) fn state_of(
    answer: Option<(String, Option<i64>, String)>,
    taken_by: Option<String>,
    withdrawn: bool,
) -> RequestState {
    if let Some((kind, deployment, text)) = answer
        && let Some(a) = RequestAnswer::from_parts(&kind, deployment, text)
    {
        return RequestState::Answered(a);
    }
    match (taken_by, withdrawn) {
        (_, true) => RequestState::Withdrawn,
        (Some(by), false) => RequestState::Taken { by },
        (None, false) => RequestState::Pending,
    }
}

/// The last good version (docs/operations.md, "Deploy from the command line"): in an
/// environment's history, newest first, the newest deployment that ended
/// in `success` with a sha other than the newest deployment's.
pub fn last_good(history: &[Deployment]) -> Option<&Deployment> {
    let newest = history.first()?;
    history
        .iter()
        .find(|d| d.state == State::Success && d.sha != newest.sha)
}
