//! The durable queue: deployments, deliveries seen, and the status outbox.
//!
//! SQLite in WAL mode with `synchronous = FULL`: a transaction that returned
//! has reached the disk, so a `202` survives `kill -9` and power loss. Every
//! write is one `BEGIN IMMEDIATE` transaction, so writers queue on SQLite's
//! lock instead of failing half-way with `SQLITE_BUSY` on upgrade.
//!
//! Writers in this process first take turns on an in-process lock
//! ([`Store::turn`]): waiting on SQLite's own lock means its busy handler,
//! which sleeps 1, 2, 5, 10… up to 100 ms between tries without being woken
//! when the lock frees, and under a burst of deliveries those sleeps were
//! the webhook's tail latency.

mod intake;
mod types;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard, mpsc, oneshot};

pub use types::*;

#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
    intake: mpsc::Sender<intake::Message>,
    writers: Arc<Mutex<()>>,
}

/// This process's turn to write; see the module's notes.
type Turn = OwnedMutexGuard<()>;

const DEPLOYMENT_COLUMNS: &str = "id, repository, environment, task, git_ref, sha, payload, \
     creator, production, transient, installation_id, state, description, created_at, \
     started_at, finished_at";

fn deployment_from_row(row: &SqliteRow) -> Result<Deployment, sqlx::Error> {
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
    })
}

impl Store {
    /// Opens (creating if needed) the database in `dir`.
    pub async fn open(dir: &Path) -> anyhow::Result<Store> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create storage.dir {}", dir.display()))?;
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(dir.join("ferry.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .with_context(|| format!("cannot open database in {}", dir.display()))?;
        sqlx::migrate!("./migrations")
            .run(&pool)
            .await
            .context("cannot migrate the database")?;
        let (intake, queue) = mpsc::channel(4 * intake::BATCH);
        let writers = Arc::new(Mutex::new(()));
        intake::start(&dir.join("ferry.db"), writers.clone(), queue)
            .with_context(|| format!("cannot open database in {}", dir.display()))?;
        Ok(Store {
            pool,
            intake,
            writers,
        })
    }

    /// Closes every connection; later calls fail (the webhook answers 503).
    pub async fn close(&self) {
        let _ = self.intake.send(intake::Message::Close).await;
        self.pool.close().await;
    }

    async fn turn(&self) -> Turn {
        self.writers.clone().lock_owned().await
    }

    /// A write transaction, and the turn that must outlive it.
    async fn write(&self) -> Result<(Turn, Transaction<'static, Sqlite>), sqlx::Error> {
        let turn = self.turn().await;
        Ok((turn, self.pool.begin_with("BEGIN IMMEDIATE").await?))
    }

    /// Records a delivery and its deployment, with its `queued` status.
    /// Duplicates (by delivery or by deployment id) change nothing but the
    /// record of the delivery. With `supersede`, deployments of the same
    /// repository and environment still waiting become `inactive`.
    ///
    /// Returns once the transaction holding it is on disk. Deliveries that
    /// arrive together share that transaction: one fsync for all of them.
    pub async fn accept(
        &self,
        delivery: &DeliveryKey,
        deployment: &NewDeployment,
        queued: &NewStatus,
        supersede: bool,
    ) -> Result<Accepted, sqlx::Error> {
        let (reply, answer) = oneshot::channel();
        let request = intake::Intake {
            delivery: delivery.clone(),
            deployment: deployment.clone(),
            queued: queued.clone(),
            supersede,
            reply,
        };
        self.intake
            .send(intake::Message::Deliver(Box::new(request)))
            .await
            .map_err(|_| sqlx::Error::PoolClosed)?;
        answer.await.map_err(|_| sqlx::Error::WorkerCrashed)?
    }

    /// Marks the oldest runnable queued deployment as running and returns it.
    /// Runnable: no other deployment of its repository and environment runs.
    pub async fn claim_next(&self) -> Result<Option<Deployment>, sqlx::Error> {
        const RUNNABLE: &str = "SELECT d.id FROM deployments d
             WHERE d.state = 'queued' AND NOT EXISTS (
                 SELECT 1 FROM deployments r WHERE r.state = 'running'
                 AND r.repository = d.repository AND r.environment = d.environment)
             ORDER BY d.seq LIMIT 1";
        // The runner asks after every delivery; during a burst the answer is
        // mostly "nothing", and a read finds that out without a write turn.
        let any: Option<i64> = sqlx::query_scalar(RUNNABLE)
            .fetch_optional(&self.pool)
            .await?;
        if any.is_none() {
            return Ok(None);
        }
        // One statement under the turn: atomic on its own, one round trip.
        let sql = format!(
            "UPDATE deployments SET state = 'running', started_at = ?
             WHERE id = ({RUNNABLE}) RETURNING {DEPLOYMENT_COLUMNS}"
        );
        let _turn = self.turn().await;
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(now_ms())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(deployment_from_row)
            .transpose()
    }

    /// Queues a status that does not change the deployment's state.
    pub async fn add_status(
        &self,
        id: DeploymentId,
        status: &NewStatus,
    ) -> Result<(), sqlx::Error> {
        let (_turn, mut tx) = self.write().await?;
        insert_status(&mut tx, id, status, now_ms()).await?;
        tx.commit().await
    }

    /// Gives a deployment its final state and queues the status announcing it.
    pub async fn finish(
        &self,
        id: DeploymentId,
        state: State,
        status: &NewStatus,
    ) -> Result<(), sqlx::Error> {
        debug_assert!(state.is_final());
        let now = now_ms();
        let (_turn, mut tx) = self.write().await?;
        sqlx::query(
            "UPDATE deployments SET state = ?, description = ?, finished_at = ? WHERE id = ?",
        )
        .bind(state.as_str())
        .bind(&status.description)
        .bind(now)
        .bind(id.0)
        .execute(&mut *tx)
        .await?;
        insert_status(&mut tx, id, status, now).await?;
        tx.commit().await
    }

    /// Deployments left `running` by a previous process that died.
    pub async fn running(&self) -> Result<Vec<Deployment>, sqlx::Error> {
        self.by_state(State::Running).await
    }

    async fn by_state(&self, state: State) -> Result<Vec<Deployment>, sqlx::Error> {
        let sql =
            format!("SELECT {DEPLOYMENT_COLUMNS} FROM deployments WHERE state = ? ORDER BY seq");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(state.as_str())
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(deployment_from_row)
            .collect()
    }

    pub async fn get(&self, id: DeploymentId) -> Result<Option<Deployment>, sqlx::Error> {
        let sql = format!("SELECT {DEPLOYMENT_COLUMNS} FROM deployments WHERE id = ?");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(deployment_from_row)
            .transpose()
    }

    /// The most recent deployments, newest first.
    pub async fn recent(&self, limit: i64) -> Result<Vec<Deployment>, sqlx::Error> {
        let sql = format!("SELECT {DEPLOYMENT_COLUMNS} FROM deployments ORDER BY seq DESC LIMIT ?");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(deployment_from_row)
            .collect()
    }

    pub async fn count_by_state(&self, state: State) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("SELECT COUNT(*) FROM deployments WHERE state = ?")
            .bind(state.as_str())
            .fetch_one(&self.pool)
            .await
    }

    // ---- status outbox ----

    /// The first pending status of each deployment that is due by `now`,
    /// oldest first. Later statuses of a deployment wait for its head.
    pub async fn due_statuses(&self, now: i64, limit: i64) -> Result<Vec<OutboxItem>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT o.seq, o.deployment_id, o.state, o.description, o.log_url, o.environment_url,
                    o.auto_inactive, o.attempts, d.repository, d.installation_id
             FROM status_outbox o INDEXED BY status_outbox_pending_seq
             JOIN deployments d ON d.id = o.deployment_id
             WHERE o.sent_at IS NULL AND o.failed_at IS NULL AND o.next_attempt_at <= ?
               AND NOT EXISTS (
                   SELECT 1 FROM status_outbox p INDEXED BY status_outbox_pending
                   WHERE p.deployment_id = o.deployment_id AND p.seq < o.seq
                     AND p.sent_at IS NULL AND p.failed_at IS NULL)
             ORDER BY o.seq LIMIT ?",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let state: String = r.try_get("state")?;
                Ok(OutboxItem {
                    seq: r.try_get("seq")?,
                    deployment_id: DeploymentId(r.try_get("deployment_id")?),
                    repository: r.try_get("repository")?,
                    installation_id: r.try_get("installation_id")?,
                    attempts: r.try_get("attempts")?,
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
            .collect()
    }

    /// When the next pending status becomes due, if any is pending.
    pub async fn next_status_due(&self) -> Result<Option<i64>, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT MIN(next_attempt_at) FROM status_outbox
             WHERE sent_at IS NULL AND failed_at IS NULL",
        )
        .fetch_one(&self.pool)
        .await
    }

    pub async fn pending_statuses(&self) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM status_outbox WHERE sent_at IS NULL AND failed_at IS NULL",
        )
        .fetch_one(&self.pool)
        .await
    }

    /// Remembers a step's process group on a host while it runs.
    pub async fn remember_step(
        &self,
        id: DeploymentId,
        host: &str,
        pgid: u32,
        boot_id: &str,
    ) -> Result<(), sqlx::Error> {
        let _turn = self.turn().await;
        sqlx::query(
            "INSERT INTO remote_steps (deployment_id, host, pgid, boot_id) VALUES (?, ?, ?, ?)
             ON CONFLICT (deployment_id, host) DO UPDATE SET pgid = excluded.pgid, boot_id = excluded.boot_id",
        )
        .bind(id.0)
        .bind(host)
        .bind(i64::from(pgid))
        .bind(boot_id)
        .execute(&self.pool)
        .await
        .map(drop)
    }

    pub async fn forget_step(&self, id: DeploymentId, host: &str) -> Result<(), sqlx::Error> {
        let _turn = self.turn().await;
        sqlx::query("DELETE FROM remote_steps WHERE deployment_id = ? AND host = ?")
            .bind(id.0)
            .bind(host)
            .execute(&self.pool)
            .await
            .map(drop)
    }

    /// Steps a dead process left running: (host, pgid, boot id).
    pub async fn remote_steps(
        &self,
        id: DeploymentId,
    ) -> Result<Vec<(String, i64, String)>, sqlx::Error> {
        sqlx::query_as("SELECT host, pgid, boot_id FROM remote_steps WHERE deployment_id = ?")
            .bind(id.0)
            .fetch_all(&self.pool)
            .await
    }

    /// Records what became of status posts, in the next commit of the
    /// intake writer: one fsync shared with the deliveries arriving now.
    pub async fn record_posts(&self, posts: &[(i64, PostOutcome)]) -> Result<(), sqlx::Error> {
        if posts.is_empty() {
            return Ok(());
        }
        let (reply, answer) = oneshot::channel();
        self.intake
            .send(intake::Message::Record {
                posts: posts.to_vec(),
                reply,
            })
            .await
            .map_err(|_| sqlx::Error::PoolClosed)?;
        answer.await.map_err(|_| sqlx::Error::WorkerCrashed)?
    }
}

async fn insert_status(
    tx: &mut Transaction<'static, Sqlite>,
    id: DeploymentId,
    s: &NewStatus,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(intake::INSERT_STATUS)
        .bind(id.0)
        .bind(s.state.as_str())
        .bind(&s.description)
        .bind(&s.log_url)
        .bind(&s.environment_url)
        .bind(s.auto_inactive)
        .bind(now)
        .bind(now)
        .execute(&mut **tx)
        .await
        .map(drop)
}

#[cfg(test)]
mod tests;
