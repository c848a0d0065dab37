//! Environment locks on SQLite: from `ferry lock` and `deploy:lock`
//! deployments.

use rusqlite::{OptionalExtension, params};

use async_trait::async_trait;

use crate::store::Locks;

use super::{
    Accepted, DeliveryKey, EnvLock, LockTask, NewDeployment, Result, SqliteStore, State, Timestamp,
    insert_status, lock_from_row,
};

#[async_trait]
impl Locks for SqliteStore {
    async fn lock(&self, lock: &EnvLock) -> Result<Option<EnvLock>> {
        let lock = lock.clone();
        self.write(move |tx| {
            let held = tx
                .prepare_cached("SELECT * FROM env_locks WHERE repository = ? AND environment = ?")?
                .query_row(params![lock.repository, lock.environment], lock_from_row)
                .optional()?;
            if held.is_none() {
                tx.prepare_cached(
                    "INSERT INTO env_locks (repository, environment, holder, reason, since, until_at)
                     VALUES (?, ?, ?, ?, ?, ?)",
                )?
                .execute(params![
                    lock.repository,
                    lock.environment,
                    lock.holder,
                    lock.reason,
                    lock.since,
                    lock.until
                ])?;
            }
            Ok(held)
        })
        .await
    }

    async fn unlock(
        &self,
        repository: &str,
        environment: &str,
        by: &str,
    ) -> Result<Option<EnvLock>> {
        let (repository, environment, by) = (
            repository.to_string(),
            environment.to_string(),
            by.to_string(),
        );
        self.write(move |tx| {
            set_unlocked_by(tx, &repository, &environment, &by)?;
            tx.prepare_cached(
                "DELETE FROM env_locks WHERE repository = ? AND environment = ? RETURNING *",
            )?
            .query_row(params![repository, environment], lock_from_row)
            .optional()
        })
        .await
    }

    async fn expire_locks(&self, now: Timestamp, by: &str) -> Result<Vec<EnvLock>> {
        // Looked at every few seconds: a read finds "none due" without the
        // writer.
        let due = self
            .read(move |c| {
                c.prepare_cached("SELECT 1 FROM env_locks WHERE until_at <= ? LIMIT 1")?
                    .query_row(params![now], |_| Ok(()))
                    .optional()
            })
            .await?;
        if due.is_none() {
            return Ok(Vec::new());
        }
        let by = by.to_string();
        self.write(move |tx| {
            tx.prepare_cached("UPDATE env_locks SET unlocked_by = ? WHERE until_at <= ?")?
                .execute(params![by, now])?;
            tx.prepare_cached("DELETE FROM env_locks WHERE until_at <= ? RETURNING *")?
                .query_map(params![now], lock_from_row)?
                .collect()
        })
        .await
    }

    async fn locks(&self) -> Result<Vec<EnvLock>> {
        self.read(|c| {
            c.prepare_cached("SELECT * FROM env_locks ORDER BY since, repository, environment")?
                .query_map([], lock_from_row)?
                .collect()
        })
        .await
    }

    async fn accept_lock_task(
        &self,
        delivery: &DeliveryKey,
        deployment: &NewDeployment,
        task: LockTask,
        reason: &str,
        log_url: &str,
    ) -> Result<(Accepted, Option<(State, String)>)> {
        let (key, d, reason, log_url) = (
            delivery.clone(),
            deployment.clone(),
            reason.to_string(),
            log_url.to_string(),
        );
        self.write(move |tx| {
            let now = Timestamp::now();
            if !key.delivery_id.is_empty() {
                let fresh = tx
                    .prepare_cached(super::writer::INSERT_DELIVERY)?
                    .execute(params![key.hook_id, key.delivery_id, now, d.id.0])?;
                if fresh == 0 {
                    return Ok((Accepted::DuplicateDelivery, None));
                }
            }
            let known = tx
                .prepare_cached("SELECT 1 FROM deployments WHERE id = ?")?
                .query_row(params![d.id.0], |_| Ok(()))
                .optional()?;
            if known.is_some() {
                return Ok((Accepted::DuplicateDeployment, None));
            }
            let held = tx
                .prepare_cached("SELECT * FROM env_locks WHERE repository = ? AND environment = ?")?
                .query_row(params![d.repository, d.environment], lock_from_row)
                .optional()?;
            lock_or_unlock(tx, task, held.is_some(), &d, &reason, now)?;
            let (state, description) = task.outcome(&d.creator, held.as_ref(), &reason);
            insert_ended(tx, &d, state, &description, now)?;
            insert_status(
                tx,
                d.id,
                &LockTask::status(state, &description, &log_url),
                now,
            )?;
            Ok((
                Accepted::New { superseded: vec![] },
                Some((state, description)),
            ))
        })
        .await
    }
}

/// Names who lifts a lock just before its row goes, for the unlock event
/// (migration 0016).
fn set_unlocked_by(
    tx: &rusqlite::Transaction<'_>,
    repository: &str,
    environment: &str,
    by: &str,
) -> rusqlite::Result<usize> {
    tx.prepare_cached(
        "UPDATE env_locks SET unlocked_by = ?3 WHERE repository = ?1 AND environment = ?2",
    )?
    .execute(params![repository, environment, by])
}

/// Takes the lock (`deploy:lock` on a free environment) or lifts it
/// (`deploy:unlock` on a locked one); otherwise changes nothing: the
/// task's outcome says why.
fn lock_or_unlock(
    tx: &rusqlite::Transaction<'_>,
    task: LockTask,
    held: bool,
    d: &NewDeployment,
    reason: &str,
    now: Timestamp,
) -> rusqlite::Result<()> {
    match (task, held) {
        (LockTask::Lock, false) => {
            tx.prepare_cached(
                "INSERT INTO env_locks (repository, environment, holder, reason, since)
                 VALUES (?, ?, ?, ?, ?)",
            )?
            .execute(params![d.repository, d.environment, d.creator, reason, now])?;
        }
        (LockTask::Unlock, true) => {
            set_unlocked_by(tx, &d.repository, &d.environment, &d.creator)?;
            tx.prepare_cached("DELETE FROM env_locks WHERE repository = ? AND environment = ?")?
                .execute(params![d.repository, d.environment])?;
        }
        _ => {}
    }
    Ok(())
}

/// A lock task's deployment row, ended as it is stored.
fn insert_ended(
    tx: &rusqlite::Transaction<'_>,
    d: &NewDeployment,
    state: State,
    description: &str,
    now: Timestamp,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO deployments (id, seq, repository, environment, task, git_ref, sha,
                     payload, creator, production, transient, installation_id, state,
                     description, created_at, started_at, finished_at)
                 VALUES (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM deployments),
                     ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )?
    .execute(params![
        d.id.0,
        d.repository,
        d.environment,
        d.task,
        d.git_ref,
        d.sha,
        d.payload,
        d.creator,
        d.production,
        d.transient,
        d.installation_id,
        state.as_str(),
        description,
        now,
        now,
        now
    ])?;
    Ok(())
}
