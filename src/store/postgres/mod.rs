//! The PostgreSQL backend: replicas sharing one database (`database_url`).
//!
//! Nothing here relies on one process's memory. Duplicates are caught by
//! primary keys; one running deployment per environment is a partial
//! unique index; a claim takes the oldest waiting deployment of an idle
//! environment with `FOR UPDATE SKIP LOCKED`; intake serializes supersede
//! per environment with a transaction-scoped advisory lock (a session lock
//! would leak across pooled connections, and through PgBouncer).

use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, Row, Transaction};

mod actions;
mod cancels;
mod candidates;
mod commands;
mod daemons;
pub mod deployments;
mod events;
mod freezes;
mod gates;
mod intake;
mod listen;
mod locks;
mod logs;
mod looks;
mod migrate;
mod notifications;
mod origins;
pub mod outbox;
mod outcomes;
mod protection;
mod requests;
mod steps;
mod teardowns;

pub use listen::WORK_CHANNEL;
pub use logs::{
    Buffer as LogBuffer, CHANNEL as LOG_CHANNEL, FLUSH_BYTES, FLUSH_EVERY, Flush as LogFlush,
};

/// The database behind a [`PgStore`], for the parts that keep more than
/// the store's nouns there: deployment logs and the log-link key (`logs`),
/// and other replicas' announcements (`daemon`). Opaque: nothing outside
/// `store/` touches the pool.
#[derive(Clone)]
pub struct Database(PgPool);

impl Database {
    /// The log-link key every replica shares, made on first use.
    pub async fn log_key(&self) -> anyhow::Result<Vec<u8>> {
        logs::key(&self.0).await
    }

    /// A deployment's log bytes from `offset` on; None when it has none.
    pub async fn log_from(
        &self,
        id: DeploymentId,
        offset: u64,
    ) -> std::io::Result<Option<Vec<u8>>> {
        logs::bytes_from(&self.0, id, offset).await
    }

    /// How long a deployment's log is.
    pub async fn log_length(&self, id: DeploymentId) -> std::io::Result<u64> {
        logs::length(&self.0, id).await
    }

    /// Deletes logs of deployments that ended before `cutoff`; how many.
    pub async fn prune_logs(&self, cutoff: Timestamp) -> std::io::Result<usize> {
        logs::prune(&self.0, cutoff).await
    }

    /// A writer's buffer for a deployment's log, flushed in chunks.
    pub fn log_buffer(
        &self,
        id: DeploymentId,
        changed: tokio::sync::broadcast::Sender<DeploymentId>,
    ) -> LogBuffer {
        LogBuffer::new(self.0.clone(), id, changed)
    }

    /// Listens for other replicas' announcements on `channels` while it
    /// runs (see [`listen::listen`]).
    pub async fn listen(&self, channels: Vec<&'static str>, on: impl Fn(&str, &str)) {
        listen::listen(self.0.clone(), channels, on).await
    }
}

use super::{
    Accepted, CancelOutcome, Cancellation, Claim, DeliveryKey, Deployment, DeploymentId, EnvLock,
    Error, Hold, LEASE, LockTask, NewDeployment, NewStatus, OperatorAction, OutboxItem, Owner,
    PostOutcome, RemoteStep, Result, State, StatusState, Store, Timestamp,
};

/// Leases run on the database's clock, which every replica shares, in
/// unix milliseconds like the other times.
const DB_NOW: &str = "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)";

/// How long a query waits for a pooled connection (see `connect`).
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_millis(1500);

fn lease_ms() -> i64 {
    LEASE.as_millis() as i64
}

const DEPLOYMENT_COLUMNS: &str = "id, repository, environment, task, git_ref, sha, payload, \
     creator, production, transient, installation_id, state, description, created_at, \
     started_at, finished_at, attempt, owner, cancelled_by, cancel_reason, teardown_of, checks_gate";

#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    /// Deliveries for the batching intake task.
    intake: tokio::sync::mpsc::Sender<intake::IntakeJob>,
    outbox: std::sync::Arc<outbox::OutboxLease>,
}

fn deployment_from_row(row: &PgRow) -> std::result::Result<Deployment, sqlx::Error> {
    let state: String = row.try_get("state")?;
    Ok(Deployment {
        spec: NewDeployment {
            id: DeploymentId(row.try_get("id")?),
            repository: row.try_get("repository")?,
            environment: row.try_get("environment")?,
            task: row.try_get("task")?,
            git_ref: row.try_get("git_ref")?,
            sha: row.try_get("sha")?,
            payload: row.try_get("payload")?,
            creator: row.try_get("creator")?,
            production: row.try_get("production")?,
            transient: row.try_get("transient")?,
            installation_id: row.try_get("installation_id")?,
            gated: row.try_get("checks_gate")?,
        },
        state: State::parse(&state).ok_or_else(|| sqlx::Error::ColumnDecode {
            index: "state".into(),
            source: format!("unknown state {state:?}").into(),
        })?,
        description: row.try_get("description")?,
        created_at: row.try_get("created_at")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
        attempt: i64::from(row.try_get::<i32, _>("attempt")?),
        owner: row.try_get("owner")?,
        cancelled: match row.try_get::<Option<String>, _>("cancelled_by")? {
            None => None,
            Some(by) => Some(Cancellation {
                by,
                reason: row
                    .try_get::<Option<String>, _>("cancel_reason")?
                    .unwrap_or_default(),
                // Only the runner asks (cancel_requests reads it).
                rollback: false,
            }),
        },
        teardown_of: row
            .try_get::<Option<i64>, _>("teardown_of")?
            .map(DeploymentId),
    })
}

/// An outbox row as the outbox is handed it.
fn outbox_item(r: &PgRow) -> Result<OutboxItem> {
    let state: String = r.try_get("state")?;
    let attempts: i32 = r.try_get("attempts")?;
    Ok(OutboxItem {
        superseded: r.try_get("superseded")?,
        in_doubt: r.try_get("in_doubt")?,
        seq: r.try_get("seq")?,
        deployment_id: DeploymentId(r.try_get("deployment_id")?),
        repository: r.try_get("repository")?,
        installation_id: r.try_get("installation_id")?,
        attempts: i64::from(attempts),
        status: NewStatus {
            state: StatusState::parse(&state).ok_or_else(|| sqlx::Error::ColumnDecode {
                index: "state".into(),
                source: format!("unknown status {state:?}").into(),
            })?,
            description: r.try_get("description")?,
            log_url: r.try_get("log_url")?,
            environment_url: r.try_get("environment_url")?,
            auto_inactive: r.try_get("auto_inactive")?,
        },
    })
}

fn lock_from_row(row: &PgRow) -> std::result::Result<EnvLock, sqlx::Error> {
    Ok(EnvLock {
        repository: row.try_get("repository")?,
        environment: row.try_get("environment")?,
        holder: row.try_get("holder")?,
        reason: row.try_get("reason")?,
        since: row.try_get("since")?,
        until: row.try_get("until_at")?,
    })
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.code().as_deref() == Some("23505"))
}

impl PgStore {
    /// Connects and brings the schema up to date.
    pub async fn connect(url: &str) -> anyhow::Result<PgStore> {
        let options: PgConnectOptions = url
            .parse()
            .context("storage.database_url is not a PostgreSQL URL")?;
        // A replica frozen in the middle of a transaction (SIGSTOP, a VM
        // paused) would hold its row and advisory locks until it woke, and
        // the replica settling its deployments (writing their logs, ending
        // them) would wait as long. ferry's transactions never wait on
        // anything outside the database, so one idle this long is such a
        // replica: the server ends it and its locks go.
        let options = options
            .application_name("ferry")
            .options([("idle_in_transaction_session_timeout", "10s")]);
        let pool = PgPoolOptions::new()
            .max_connections(16)
            // GitHub gives up on a delivery after 10 s and docs/reference.md wants a
            // 503 within 2: with the database gone, a query must fail fast
            // rather than wait for a connection that will not come.
            .acquire_timeout(ACQUIRE_TIMEOUT)
            // A ping before every query doubled intake's round trips. A
            // connection the server dropped fails one query instead (as
            // during any outage) and is then replaced.
            .test_before_acquire(false)
            .connect_with(options)
            .await
            .context("cannot connect to PostgreSQL (storage.database_url)")?;
        migrate::migrate(&pool)
            .await
            .context("cannot migrate the PostgreSQL database")?;
        let (tx, queue) = tokio::sync::mpsc::channel(4 * intake::BATCH);
        tokio::spawn(intake::run(pool.clone(), queue));
        // Each handle is a replica of its own, even two in one process.
        static HANDLES: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = HANDLES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut owner = Owner::this_process();
        if n > 0 {
            owner.0 = format!("{} #{n}", owner.0);
        }
        Ok(PgStore {
            pool,
            intake: tx,
            outbox: std::sync::Arc::new(outbox::OutboxLease::new(owner)),
        })
    }

    pub fn database(&self) -> Database {
        Database(self.pool.clone())
    }

    async fn deployments(
        &self,
        query: sqlx::query::Query<'_, Postgres, sqlx::postgres::PgArguments>,
    ) -> Result<Vec<Deployment>> {
        Ok(query
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(deployment_from_row)
            .collect::<std::result::Result<_, _>>()?)
    }
}

async fn insert_status(
    tx: &mut Transaction<'static, Postgres>,
    id: DeploymentId,
    s: &NewStatus,
    now: Timestamp,
) -> std::result::Result<(), sqlx::Error> {
    if id.is_teardown() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO status_outbox (deployment_id, state, description, log_url, \
         environment_url, auto_inactive, created_at, next_attempt_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
    )
    .bind(id.0)
    .bind(s.state.as_str())
    .bind(&s.description)
    .bind(&s.log_url)
    .bind(&s.environment_url)
    .bind(s.auto_inactive)
    .bind(now)
    .execute(&mut **tx)
    .await
    .map(drop)
}

/// Connects once and asks the server's version, for `check-config`: where
/// the database is and that it answers, without changing anything. The
/// password never appears in what it returns.
pub async fn ping(url: &str) -> anyhow::Result<String> {
    use sqlx::ConnectOptions;
    let options: PgConnectOptions = url.parse().context("not a PostgreSQL URL")?;
    let place = format!(
        "{}@{}:{}/{}",
        options.get_username(),
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or(options.get_username())
    );
    let mut conn = tokio::time::timeout(Duration::from_secs(10), options.connect())
        .await
        .map_err(|_| anyhow::anyhow!("no answer from {place} within 10s"))?
        .with_context(|| format!("cannot connect to {place}"))?;
    let version: String = sqlx::query_scalar("SHOW server_version")
        .fetch_one(&mut conn)
        .await?;
    let major: u32 = version
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    if major < 13 {
        anyhow::bail!("{place} runs PostgreSQL {version}; ferry needs 13 or later");
    }
    Ok(format!("{place} (server {version})"))
}

#[async_trait]
impl Store for PgStore {
    fn replicas(&self) -> bool {
        true
    }

    async fn created_at(&self) -> Result<Timestamp> {
        Ok(sqlx::query_scalar("SELECT created_at FROM store_info")
            .fetch_one(&self.pool)
            .await?)
    }

    async fn probe(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn close(&self) {
        self.outbox.release(&self.pool).await;
        self.pool.close().await;
    }
}
