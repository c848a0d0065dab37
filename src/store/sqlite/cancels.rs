//! Cancel on SQLite: a waiting deployment ends at once, a running one is
//! flagged for the process running it.

use rusqlite::{OptionalExtension, params};

use async_trait::async_trait;

use crate::store::Cancels;

use super::{
    CancelOutcome, Cancellation, Claim, DeploymentId, NewStatus, Result, SqliteStore, State,
    Timestamp, insert_status,
};

#[async_trait]
impl Cancels for SqliteStore {
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
            let now = Timestamp::now();
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
                        "UPDATE deployments SET cancelled_by = ?, cancel_reason = ?, cancel_rollback = ?
                         WHERE id = ?",
                    )?
                    .execute(params![c.by, c.reason, c.rollback, id.0])?;
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
                "SELECT cancelled_by, cancel_reason, cancel_rollback FROM deployments
                 WHERE id = ? AND attempt = ? AND state = 'running' AND cancelled_by IS NOT NULL",
            )?;
            let mut found = Vec::new();
            for claim in claims {
                if let Some(by) = asked
                    .query_row(params![claim.id.0, claim.attempt], |r| {
                        Ok(Cancellation {
                            by: r.get(0)?,
                            reason: r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                            rollback: r.get(2)?,
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
