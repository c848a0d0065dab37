//! Environment locks on PostgreSQL: from `ferry lock` and `deploy:lock`
//! deployments.

use async_trait::async_trait;

use crate::store::Locks;

use super::{
    Accepted, DeliveryKey, EnvLock, Error, LockTask, NewDeployment, PgStore, Result, State,
    Timestamp, insert_status, lock_from_row,
};

#[async_trait]
impl Locks for PgStore {
    async fn lock(&self, lock: &EnvLock) -> Result<Option<EnvLock>> {
        // An unlock between the two statements: try again.
        for _ in 0..3 {
            let took = sqlx::query(
                "INSERT INTO env_locks (repository, environment, holder, reason, since, until_at)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            )
            .bind(&lock.repository)
            .bind(&lock.environment)
            .bind(&lock.holder)
            .bind(&lock.reason)
            .bind(lock.since)
            .bind(lock.until)
            .execute(&self.pool)
            .await?
            .rows_affected();
            if took == 1 {
                return Ok(None);
            }
            let held =
                sqlx::query("SELECT * FROM env_locks WHERE repository = $1 AND environment = $2")
                    .bind(&lock.repository)
                    .bind(&lock.environment)
                    .fetch_optional(&self.pool)
                    .await?;
            if let Some(row) = held {
                return Ok(Some(lock_from_row(&row)?));
            }
        }
        Err(Error::Unavailable(
            "the lock was taken and lifted three times while locking: try again".into(),
        ))
    }

    async fn unlock(
        &self,
        repository: &str,
        environment: &str,
        by: &str,
    ) -> Result<Option<EnvLock>> {
        let mut tx = self.pool.begin().await?;
        set_unlocked_by(&mut tx, repository, environment, by).await?;
        let row = sqlx::query(
            "DELETE FROM env_locks WHERE repository = $1 AND environment = $2 RETURNING *",
        )
        .bind(repository)
        .bind(environment)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(row.as_ref().map(lock_from_row).transpose()?)
    }

    async fn expire_locks(&self, now: Timestamp, by: &str) -> Result<Vec<EnvLock>> {
        // Looked at every second by each replica: one indexed read when
        // nothing is due.
        let due: Option<i32> =
            sqlx::query_scalar("SELECT 1 FROM env_locks WHERE until_at <= $1 LIMIT 1")
                .bind(now)
                .fetch_optional(&self.pool)
                .await?;
        if due.is_none() {
            return Ok(Vec::new());
        }
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE env_locks SET unlocked_by = $1 WHERE until_at <= $2")
            .bind(by)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let rows = sqlx::query("DELETE FROM env_locks WHERE until_at <= $1 RETURNING *")
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(rows
            .iter()
            .map(lock_from_row)
            .collect::<std::result::Result<_, _>>()?)
    }

    async fn locks(&self) -> Result<Vec<EnvLock>> {
        let rows = sqlx::query("SELECT * FROM env_locks ORDER BY since, repository, environment")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(lock_from_row)
            .collect::<std::result::Result<_, _>>()?)
    }

    async fn accept_lock_task(
        &self,
        delivery: &DeliveryKey,
        deployment: &NewDeployment,
        task: LockTask,
        reason: &str,
        log_url: &str,
    ) -> Result<(Accepted, Option<(State, String)>)> {
        let d = deployment;
        let now = Timestamp::now();
        let mut tx = self.pool.begin().await?;
        // The environment's turn, as intake takes it (see intake.rs).
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1 || E'\\n' || $2, 0))")
            .bind(&d.repository)
            .bind(&d.environment)
            .execute(&mut *tx)
            .await?;
        if !delivery.delivery_id.is_empty() {
            let fresh = sqlx::query(
                "INSERT INTO deliveries (hook_id, delivery_id, received_at, deployment_id)
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            )
            .bind(&delivery.hook_id)
            .bind(&delivery.delivery_id)
            .bind(now)
            .bind(d.id.0)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if fresh == 0 {
                return Ok((Accepted::DuplicateDelivery, None));
            }
        }
        let known: Option<i32> = sqlx::query_scalar("SELECT 1 FROM deployments WHERE id = $1")
            .bind(d.id.0)
            .fetch_optional(&mut *tx)
            .await?;
        if known.is_some() {
            tx.commit().await?;
            return Ok((Accepted::DuplicateDeployment, None));
        }
        let held = sqlx::query(
            "SELECT * FROM env_locks WHERE repository = $1 AND environment = $2 FOR UPDATE",
        )
        .bind(&d.repository)
        .bind(&d.environment)
        .fetch_optional(&mut *tx)
        .await?
        .as_ref()
        .map(lock_from_row)
        .transpose()?;
        lock_or_unlock(&mut tx, task, held.is_some(), d, reason, now).await?;
        let (state, description) = task.outcome(&d.creator, held.as_ref(), reason);
        insert_ended(&mut tx, d, state, &description, now).await?;
        insert_status(
            &mut tx,
            d.id,
            &LockTask::status(state, &description, log_url),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok((
            Accepted::New { superseded: vec![] },
            Some((state, description)),
        ))
    }
}

/// Names who lifts a lock just before its row goes, for the unlock event
/// (migration 0017).
async fn set_unlocked_by(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    repository: &str,
    environment: &str,
    by: &str,
) -> Result<()> {
    sqlx::query("UPDATE env_locks SET unlocked_by = $3 WHERE repository = $1 AND environment = $2")
        .bind(repository)
        .bind(environment)
        .bind(by)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Takes the lock (`deploy:lock` on a free environment) or lifts it
/// (`deploy:unlock` on a locked one); otherwise changes nothing: the
/// task's outcome says why.
async fn lock_or_unlock(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    task: LockTask,
    held: bool,
    d: &NewDeployment,
    reason: &str,
    now: Timestamp,
) -> Result<()> {
    match (task, held) {
        (LockTask::Lock, false) => {
            sqlx::query(
                "INSERT INTO env_locks (repository, environment, holder, reason, since)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&d.repository)
            .bind(&d.environment)
            .bind(&d.creator)
            .bind(reason)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        }
        (LockTask::Unlock, true) => {
            set_unlocked_by(tx, &d.repository, &d.environment, &d.creator).await?;
            sqlx::query("DELETE FROM env_locks WHERE repository = $1 AND environment = $2")
                .bind(&d.repository)
                .bind(&d.environment)
                .execute(&mut **tx)
                .await?;
        }
        _ => {}
    }
    Ok(())
}

/// A lock task's deployment row, ended as it is stored.
async fn insert_ended(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    d: &NewDeployment,
    state: State,
    description: &str,
    now: Timestamp,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO deployments (id, repository, environment, task, git_ref, sha, payload,
                 creator, production, transient, installation_id, state, description,
                 created_at, started_at, finished_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14, $14)",
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
    .bind(state.as_str())
    .bind(description)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
