//! Deployments waiting for their required checks, on SQLite.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

use super::{
    DEPLOYMENT_COLUMNS, Deployment, DeploymentId, NewStatus, Result, SqliteStore, Timestamp,
    deployment_from_row, insert_status,
};
use crate::store::gates::Gates;

#[async_trait]
impl Gates for SqliteStore {
    async fn due_gates(
        &self,
        now: Timestamp,
        next: Timestamp,
        limit: i64,
    ) -> Result<Vec<Deployment>> {
        // Asked every second: a read finds "nothing" without the writer.
        let any = self
            .read(move |c| {
                c.prepare_cached(
                    "SELECT id FROM deployments
                     WHERE checks_gate = 1 AND state = 'queued' AND checks_next_at <= ? LIMIT 1",
                )?
                .query_row(params![now], |r| r.get::<_, i64>(0))
                .optional()
            })
            .await?;
        if any.is_none() {
            return Ok(Vec::new());
        }
        self.write(move |tx| {
            let sql = format!(
                "UPDATE deployments SET checks_next_at = ?1 WHERE id IN (
                     SELECT id FROM deployments
                     WHERE checks_gate = 1 AND state = 'queued' AND checks_next_at <= ?2
                     ORDER BY seq LIMIT ?3)
                 RETURNING {DEPLOYMENT_COLUMNS}, seq"
            );
            let mut due: Vec<(i64, Deployment)> = tx
                .prepare_cached(&sql)?
                .query_map(params![next, now, limit], |r| {
                    Ok((r.get("seq")?, deployment_from_row(r)?))
                })?
                .collect::<rusqlite::Result<_>>()?;
            due.sort_by_key(|(seq, _)| *seq);
            Ok(due.into_iter().map(|(_, d)| d).collect())
        })
        .await
    }

    async fn open_gate(&self, id: DeploymentId) -> Result<bool> {
        self.write(move |tx| {
            let n = tx
                .prepare_cached(
                    "UPDATE deployments SET checks_gate = 0, checks_next_at = NULL
                     WHERE id = ? AND checks_gate = 1 AND state = 'queued'",
                )?
                .execute(params![id.0])?;
            Ok(n == 1)
        })
        .await
    }

    async fn fail_gate(&self, id: DeploymentId, status: &NewStatus) -> Result<bool> {
        let status = status.clone();
        self.write(move |tx| {
            let now = Timestamp::now();
            let state = match status.state {
                crate::store::StatusState::Error => "error",
                _ => "failure",
            };
            let n = tx
                .prepare_cached(
                    "UPDATE deployments SET state = ?, description = ?, finished_at = ?,
                         checks_gate = 0, checks_next_at = NULL
                     WHERE id = ? AND checks_gate = 1 AND state = 'queued'",
                )?
                .execute(params![state, status.description, now, id.0])?;
            if n == 1 {
                insert_status(tx, id, &status, now)?;
            }
            Ok(n == 1)
        })
        .await
    }

    async fn gate_waiting(&self, id: DeploymentId, status: &NewStatus) -> Result<bool> {
        let status = status.clone();
        self.write(move |tx| {
            let n = tx
                .prepare_cached(
                    "UPDATE deployments SET description = ?
                     WHERE id = ? AND checks_gate = 1 AND state = 'queued' AND description != ?",
                )?
                .execute(params![status.description, id.0, status.description])?;
            if n == 1 {
                insert_status(tx, id, &status, Timestamp::now())?;
            }
            Ok(n == 1)
        })
        .await
    }

    async fn next_look(&self, id: DeploymentId, at: Timestamp) -> Result<()> {
        self.write(move |tx| {
            tx.prepare_cached(
                "UPDATE deployments SET checks_next_at = ?
                 WHERE id = ? AND checks_gate = 1 AND state = 'queued'",
            )?
            .execute(params![at, id.0])
            .map(drop)
        })
        .await
    }

    async fn look_again(&self, repository: &str, sha: &str) -> Result<u64> {
        let (repository, sha) = (repository.to_string(), sha.to_string());
        self.write(move |tx| {
            let n = tx
                .prepare_cached(
                    "UPDATE deployments SET checks_next_at = ?
                     WHERE checks_gate = 1 AND state = 'queued' AND repository = ? AND sha = ?",
                )?
                .execute(params![Timestamp::now(), repository, sha])?;
            Ok(n as u64)
        })
        .await
    }
}
