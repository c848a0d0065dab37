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
mod holds;
mod intake;
mod listen;
mod migrate;
mod outbox;
mod steer;
mod teardown;

pub use listen::{WORK_CHANNEL, listen};

use super::{
    Accepted, CancelOutcome, Cancellation, Claim, DeliveryKey, Deployment, DeploymentId, EnvLock,
    Error, Hold, LEASE, LockTask, NewDeployment, NewStatus, OperatorAction, OutboxItem, Owner,
    PostOutcome, RemoteStep, Result, State, StatusState, Store, now_ms,
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
     started_at, finished_at, attempt, owner, cancelled_by, cancel_reason, teardown_of";

#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    /// Deliveries for the batching intake task.
    intake: tokio::sync::mpsc::Sender<intake::Intake>,
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
        let options = options.application_name("ferry");
        let pool = PgPoolOptions::new()
            .max_connections(16)
            // GitHub gives up on a delivery after 10 s and the SPEC wants a
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

    pub fn pool(&self) -> PgPool {
        self.pool.clone()
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
    now: i64,
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
    async fn accept(
        &self,
        delivery: &DeliveryKey,
        deployment: &NewDeployment,
        queued: &NewStatus,
        supersede: bool,
    ) -> Result<Accepted> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let request = intake::Intake {
            delivery: delivery.clone(),
            deployment: deployment.clone(),
            queued: queued.clone(),
            supersede,
            reply,
        };
        self.intake.send(request).await.map_err(|_| Error::Closed)?;
        answer.await.map_err(|_| Error::Closed)?
    }

    async fn claim_next(&self, owner: &Owner) -> Result<Option<Deployment>> {
        // Runners ask after every delivery; in a burst the answer is mostly
        // "nothing", and a read finds that out without locking the row a
        // delivery is superseding.
        let runnable: Option<i32> = sqlx::query_scalar(
            "SELECT 1 FROM deployments d WHERE d.state = 'queued'
               AND NOT EXISTS (SELECT 1 FROM deployments r WHERE r.state = 'running'
                               AND r.repository = d.repository AND r.environment = d.environment)
               AND NOT EXISTS (SELECT 1 FROM env_locks l
                               WHERE l.repository = d.repository AND l.environment = d.environment)
               AND NOT EXISTS (SELECT 1 FROM remote_steps s JOIN deployments h ON h.id = s.deployment_id
                               WHERE h.repository = d.repository AND h.environment = d.environment)
             LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        if runnable.is_none() {
            return Ok(None);
        }
        // The oldest waiting deployment of each environment is the only
        // candidate there, so a replica that skips a row another is
        // claiming never runs a newer one out of turn.
        let sql = format!(
            "UPDATE deployments SET state = 'running', started_at = $1,
                 attempt = attempt + 1, owner = $2, lease_until = {DB_NOW} + $3
             WHERE id = (
                 SELECT d.id FROM deployments d
                 WHERE d.state = 'queued'
                   AND d.seq = (SELECT MIN(q.seq) FROM deployments q WHERE q.state = 'queued'
                                AND q.repository = d.repository AND q.environment = d.environment)
                   AND NOT EXISTS (SELECT 1 FROM deployments r WHERE r.state = 'running'
                                   AND r.repository = d.repository AND r.environment = d.environment)
                   AND NOT EXISTS (SELECT 1 FROM env_locks l
                                   WHERE l.repository = d.repository AND l.environment = d.environment)
                   AND NOT EXISTS (SELECT 1 FROM remote_steps s JOIN deployments h ON h.id = s.deployment_id
                                   WHERE h.repository = d.repository AND h.environment = d.environment)
                 ORDER BY d.seq LIMIT 1
                 FOR UPDATE SKIP LOCKED)
             RETURNING {DEPLOYMENT_COLUMNS}"
        );
        // Two replicas claiming in one environment at once: the unique
        // index refuses the second, which then looks again.
        for _ in 0..3 {
            match sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                .bind(now_ms())
                .bind(&owner.0)
                .bind(lease_ms())
                .fetch_optional(&self.pool)
                .await
            {
                Ok(row) => return Ok(row.as_ref().map(deployment_from_row).transpose()?),
                Err(e) if is_unique_violation(&e) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(None)
    }

    async fn renew(&self, owner: &Owner, claims: &[Claim]) -> Result<Vec<Claim>> {
        if claims.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = claims.iter().map(|c| c.id.0).collect();
        let attempts: Vec<i32> = claims.iter().map(|c| c.attempt as i32).collect();
        let held: Vec<(i64, i32)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE deployments d SET lease_until = {DB_NOW} + $1
             FROM UNNEST($2::bigint[], $3::int[]) AS c (id, attempt)
             WHERE d.id = c.id AND d.attempt = c.attempt AND d.owner = $4
               AND d.state = 'running'
             RETURNING d.id, d.attempt"
        )))
        .bind(lease_ms())
        .bind(&ids)
        .bind(&attempts)
        .bind(&owner.0)
        .fetch_all(&self.pool)
        .await?;
        Ok(held
            .into_iter()
            .map(|(id, attempt)| Claim {
                id: DeploymentId(id),
                attempt: i64::from(attempt),
            })
            .collect())
    }

    async fn rescue(&self, owner: &Owner, all: bool) -> Result<Vec<Deployment>> {
        // SKIP LOCKED: two replicas rescuing at once split the work; the
        // old owner comes back from the row as it was before the update.
        let sql = format!(
            "WITH expired AS (
                 SELECT id, owner FROM deployments
                 WHERE state = 'running' AND ($1 OR lease_until IS NULL OR lease_until < {DB_NOW})
                 ORDER BY seq FOR UPDATE SKIP LOCKED)
             UPDATE deployments d SET attempt = d.attempt + 1, owner = $2,
                 lease_until = {DB_NOW} + $3
             FROM expired e WHERE d.id = e.id
             RETURNING d.*, e.owner AS previous_owner"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(all)
            .bind(&owner.0)
            .bind(lease_ms())
            .fetch_all(&self.pool)
            .await?;
        let mut taken = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut d = deployment_from_row(row)?;
            d.owner = row.try_get("previous_owner")?;
            taken.push(d);
        }
        taken.sort_by_key(|d| d.id);
        Ok(taken)
    }

    fn replicas(&self) -> bool {
        true
    }

    async fn add_status(&self, claim: Claim, status: &NewStatus) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        // FOR SHARE: a rescue cannot take the deployment over between this
        // check and the insert.
        let holds: Option<i32> = sqlx::query_scalar(
            "SELECT 1 FROM deployments WHERE id = $1 AND attempt = $2 AND state = 'running'
             FOR SHARE",
        )
        .bind(claim.id.0)
        .bind(claim.attempt as i32)
        .fetch_optional(&mut *tx)
        .await?;
        if holds.is_none() {
            return Ok(false);
        }
        insert_status(&mut tx, claim.id, status, now_ms()).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn finish(&self, claim: Claim, state: State, status: &NewStatus) -> Result<bool> {
        debug_assert!(state.is_final());
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let changed = sqlx::query(
            "UPDATE deployments SET state = $1, description = $2, finished_at = $3,
                 lease_until = NULL
             WHERE id = $4 AND attempt = $5 AND state = 'running'",
        )
        .bind(state.as_str())
        .bind(&status.description)
        .bind(now)
        .bind(claim.id.0)
        .bind(claim.attempt as i32)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 0 {
            return Ok(false);
        }
        insert_status(&mut tx, claim.id, status, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn by_state(&self, state: State) -> Result<Vec<Deployment>> {
        let sql =
            format!("SELECT {DEPLOYMENT_COLUMNS} FROM deployments WHERE state = $1 ORDER BY seq");
        self.deployments(sqlx::query(sqlx::AssertSqlSafe(sql)).bind(state.as_str()))
            .await
    }

    async fn get(&self, id: DeploymentId) -> Result<Option<Deployment>> {
        let sql = format!("SELECT {DEPLOYMENT_COLUMNS} FROM deployments WHERE id = $1");
        Ok(sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(deployment_from_row)
            .transpose()?)
    }

    async fn recent(&self, limit: i64) -> Result<Vec<Deployment>> {
        let sql =
            format!("SELECT {DEPLOYMENT_COLUMNS} FROM deployments ORDER BY seq DESC LIMIT $1");
        self.deployments(sqlx::query(sqlx::AssertSqlSafe(sql)).bind(limit))
            .await
    }

    async fn count_by_state(&self, state: State) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM deployments WHERE state = $1")
                .bind(state.as_str())
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn remember_step(
        &self,
        id: DeploymentId,
        host: &str,
        pgid: u32,
        boot_id: &str,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO remote_steps (deployment_id, host, pgid, boot_id) VALUES ($1, $2, $3, $4)
             ON CONFLICT (deployment_id, host) DO UPDATE
             SET pgid = excluded.pgid, boot_id = excluded.boot_id",
        )
        .bind(id.0)
        .bind(host)
        .bind(i64::from(pgid))
        .bind(boot_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn forget_step(&self, id: DeploymentId, host: &str) -> Result<()> {
        sqlx::query("DELETE FROM remote_steps WHERE deployment_id = $1 AND host = $2")
            .bind(id.0)
            .bind(host)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn remote_steps(&self, id: DeploymentId) -> Result<Vec<RemoteStep>> {
        let rows: Vec<(String, i64, String)> = sqlx::query_as(
            "SELECT host, pgid, boot_id FROM remote_steps WHERE deployment_id = $1 ORDER BY host",
        )
        .bind(id.0)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(host, pgid, boot_id)| RemoteStep {
                host,
                pgid,
                boot_id,
            })
            .collect())
    }

    /// Only the replica holding the outbox's lease gets any: one sends at
    /// a time (see `outbox`).
    async fn due_statuses(&self, now: i64, limit: i64) -> Result<Vec<OutboxItem>> {
        if !self.outbox.held(&self.pool).await? {
            return Ok(Vec::new());
        }
        // Heads of running and just-finished deployments first (few,
        // found through their own index), then the backlog in order. The
        // head test is a correlated MIN, not NOT EXISTS: PostgreSQL turned
        // that into a hash anti-join over every pending status (29 ms a
        // look with a burst's backlog), where this walks the pending
        // statuses in order and stops at `limit`.
        const ITEM: &str = "SELECT o.seq, o.deployment_id, o.state, o.description, o.log_url,
                o.environment_url, o.auto_inactive, o.attempts, d.repository, d.installation_id,
                (o.state = 'queued' AND d.state = 'inactive') AS superseded,
                o.tried_at IS NOT NULL AS in_doubt
             FROM status_outbox o JOIN deployments d ON d.id = o.deployment_id";
        let urgent = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{ITEM} WHERE o.next_attempt_at <= $1 AND o.seq IN (
                 SELECT (SELECT MIN(p.seq) FROM status_outbox p
                         WHERE p.deployment_id = u.deployment_id
                           AND p.sent_at IS NULL AND p.failed_at IS NULL)
                 FROM status_outbox u
                 WHERE u.sent_at IS NULL AND u.failed_at IS NULL
                   AND u.state NOT IN ('queued', 'inactive'))
             ORDER BY o.seq LIMIT $2"
        )))
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let backlog = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{ITEM} WHERE o.sent_at IS NULL AND o.failed_at IS NULL AND o.next_attempt_at <= $1
               AND o.seq = (
                   SELECT MIN(p.seq) FROM status_outbox p
                   WHERE p.deployment_id = o.deployment_id
                     AND p.sent_at IS NULL AND p.failed_at IS NULL)
             ORDER BY o.seq LIMIT $2"
        )))
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let items = |rows: Vec<PgRow>| -> Result<Vec<OutboxItem>> {
            rows.iter().map(outbox_item).collect()
        };
        Ok(super::urgent_first(items(urgent)?, items(backlog)?, limit))
    }

    async fn next_status_due(&self) -> Result<Option<i64>> {
        if !self.outbox.held(&self.pool).await? {
            return Ok(None);
        }
        Ok(sqlx::query_scalar(
            "SELECT MIN(next_attempt_at) FROM status_outbox
             WHERE sent_at IS NULL AND failed_at IS NULL",
        )
        .fetch_one(&self.pool)
        .await?)
    }

    async fn pending_statuses(&self) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM status_outbox WHERE sent_at IS NULL AND failed_at IS NULL",
        )
        .fetch_one(&self.pool)
        .await?)
    }

    async fn record_posts(&self, posts: &[(i64, PostOutcome)]) -> Result<()> {
        if posts.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        for (seq, outcome) in posts {
            let query = match outcome {
                PostOutcome::Sent | PostOutcome::Confirmed => sqlx::query(
                    "UPDATE status_outbox SET sent_at = $1, attempts = attempts + 1 WHERE seq = $2",
                )
                .bind(now)
                .bind(seq),
                PostOutcome::Trying => {
                    sqlx::query("UPDATE status_outbox SET tried_at = $1 WHERE seq = $2")
                        .bind(now)
                        .bind(seq)
                }
                PostOutcome::Unanswered { at, error } => sqlx::query(
                    "UPDATE status_outbox SET next_attempt_at = $1, attempts = attempts + 1, \
                     last_error = $2 WHERE seq = $3",
                )
                .bind(at)
                .bind(error)
                .bind(seq),
                PostOutcome::Coalesced => sqlx::query(
                    "UPDATE status_outbox SET failed_at = $1, last_error = $2 WHERE seq = $3",
                )
                .bind(now)
                .bind(crate::store::COALESCED)
                .bind(seq),
                PostOutcome::RetryAt { at, error } => sqlx::query(
                    "UPDATE status_outbox SET next_attempt_at = $1, attempts = attempts + 1, \
                     last_error = $2, tried_at = NULL WHERE seq = $3",
                )
                .bind(at)
                .bind(error)
                .bind(seq),
                PostOutcome::Failed { error } => sqlx::query(
                    "UPDATE status_outbox SET failed_at = $1, attempts = attempts + 1, \
                     last_error = $2 WHERE seq = $3",
                )
                .bind(now)
                .bind(error)
                .bind(seq),
            };
            query.execute(&mut *tx).await?;
        }
        Ok(tx.commit().await?)
    }

    async fn created_at(&self) -> Result<i64> {
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
