//! What operators steer with, on SQLite: environment locks (from
//! `ferry lock` and `deploy:lock` deployments) and cancel.

use rusqlite::{OptionalExtension, params};

use async_trait::async_trait;

use crate::store::Steer;

use super::{
    Accepted, CancelOutcome, Cancellation, Claim, DeliveryKey, DeploymentId, EnvLock, LockTask,
    NewDeployment, NewStatus, Result, SqliteStore, State, insert_status, lock_from_row, now_ms,
};

#[async_trait]
impl Steer for SqliteStore {
    async fn lock(&self, lock: &EnvLock) -> Result<Option<EnvLock>> {
        let lock = lock.clone();
        self.write(move |tx| {
            let held = tx
                .prepare_cached("SELECT * FROM env_locks WHERE repository = ? AND environment = ?")?
                .query_row(params![lock.repository, lock.environment], lock_from_row)
                .optional()?;
            if held.is_none() {
                tx.prepare_cached(
                    "INSERT INTO env_locks (repository, environment, holder, reason, since)
                     VALUES (?, ?, ?, ?, ?)",
                )?
                .execute(params![
                    lock.repository,
                    lock.environment,
                    lock.holder,
                    lock.reason,
                    lock.since
                ])?;
            }
            Ok(held)
        })
        .await
    }

    async fn unlock(&self, repository: &str, environment: &str) -> Result<Option<EnvLock>> {
        let (repository, environment) = (repository.to_string(), environment.to_string());
        self.write(move |tx| {
            tx.prepare_cached(
                "DELETE FROM env_locks WHERE repository = ? AND environment = ? RETURNING *",
            )?
            .query_row(params![repository, environment], lock_from_row)
            .optional()
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
            let now = now_ms();
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
            match (task, &held) {
                (LockTask::Lock, None) => {
                    tx.prepare_cached(
                        "INSERT INTO env_locks (repository, environment, holder, reason, since)
                         VALUES (?, ?, ?, ?, ?)",
                    )?
                    .execute(params![
                        d.repository,
                        d.environment,
                        d.creator,
                        reason,
                        now
                    ])?;
                }
                (LockTask::Unlock, Some(_)) => {
                    tx.prepare_cached(
                        "DELETE FROM env_locks WHERE repository = ? AND environment = ?",
                    )?
                    .execute(params![d.repository, d.environment])?;
                }
                _ => {}
            }
            let (state, description) = task.outcome(&d.creator, held.as_ref());
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

    async fn cancel(
        &self,
        id: DeploymentId,
        cancellation: &Cancellation,
        status: &NewStatus,
    ) -> Result<CancelOutcome> {
        let (c, status) = (cancellation.clone(), status.clone());
        self.write(move |tx| {
            let state: Option<String> = tx
                .prepare_cached("SELECT state FROM deployments WHERE id = ?")?
                .query_row(params![id.0], |r| r.get(0))
                .optional()?;
            let Some(state) = state.as_deref().and_then(State::parse) else {
                return Ok(CancelOutcome::Unknown);
            };
            let now = now_ms();
            Ok(match state {
                State::Queued => {
                    tx.prepare_cached(
                        "UPDATE deployments SET state = 'error', description = ?,
                             finished_at = ?, cancelled_by = ?, cancel_reason = ?
                         WHERE id = ?",
                    )?
                    .execute(params![
                        status.description,
                        now,
                        c.by,
                        c.reason,
                        id.0
                    ])?;
                    insert_status(tx, id, &status, now)?;
                    CancelOutcome::Ended
                }
                State::Running => {
                    tx.prepare_cached(
                        "UPDATE deployments SET cancelled_by = ?, cancel_reason = ? WHERE id = ?",
                    )?
                    .execute(params![c.by, c.reason, id.0])?;
                    CancelOutcome::Requested
                }
                done => CancelOutcome::Finished(done),
            })
        })
        .await
    }

    async fn cancelled(&self) -> Result<i64> {
        self.read(|c| {
            c.prepare_cached("SELECT count(*) FROM deployments WHERE cancelled_by IS NOT NULL")?
                .query_row([], |r| r.get(0))
        })
        .await
    }

    async fn cancel_requests(&self, claims: &[Claim]) -> Result<Vec<(Claim, Cancellation)>> {
        if claims.is_empty() {
            return Ok(Vec::new());
        }
        let claims = claims.to_vec();
        self.read(move |c| {
            let mut asked = c.prepare_cached(
                "SELECT cancelled_by, cancel_reason FROM deployments
                 WHERE id = ? AND attempt = ? AND state = 'running' AND cancelled_by IS NOT NULL",
            )?;
            let mut found = Vec::new();
            for claim in claims {
                if let Some(by) = asked
                    .query_row(params![claim.id.0, claim.attempt], |r| {
                        Ok(Cancellation {
                            by: r.get(0)?,
                            reason: r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                        })
                    })
                    .optional()?
                {
                    found.push((claim, by));
                }
            }
            Ok(found)
        })
        .await
    }
}
