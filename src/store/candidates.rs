//! Deployments ferry starts itself (`[target.auto_deploy]`): each sha that
//! may be deployed automatically is an environment's *candidate* until
//! ferry created its deployment on GitHub or dropped it.
//!
//! A candidate is a row, unique by (repository, environment, sha): a sha
//! is deployed automatically at most once per environment, whatever the
//! redeliveries, restarts and replicas. Waiting (for checks, for a soak)
//! is a time in the row, not a sleeping task. A look at a candidate is
//! leased to one process; the creation is marked *sent* in the store
//! before GitHub is asked, so whoever looks next knows GitHub may have it
//! and asks GitHub first. Each backend implements it in its `candidates.rs`.

use async_trait::async_trait;

use super::{DeploymentId, Owner, Result};
use crate::store::Timestamp;

/// What made a sha a candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CandidateSource {
    /// The head of this branch (a `push`, or the reconciler's read of it).
    Branch(String),
    /// Deployment `deployment` of it succeeded in `environment`.
    Promotion {
        environment: String,
        deployment: DeploymentId,
    },
}

/// A sha offered to an environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCandidate {
    pub repository: String,
    pub environment: String,
    pub sha: String,
    pub source: CandidateSource,
    /// The App installation the event came from (None with a token).
    pub installation_id: Option<i64>,
    /// Not looked at before this (ms since the epoch): a promotion's soak.
    pub due_at: Timestamp,
}

/// Where a candidate is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CandidateState {
    Waiting,
    /// GitHub created its deployment.
    Created(DeploymentId),
    /// Never to be deployed: why.
    Dropped(String),
    /// A newer candidate of its environment came before it was sent.
    Replaced,
}

impl CandidateState {
    /// The kind, the deployment and the reason, as stored.
    pub fn to_parts(&self) -> (&'static str, Option<i64>, Option<&str>) {
        match self {
            CandidateState::Waiting => ("waiting", None, None),
            CandidateState::Created(id) => ("created", Some(id.0), None),
            CandidateState::Dropped(why) => ("dropped", None, Some(why)),
            CandidateState::Replaced => ("replaced", None, None),
        }
    }

    pub fn from_parts(kind: &str, deployment: Option<i64>, reason: Option<String>) -> Self {
        match (kind, deployment) {
            ("created", Some(id)) => CandidateState::Created(DeploymentId(id)),
            ("dropped", _) => CandidateState::Dropped(reason.unwrap_or_default()),
            ("replaced", _) => CandidateState::Replaced,
            _ => CandidateState::Waiting,
        }
    }
}

/// A candidate as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub seq: i64,
    pub offer: NewCandidate,
    /// When it became a candidate (ms since the epoch): its checks'
    /// timeout counts from here.
    pub created_at: Timestamp,
    pub state: CandidateState,
    /// A creation was sent before: GitHub may have the deployment.
    pub sent: bool,
}

/// The candidates, in each backend's `candidates.rs`.
#[async_trait]
pub trait Candidates: Send + Sync {
    /// Makes `offer` its environment's candidate, unless that sha was one
    /// there before (a redelivered push, a head the reconciler had seen,
    /// a sha deployed or dropped already): then nothing changes and false.
    /// The environment's waiting candidates not sent yet are replaced, in
    /// the same transaction.
    async fn offer_candidate(&self, offer: &NewCandidate) -> Result<bool>;

    /// Waiting candidates due by `now`, oldest first, at most `limit`, each
    /// leased to `owner` until `until` (its next look moves there): with
    /// replicas, each look is one process's.
    async fn due_candidates(
        &self,
        owner: &Owner,
        now: Timestamp,
        until: Timestamp,
        limit: i64,
    ) -> Result<Vec<Candidate>>;

    /// Looks at it again at `at` (its checks are pending, GitHub did not
    /// answer). False when `owner`'s lease was taken over or it no longer
    /// waits.
    async fn candidate_later(&self, seq: i64, owner: &Owner, at: Timestamp) -> Result<bool>;

    /// Its creation is about to be sent: from now on GitHub may have it.
    /// The lease is renewed until `until`, so that nobody else looks while
    /// the request may be in flight. False (and nothing to send) when
    /// `owner`'s lease was taken over.
    async fn candidate_sending(&self, seq: i64, owner: &Owner, until: Timestamp) -> Result<bool>;

    /// At the start of a process that uses the store alone: the looks the
    /// last one had leased are due at once (it is gone). How many.
    async fn release_candidates(&self) -> Result<u64>;

    /// It ends, `Created` or `Dropped`. False when `owner`'s lease was
    /// taken over or it no longer waits.
    async fn settle_candidate(&self, seq: i64, owner: &Owner, end: &CandidateState)
    -> Result<bool>;

    /// A check of `sha` changed (a `check_run`, `check_suite` or `status`
    /// webhook): its waiting candidates past their soak are looked at now.
    /// How many.
    async fn candidates_look_again(&self, repository: &str, sha: &str) -> Result<u64>;

    /// The candidate GitHub created deployment `id` for.
    async fn candidate_of(&self, id: DeploymentId) -> Result<Option<Candidate>>;

    /// An environment's candidates, newest first, at most `limit`.
    async fn candidates_of(
        &self,
        repository: &str,
        environment: &str,
        limit: i64,
    ) -> Result<Vec<Candidate>>;
}

/// The stored source columns (branch, from environment, from deployment)
/// of a candidate, and back.
pub(crate) fn source_columns(s: &CandidateSource) -> (Option<&str>, Option<&str>, Option<i64>) {
    match s {
        CandidateSource::Branch(b) => (Some(b), None, None),
        CandidateSource::Promotion {
            environment,
            deployment,
        } => (None, Some(environment), Some(deployment.0)),
    }
}

pub(crate) fn source_of(
    branch: Option<String>,
    from_environment: Option<String>,
    from_deployment: Option<i64>,
) -> CandidateSource {
    match (branch, from_environment, from_deployment) {
        (Some(b), _, _) => CandidateSource::Branch(b),
        (None, e, d) => CandidateSource::Promotion {
            environment: e.unwrap_or_default(),
            deployment: DeploymentId(d.unwrap_or_default()),
        },
    }
}
