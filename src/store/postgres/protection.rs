//! Runs waiting at the deployment protection rule, on PostgreSQL: each
//! due look is taken by one replica (`FOR UPDATE SKIP LOCKED`).

use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::PgRow;

use super::{Owner, PgStore, Result, Timestamp, looks};
use crate::store::protection::*;

const TABLE: &str = "protection_runs";
const OPEN: &str = "state = 'waiting'";

fn run_from_row(r: &PgRow) -> std::result::Result<WaitingRun, sqlx::Error> {
    Ok(WaitingRun {
        seq: r.try_get("seq")?,
        run: NewRun {
            repository: r.try_get("repository")?,
            environment: r.try_get("environment")?,
            run_id: r.try_get("run_id")?,
            callback_url: r.try_get("callback_url")?,
            installation_id: r.try_get("installation_id")?,
        },
        since: r.try_get("since")?,
        reported: r.try_get("reported")?,
    })
}

fn runs_from_rows(rows: &[PgRow]) -> Result<Vec<WaitingRun>> {
    Ok(rows
        .iter()
        .map(run_from_row)
        .collect::<std::result::Result<_, _>>()?)
}

#[async_trait]
impl ProtectionRuns for PgStore {
    async fn record_run(&self, run: &NewRun) -> Result<bool> {
        let now = Timestamp::now();
        let n = sqlx::query(
            "INSERT INTO protection_runs (repository, environment, run_id, callback_url,
                 installation_id, since, next_at)
             VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (callback_url) DO NOTHING",
        )
        .bind(&run.repository)
        .bind(&run.environment)
        .bind(run.run_id)
        .bind(&run.callback_url)
        .bind(run.installation_id)
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    async fn due_runs(
        &self,
        owner: &Owner,
        now: Timestamp,
        until: Timestamp,
        limit: i64,
    ) -> Result<Vec<WaitingRun>> {
        let when = (now, until, limit);
        looks::take_due(self, TABLE, OPEN, owner, when, run_from_row).await
    }

    async fn run_later(
        &self,
        seq: i64,
        owner: &Owner,
        at: Timestamp,
        reported: Option<&str>,
    ) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE protection_runs SET next_at = $1, lease_owner = NULL,
                 reported = COALESCE($2, reported)
             WHERE seq = $3 AND lease_owner = $4 AND state = 'waiting'",
        )
        .bind(at)
        .bind(reported)
        .bind(seq)
        .bind(&owner.0)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    async fn end_run(&self, seq: i64, owner: &Owner, end: RunEnd) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE protection_runs SET state = $1, done_at = $2, lease_owner = NULL
             WHERE seq = $3 AND lease_owner = $4 AND state = 'waiting'",
        )
        .bind(end.as_str())
        .bind(Timestamp::now())
        .bind(seq)
        .bind(&owner.0)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    async fn waiting_runs(&self) -> Result<Vec<WaitingRun>> {
        let rows =
            sqlx::query("SELECT * FROM protection_runs WHERE state = 'waiting' ORDER BY seq")
                .fetch_all(&self.pool)
                .await?;
        runs_from_rows(&rows)
    }

    async fn release_runs(&self) -> Result<u64> {
        looks::release(self, TABLE, OPEN).await
    }
}
