//! Deployments waiting for their required checks, on PostgreSQL: each due
//! look is taken by one replica (`FOR UPDATE SKIP LOCKED`).

use async_trait::async_trait;
use sqlx::Row;

use super::{
    DEPLOYMENT_COLUMNS, Deployment, DeploymentId, NewStatus, PgStore, Result, Timestamp,
    deployment_from_row, insert_status,
};
use crate::store::gates::Gates;

#[async_trait]
impl Gates for PgStore {
    async fn due_gates(
        &self,
        now: Timestamp,
        next: Timestamp,
        limit: i64,
    ) -> Result<Vec<Deployment>> {
        let sql = format!(
            "UPDATE deployments SET checks_next_at = $1 WHERE id IN (
                 SELECT id FROM deployments
                 WHERE checks_gate AND state = 'queued' AND checks_next_at <= $2
                 ORDER BY seq LIMIT $3 FOR UPDATE SKIP LOCKED)
             RETURNING {DEPLOYMENT_COLUMNS}, seq"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(next)
            .bind(now)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        let mut due = rows
            .iter()
            .map(|r| Ok((r.try_get::<i64, _>("seq")?, deployment_from_row(r)?)))
            .collect::<std::result::Result<Vec<_>, sqlx::Error>>()?;
        due.sort_by_key(|(seq, _)| *seq);
        Ok(due.into_iter().map(|(_, d)| d).collect())
    }

    async fn open_gate(&self, id: DeploymentId) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE deployments SET checks_gate = false, checks_next_at = NULL
             WHERE id = $1 AND checks_gate AND state = 'queued'",
        )
        .bind(id.0)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    async fn fail_gate(&self, id: DeploymentId, status: &NewStatus) -> Result<bool> {
        let now = Timestamp::now();
        let state = match status.state {
            crate::store::StatusState::Error => "error",
            _ => "failure",
        };
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query(
            "UPDATE deployments SET state = $1, description = $2, finished_at = $3,
                 checks_gate = false, checks_next_at = NULL
             WHERE id = $4 AND checks_gate AND state = 'queued'",
        )
        .bind(state)
        .bind(&status.description)
        .bind(now)
        .bind(id.0)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 1 {
            insert_status(&mut tx, id, status, now).await?;
        }
        tx.commit().await?;
        Ok(n == 1)
    }

    async fn gate_waiting(&self, id: DeploymentId, status: &NewStatus) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query(
            "UPDATE deployments SET description = $1
             WHERE id = $2 AND checks_gate AND state = 'queued' AND description <> $1",
        )
        .bind(&status.description)
        .bind(id.0)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 1 {
            insert_status(&mut tx, id, status, Timestamp::now()).await?;
        }
        tx.commit().await?;
        Ok(n == 1)
    }

    async fn next_look(&self, id: DeploymentId, at: Timestamp) -> Result<()> {
        sqlx::query(
            "UPDATE deployments SET checks_next_at = $1
             WHERE id = $2 AND checks_gate AND state = 'queued'",
        )
        .bind(at)
        .bind(id.0)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn look_again(&self, repository: &str, sha: &str) -> Result<u64> {
        Ok(sqlx::query(
            "UPDATE deployments SET checks_next_at = $1
             WHERE checks_gate AND state = 'queued' AND repository = $2 AND sha = $3",
        )
        .bind(Timestamp::now())
        .bind(repository)
        .bind(sha)
        .execute(&self.pool)
        .await?
        .rows_affected())
    }
}
