//! Durable state behind one interface, [`Store`], with two backends:
//!
//! - [`sqlite`]: one box. WAL with `synchronous = FULL`; one writer thread
//!   commits bursts together (group commit), readers run beside it.
//! - [`postgres`]: several replicas sharing one database. Coordination is
//!   the database's: unique constraints, `FOR UPDATE SKIP LOCKED` claims,
//!   a partial unique index on running deployments.
//!
//! Each backend has its own SQL and its own migrations, in one file per
//! noun named alike in both; the same conformance suite (`tests/store/`,
//! split the same way) runs against both.

mod cancels;
mod candidates;
mod commands;
pub mod daemons;
mod environments;
mod events;
mod freezes;
mod gates;
mod locks;
mod notifications;
mod origins;
mod outbox;
mod outcomes;
pub mod postgres;
mod protection;
mod requests;
pub mod sqlite;
mod statuses;
mod steps;
mod teardowns;
mod timestamp;
mod types;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

pub use cancels::*;
pub use candidates::*;
pub use commands::*;
pub use daemons::{Daemons, LastBeat};
pub use environments::*;
pub use events::*;
pub use freezes::*;
pub use gates::*;
pub use locks::*;
pub use notifications::*;
pub use origins::*;
pub use outbox::*;
pub use outcomes::*;
pub use protection::*;
pub use requests::*;
pub use statuses::*;
pub use steps::*;
pub use teardowns::*;
pub use timestamp::Timestamp;
pub use types::*;

/// What went wrong in the store: the driver's own words, with its error
/// kept as the `source()` (`error_chain` and `{:#}` show the causes below).
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    #[error("the store is closed")]
    Closed,
    /// The driver's error, shared so that one failed batch can answer each
    /// of its deliveries.
    #[error("{0}")]
    Driver(#[source] Arc<dyn std::error::Error + Send + Sync>),
    /// Unavailable for a reason of ferry's own (no answer in time, a full
    /// disk seen by the probe).
    #[error("{0}")]
    Unavailable(String),
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Error {
        Error::Driver(Arc::new(e))
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Error {
        match e {
            sqlx::Error::PoolClosed => Error::Closed,
            e => Error::Driver(Arc::new(e)),
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// How long a claim on a running deployment lasts without renewal. A
/// replica that dies is found out this long after its last renewal, and
/// another settles what it ran; see [`RENEW_EVERY`].
pub const LEASE: Duration = Duration::from_secs(15);
/// How often a runner renews its leases and looks for expired ones: three
/// tries per lease, so one slow round trip loses nothing, and a dead
/// replica's deployments are settled within `LEASE + RENEW_EVERY`.
pub const RENEW_EVERY: Duration = Duration::from_secs(5);

/// Everything ferry keeps, one trait per noun: deployments and their
/// queue ([`Deployments`]), steps on hosts ([`Steps`]), the outbox of
/// statuses ([`Outbox`]), locks ([`Locks`]), cancel ([`Cancels`]),
/// teardowns ([`Teardowns`]), operators' actions ([`Actions`]) and the
/// deployments they ask GitHub for ([`Requests`]), freeze windows lifted
/// for an environment ([`Freezes`]) and deployments waiting for their
/// required checks ([`Gates`]), the daemons running ([`Daemons`]), and
/// the stream of state changes its consumers read ([`Events`]) and the
/// notifications made of it ([`Notifications`]), and the shas ferry may
/// deploy by itself ([`Candidates`]), the commands in pull request
/// comments ([`Commands`]), the GitHub Actions runs waiting at ferry's
/// deployment protection rule ([`ProtectionRuns`]), what deployments came
/// to for the delivery metrics ([`Outcomes`]), and what started each deployment
/// ([`Origins`]). Each
/// backend has one file per noun, named alike in `sqlite/` and `postgres/`,
/// and the conformance suite (`tests/store/`) is split the same way.
#[async_trait]
pub trait Store:
    Deployments
    + Steps
    + Outbox
    + Locks
    + Cancels
    + Teardowns
    + Actions
    + Requests
    + Freezes
    + Gates
    + Daemons
    + Events
    + Notifications
    + Candidates
    + Commands
    + Origins
    + ProtectionRuns
    + Outcomes
    + Send
    + Sync
    + 'static
{
    /// Whether several processes share this store (and leases matter
    /// between them).
    fn replicas(&self) -> bool;

    /// When this store was created (ms since the epoch).
    async fn created_at(&self) -> Result<Timestamp>;

    /// A cheap round trip: the database answers (for `/healthz`).
    async fn probe(&self) -> Result<()>;

    /// Closes every connection; later calls fail with [`Error::Closed`].
    async fn close(&self);
}

/// Deployments and their queue: intake, claims leased to one process with
/// fencing (each write names its [`Claim`]), the rescue of claims whose
/// lease ran out, final states, and reads. Each backend implements it in
/// its `deployments.rs`.
#[async_trait]
pub trait Deployments: Send + Sync {
    /// Records a delivery and its deployment, with its `queued` status, and
    /// returns once that is durable. Duplicates (by delivery or by
    /// deployment id) change nothing but the record of the delivery. With
    /// `supersede`, deployments of the same repository and environment
    /// still waiting become `inactive`, in the same transaction.
    async fn accept(
        &self,
        delivery: &DeliveryKey,
        deployment: &NewDeployment,
        queued: &NewStatus,
        supersede: bool,
    ) -> Result<Accepted>;

    /// Marks the oldest runnable queued deployment as running, leased to
    /// `owner` for [`LEASE`] under a new attempt, and returns it. Runnable:
    /// no other deployment of its repository and environment runs, and the
    /// environment is not locked.
    async fn claim_next(&self, owner: &Owner) -> Result<Option<Deployment>> {
        self.claim_next_except(owner, &[], None).await
    }

    /// As [`Deployments::claim_next`], with the environments in `held`
    /// (repository, environment) not runnable either: those a freeze
    /// window holds now. With `within`, only the environments it names
    /// are: those the caller looked at when it chose `held`, so that a
    /// deployment to an environment that arrived after the look (a frozen
    /// one too) waits for the next look instead of slipping through.
    async fn claim_next_except(
        &self,
        owner: &Owner,
        held: &[EnvKey],
        within: Option<&[EnvKey]>,
    ) -> Result<Option<Deployment>>;

    /// The environments with a deployment waiting, each once.
    async fn waiting_environments(&self) -> Result<Vec<EnvKey>>;

    /// Extends `owner`'s leases on `claims`; returns the claims it still
    /// holds. One missing was taken over: its process must stop it and
    /// write nothing more about it.
    async fn renew(&self, owner: &Owner, claims: &[Claim]) -> Result<Vec<Claim>>;

    /// Takes over running deployments whose lease ran out (their process
    /// died, froze or lost the database), or with `all` every running one
    /// (at the start of a process that uses the store alone). Each comes
    /// back leased to `owner` under a new attempt, with `owner` set to the
    /// process that had it; the old attempt's writes are refused from now on.
    async fn rescue(&self, owner: &Owner, all: bool) -> Result<Vec<Deployment>>;

    /// Queues a status that does not change the deployment's state, if
    /// `claim` still holds; false if it was taken over.
    async fn add_status(&self, claim: Claim, status: &NewStatus) -> Result<bool>;

    /// Gives a deployment its final state and queues the status announcing
    /// it, if `claim` still holds; false (and nothing written) if not.
    async fn finish(&self, claim: Claim, state: State, status: &NewStatus) -> Result<bool>;

    /// Deployments in `state`, oldest first.
    async fn by_state(&self, state: State) -> Result<Vec<Deployment>>;

    async fn get(&self, id: DeploymentId) -> Result<Option<Deployment>>;

    /// The environment's newest deployment that ended in `success` (lock
    /// tasks and teardowns aside): the version a rollback puts back.
    async fn last_success(&self, repository: &str, environment: &str)
    -> Result<Option<Deployment>>;

    /// The environment's deployments, newest first, at most `limit` (lock
    /// tasks and teardowns aside): where `ferry rollback` finds the last
    /// good version ([`last_good`]).
    async fn history(
        &self,
        repository: &str,
        environment: &str,
        limit: i64,
    ) -> Result<Vec<Deployment>>;

    /// The most recent deployments, newest first.
    async fn recent(&self, limit: i64) -> Result<Vec<Deployment>>;

    async fn count_by_state(&self, state: State) -> Result<i64>;
}

/// One delivery waiting for a backend's batching writer, and where its
/// answer goes once the batch holding it is durable.
pub struct IntakeJob {
    pub delivery: DeliveryKey,
    pub deployment: NewDeployment,
    pub queued: NewStatus,
    pub supersede: bool,
    pub reply: tokio::sync::oneshot::Sender<Result<Accepted>>,
}

/// The heads of running and just-finished deployments (`urgent`), then
/// those of the backlog, each once, at most `limit`: statuses GitHub's rate
/// limit would hold behind a burst's `queued` and `inactive` go first.
pub(crate) fn urgent_first(
    urgent: Vec<OutboxItem>,
    backlog: Vec<OutboxItem>,
    limit: i64,
) -> Vec<OutboxItem> {
    let mut seen = std::collections::HashSet::new();
    urgent
        .into_iter()
        .chain(backlog)
        .filter(|item| seen.insert(item.seq))
        .take(limit.max(0) as usize)
        .collect()
}

/// A migration's (or function's) checksum, as the migration tables keep it.
pub(crate) fn checksum(sql: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(sql.as_bytes()))
}

/// The store every part is handed.
pub type SharedStore = Arc<dyn Store>;

/// The backend the config names, opened: PostgreSQL with `database_url`,
/// else SQLite in `storage.dir`.
pub struct Opened {
    pub store: SharedStore,
    /// The database, where logs and wake-ups go through it too.
    pub database: Option<postgres::Database>,
}

pub async fn open(storage: &crate::config::Storage) -> anyhow::Result<Opened> {
    Ok(match &storage.backend {
        crate::config::Backend::Postgres { url } => {
            let pg = postgres::PgStore::connect(url.expose_str()).await?;
            Opened {
                database: Some(pg.database()),
                store: Arc::new(pg),
            }
        }
        crate::config::Backend::Sqlite => Opened {
            store: Arc::new(sqlite::SqliteStore::open(&storage.dir).await?),
            database: None,
        },
    })
}

/// What operators did through the command line, written to the running
/// ferry's log once ([`OperatorAction`]). Each backend implements it in
/// its `actions.rs`.
#[async_trait]
pub trait Actions: Send + Sync {
    async fn record_action(&self, action: &OperatorAction) -> Result<()>;

    /// Actions no ferry has written to its log yet, oldest first, marked as
    /// written: with replicas, each goes to one replica.
    async fn take_actions(&self, limit: i64) -> Result<Vec<OperatorAction>>;

    /// The actions on one deployment, oldest first.
    async fn actions_on(&self, id: DeploymentId) -> Result<Vec<OperatorAction>>;
}
