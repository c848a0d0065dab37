//! Cancel on PostgreSQL: a waiting deployment ends at once, a running one is
//! flagged for the process running it.

use async_trait::async_trait;

use crate::store::Cancels;

use super::{
    CancelOutcome, Cancellation, Claim, DeploymentId, NewStatus, PgStore, Result, State, Timestamp,
    insert_status,
};

#[async_trait]
impl Cancels for PgStore {
    async fn cancel(
        &self,
        id: DeploymentId,
        cancellation: &Cancellation,
        status: &NewStatus,
    ) -> Result<CancelOutcome> {
        let mut tx = self.pool.begin().await?;
        // Locked, so a claim cannot slip between the look and the change.
        let state: Option<String> =
            sqlx::query_scalar("SELECT state FROM deployments WHERE id = $1 FOR UPDATE")
                .bind(id.0)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(state) = state.as_deref().and_then(State::parse) else {
            return Ok(CancelOutcome::Unknown);
        };
        let now = Timestamp::now();
        let outcome = match state {
            State::Queued => {
                sqlx::query(
                    "UPDATE deployments SET state = 'error', description = $1, finished_at = $2,
                         cancelled_by = $3, cancel_reason = $4
                     WHERE id = $5",
                )
                .bind(&status.description)
                .bind(now)
                .bind(&cancellation.by)
                .bind(&cancellation.reason)
                .bind(id.0)
                .execute(&mut *tx)
                .await?;
                insert_status(&mut tx, id, status, now).await?;
                CancelOutcome::Ended
            }
            State::Running => {
                sqlx::query(
                    "UPDATE deployments SET cancelled_by = $1, cancel_reason = $2, cancel_rollback = $3
                     WHERE id = $4",
                )
                .bind(&cancellation.by)
                .bind(&cancellation.reason)
                .bind(cancellation.rollback)
                .bind(id.0)
                .execute(&mut *tx)
                .await?;
                CancelOutcome::Requested
            }
            done => CancelOutcome::Finished(done),
        };
        tx.commit().await?;
        Ok(outcome)
    }

    async fn cancelled(&self) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT count(*) FROM deployments WHERE cancelled_by IS NOT NULL")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn cancel_requests(&self, claims: &[Claim]) -> Result<Vec<(Claim, Cancellation)>> {
        if claims.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = claims.iter().map(|c| c.id.0).collect();
        let attempts: Vec<i32> = claims.iter().map(|c| c.attempt as i32).collect();
        let rows: Vec<(i64, i32, String, Option<String>, bool)> = sqlx::query_as(
            "SELECT d.id, d.attempt, d.cancelled_by, d.cancel_reason, d.cancel_rollback
             FROM UNNEST($1::bigint[], $2::int[]) AS c (id, attempt)
             JOIN deployments d ON d.id = c.id AND d.attempt = c.attempt
             WHERE d.state = 'running' AND d.cancelled_by IS NOT NULL",
        )
        .bind(&ids)
        .bind(&attempts)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, attempt, by, reason, rollback)| {
                (
                    Claim {
                        id: DeploymentId(id),
                        attempt: i64::from(attempt),
                    },
                    Cancellation {
                        by,
                        reason: reason.unwrap_or_default(),
                        rollback,
                    },
                )
            })
            .collect())
    }
}
