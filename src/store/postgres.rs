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

use super::{
    Accepted, Claim, DeliveryKey, Deployment, DeploymentId, Error, LEASE, NewDeployment, NewStatus,
    OutboxItem, Owner, PostOutcome, RemoteStep, Result, State, StatusState, Store, now_ms,
};

/// Leases run on the database's clock, which every replica shares, in
/// unix milliseconds like the other times.
const DB_NOW: &str = "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)";

/// How long a replica holds a status it is sending: past the request's
/// timeout (15 s, in `github`), and short enough that a replica that dies
/// mid-post holds up its deployments' statuses well inside the 30 seconds
/// in which another settles them.
const OUTBOX_CLAIM: Duration = Duration::from_secs(20);

fn lease_ms() -> i64 {
    LEASE.as_millis() as i64
}

const MIGRATIONS: &[&str] = &[include_str!("../../migrations/postgres/0001_init.sql")];

/// `pg_advisory_xact_lock` key under which migrations run: replicas that
/// start together migrate once, one after the other.
const MIGRATION_LOCK: i64 = 0x6665_7272_795f_6d67; // "ferry_mg"

const DEPLOYMENT_COLUMNS: &str = "id, repository, environment, task, git_ref, sha, payload, \
     creator, production, transient, installation_id, state, description, created_at, \
     started_at, finished_at, attempt, owner";

#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
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
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .context("cannot connect to PostgreSQL (storage.database_url)")?;
        migrate(&pool)
            .await
            .context("cannot migrate the PostgreSQL database")?;
        Ok(PgStore { pool })
    }

    pub fn pool(&self) -> PgPool {
        self.pool.clone()
    }

    async fn deployments(&self, sql: String, bind: Bind<'_>) -> Result<Vec<Deployment>> {
        let query = sqlx::query(sqlx::AssertSqlSafe(sql));
        let query = match bind {
            Bind::State(s) => query.bind(s.as_str()),
            Bind::Limit(n) => query.bind(n),
        };
        Ok(query
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(deployment_from_row)
            .collect::<std::result::Result<_, _>>()?)
    }
}

enum Bind<'a> {
    State(&'a State),
    Limit(i64),
}

async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *tx)
        .await?;
    // Not CREATE ... IF NOT EXISTS: its notice would reach the journal at
    // every start.
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('ferry_migrations') IS NOT NULL")
        .fetch_one(&mut *tx)
        .await?;
    if !exists {
        sqlx::raw_sql(
            "CREATE TABLE ferry_migrations (
                 version    INTEGER PRIMARY KEY,
                 applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        )
        .execute(&mut *tx)
        .await?;
    }
    let version: i32 = sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM ferry_migrations")
        .fetch_one(&mut *tx)
        .await?;
    let known = MIGRATIONS.len() as i32;
    if version > known {
        anyhow::bail!(
            "the database is at schema version {version}, newer than this ferry knows \
             ({known}): every replica must run the same or a newer ferry"
        );
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        sqlx::raw_sql(sqlx::AssertSqlSafe(*sql))
            .execute(&mut *tx)
            .await
            .with_context(|| format!("migration {}", i + 1))?;
        sqlx::query("INSERT INTO ferry_migrations (version) VALUES ($1)")
            .bind(i as i32 + 1)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

async fn insert_status(
    tx: &mut Transaction<'static, Postgres>,
    id: DeploymentId,
    s: &NewStatus,
    now: i64,
) -> std::result::Result<(), sqlx::Error> {
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

/// The channel the database announces new work on (see the migration).
pub const WORK_CHANNEL: &str = "ferry_work";

/// Listens on `channels` for as long as it runs, calling `on` with each
/// notification's channel and payload. A lost connection is opened again;
/// notifications sent meanwhile are lost, so `on` is then called with an
/// empty channel: look at everything.
pub async fn listen(pool: PgPool, channels: Vec<&'static str>, on: impl Fn(&str, &str)) {
    let mut failing = false;
    loop {
        let listener = async {
            let mut l = sqlx::postgres::PgListener::connect_with(&pool).await?;
            l.listen_all(channels.iter().copied()).await?;
            Ok::<_, sqlx::Error>(l)
        };
        let mut listener = match listener.await {
            Ok(l) => l,
            Err(e) => {
                if !failing {
                    tracing::warn!(
                        "cannot listen for other replicas' work, polling meanwhile: {e}"
                    );
                    failing = true;
                }
                tokio::time::sleep(Duration::from_secs(5)).await;
                continue;
            }
        };
        if failing {
            tracing::info!("listening for other replicas' work again");
            failing = false;
        }
        on("", "");
        loop {
            match listener.try_recv().await {
                Ok(Some(n)) => on(n.channel(), n.payload()),
                // The connection dropped; the next call reconnects.
                Ok(None) => on("", ""),
                Err(e) => {
                    tracing::warn!(
                        "lost the connection that listens for other replicas' work: {e}"
                    );
                    break;
                }
            }
        }
    }
}

#[async_trait]
impl Store for PgStore {
    async fn accept(
        &self,
        delivery: &DeliveryKey,
        d: &NewDeployment,
        queued: &NewStatus,
        supersede: bool,
    ) -> Result<Accepted> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        // A delivery without an id is told apart by its deployment only.
        if !delivery.delivery_id.is_empty() {
            let new = sqlx::query(
                "INSERT INTO deliveries (hook_id, delivery_id, received_at, deployment_id) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            )
            .bind(&delivery.hook_id)
            .bind(&delivery.delivery_id)
            .bind(now)
            .bind(d.id.0)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if !new {
                return Ok(Accepted::DuplicateDelivery);
            }
        }
        // Deliveries to one environment take turns, so that each sees the
        // one before it when superseding, whichever replica took it.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1 || '\n' || $2, 0))")
            .bind(&d.repository)
            .bind(&d.environment)
            .execute(&mut *tx)
            .await?;
        let seq: Option<i64> = sqlx::query_scalar(
            "INSERT INTO deployments (id, repository, environment, task, git_ref, sha, payload, \
             creator, production, transient, installation_id, state, description, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'queued', $12, $13) \
             ON CONFLICT (id) DO NOTHING RETURNING seq",
        )
        .bind(d.id.0)
        .bind(&d.repository)
        .bind(&d.environment)
        .bind(&d.task)
        .bind(&d.git_ref)
        .bind(&d.sha)
        .bind(&d.payload)
        .bind(&d.creator)
        .bind(d.production)
        .bind(d.transient)
        .bind(d.installation_id)
        .bind(&queued.description)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(seq) = seq else {
            tx.commit().await?;
            return Ok(Accepted::DuplicateDeployment);
        };
        insert_status(&mut tx, d.id, queued, now).await?;
        let mut superseded = Vec::new();
        if supersede {
            let gone: Vec<(i64, String)> = sqlx::query_as(
                "UPDATE deployments SET state = 'inactive', finished_at = $1, \
                 description = 'Superseded by deployment ' || $2::bigint \
                 WHERE repository = $3 AND environment = $4 AND state = 'queued' AND seq < $5 \
                 RETURNING id, description",
            )
            .bind(now)
            .bind(d.id.0)
            .bind(&d.repository)
            .bind(&d.environment)
            .bind(seq)
            .fetch_all(&mut *tx)
            .await?;
            for (id, description) in gone {
                let inactive = NewStatus::new(StatusState::Inactive, description);
                insert_status(&mut tx, DeploymentId(id), &inactive, now).await?;
                superseded.push(DeploymentId(id));
            }
            superseded.sort();
        }
        tx.commit().await?;
        Ok(Accepted::New { superseded })
    }

    async fn claim_next(&self, owner: &Owner) -> Result<Option<Deployment>> {
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
             RETURNING {cols}, e.owner AS previous_owner",
            cols = DEPLOYMENT_COLUMNS
                .split(", ")
                .map(|c| format!("d.{}", c.trim()))
                .collect::<Vec<_>>()
                .join(", ")
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
        self.deployments(sql, Bind::State(&state)).await
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
        self.deployments(sql, Bind::Limit(limit)).await
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

    /// Claims the heads it returns for [`OUTBOX_CLAIM`]: another replica
    /// skips them, and the deployment's next status waits behind them.
    async fn due_statuses(&self, now: i64, limit: i64) -> Result<Vec<OutboxItem>> {
        let mut rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "WITH heads AS (
                 SELECT o.seq FROM status_outbox o
                 WHERE o.sent_at IS NULL AND o.failed_at IS NULL AND o.next_attempt_at <= $1
                   AND (o.claimed_until IS NULL OR o.claimed_until < {DB_NOW})
                   AND NOT EXISTS (
                       SELECT 1 FROM status_outbox p
                       WHERE p.deployment_id = o.deployment_id AND p.seq < o.seq
                         AND p.sent_at IS NULL AND p.failed_at IS NULL)
                 ORDER BY o.seq LIMIT $2
                 FOR UPDATE SKIP LOCKED)
             UPDATE status_outbox o SET claimed_until = {DB_NOW} + $3
             FROM heads h, deployments d
             WHERE o.seq = h.seq AND d.id = o.deployment_id
             RETURNING o.seq, o.deployment_id, o.state, o.description, o.log_url,
                       o.environment_url, o.auto_inactive, o.attempts, d.repository,
                       d.installation_id"
        )))
        .bind(now)
        .bind(limit)
        .bind(OUTBOX_CLAIM.as_millis() as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.sort_by_key(|r| r.try_get::<i64, _>("seq").unwrap_or_default());
        rows.iter()
            .map(|r| {
                let state: String = r.try_get("state")?;
                let attempts: i32 = r.try_get("attempts")?;
                Ok(OutboxItem {
                    seq: r.try_get("seq")?,
                    deployment_id: DeploymentId(r.try_get("deployment_id")?),
                    repository: r.try_get("repository")?,
                    installation_id: r.try_get("installation_id")?,
                    attempts: i64::from(attempts),
                    status: NewStatus {
                        state: StatusState::parse(&state).ok_or_else(|| {
                            sqlx::Error::ColumnDecode {
                                index: "state".into(),
                                source: format!("unknown status {state:?}").into(),
                            }
                        })?,
                        description: r.try_get("description")?,
                        log_url: r.try_get("log_url")?,
                        environment_url: r.try_get("environment_url")?,
                        auto_inactive: r.try_get("auto_inactive")?,
                    },
                })
            })
            .collect::<std::result::Result<_, sqlx::Error>>()
            .map_err(Error::from)
    }

    async fn next_status_due(&self) -> Result<Option<i64>> {
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
                PostOutcome::Sent => sqlx::query(
                    "UPDATE status_outbox SET sent_at = $1, attempts = attempts + 1,
                         claimed_until = NULL WHERE seq = $2",
                )
                .bind(now)
                .bind(seq),
                PostOutcome::RetryAt { at, error } => sqlx::query(
                    "UPDATE status_outbox SET next_attempt_at = $1, attempts = attempts + 1, \
                     last_error = $2, claimed_until = NULL WHERE seq = $3",
                )
                .bind(at)
                .bind(error)
                .bind(seq),
                PostOutcome::Failed { error } => sqlx::query(
                    "UPDATE status_outbox SET failed_at = $1, attempts = attempts + 1, \
                     last_error = $2, claimed_until = NULL WHERE seq = $3",
                )
                .bind(now)
                .bind(error)
                .bind(seq),
            };
            query.execute(&mut *tx).await?;
        }
        Ok(tx.commit().await?)
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}
