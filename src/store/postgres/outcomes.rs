//! What deployments came to, on PostgreSQL: each due commit-time look is
//! taken by one replica (`FOR UPDATE SKIP LOCKED`).

use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::PgRow;

use super::{DeploymentId, Owner, PgStore, Result, State, Timestamp, looks};
use crate::store::outcomes::*;
use crate::store::outcomes::{ENDED, IS_ENDED};

const TABLE: &str = "commit_times";
const OPEN: &str = "done_at IS NULL";

fn ended_from_row(r: &PgRow) -> std::result::Result<Ended, sqlx::Error> {
    let state: String = r.try_get("state")?;
    Ok(Ended {
        id: DeploymentId(r.try_get("id")?),
        repository: r.try_get("repository")?,
        environment: r.try_get("environment")?,
        state: State::parse(&state).unwrap_or(State::Error),
        started_at: r.try_get("started_at")?,
        finished_at: r.try_get("finished_at")?,
        cancelled: r.try_get("cancelled")?,
        rollback: r.try_get("rollback")?,
        committed_at: r.try_get("committed_at")?,
    })
}

fn all_ended(rows: &[PgRow]) -> Result<Vec<Ended>> {
    Ok(rows
        .iter()
        .map(ended_from_row)
        .collect::<std::result::Result<_, _>>()?)
}

fn look_from_row(r: &PgRow) -> std::result::Result<CommitLook, sqlx::Error> {
    Ok(CommitLook {
        seq: r.try_get("seq")?,
        deployment: DeploymentId(r.try_get("deployment_id")?),
        repository: r.try_get("repository")?,
        sha: r.try_get("sha")?,
        installation_id: r.try_get("installation_id")?,
        attempts: r.try_get("attempts")?,
    })
}

#[async_trait]
impl Outcomes for PgStore {
    async fn ended_since(
        &self,
        since: Timestamp,
        environment: Option<(&str, &str)>,
    ) -> Result<Vec<Ended>> {
        let rows = match environment {
            None => {
                let sql = format!(
                    "{ENDED} WHERE d.finished_at >= $1 AND {IS_ENDED}
                     ORDER BY d.finished_at, d.id"
                );
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(since)
                    .fetch_all(&self.pool)
                    .await?
            }
            Some((repository, environment)) => {
                let sql = format!(
                    "{ENDED} WHERE d.repository = $1 AND d.environment = $2
                         AND d.finished_at >= $3 AND {IS_ENDED}
                     ORDER BY d.finished_at, d.id"
                );
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(repository)
                    .bind(environment)
                    .bind(since)
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        all_ended(&rows)
    }

    async fn ended(&self, id: DeploymentId) -> Result<Option<Ended>> {
        let sql = format!("{ENDED} WHERE d.id = $1 AND {IS_ENDED}");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.0)
            .fetch_all(&self.pool)
            .await?;
        Ok(all_ended(&rows)?.into_iter().next())
    }

    async fn ended_before(&self, id: DeploymentId, limit: i64) -> Result<Vec<Ended>> {
        let sql = format!(
            "{ENDED} JOIN deployments me ON me.id = $1
             WHERE d.repository = me.repository AND d.environment = me.environment
               AND d.finished_at <= me.finished_at AND d.id <> me.id AND {IS_ENDED}
             ORDER BY d.finished_at DESC, d.id DESC LIMIT $2"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.0)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        all_ended(&rows)
    }

    async fn record_rollback(&self, id: DeploymentId, kind: RollbackKind) -> Result<()> {
        sqlx::query(
            "INSERT INTO rollbacks (deployment_id, kind, at) VALUES ($1, $2, $3)
             ON CONFLICT (deployment_id) DO NOTHING",
        )
        .bind(id.0)
        .bind(kind.as_str())
        .bind(Timestamp::now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn due_commit_looks(
        &self,
        owner: &Owner,
        now: Timestamp,
        until: Timestamp,
        limit: i64,
    ) -> Result<Vec<CommitLook>> {
        let when = (now, until, limit);
        looks::take_due(self, TABLE, OPEN, owner, when, look_from_row).await
    }

    async fn known_commit_time(&self, repository: &str, sha: &str) -> Result<Option<Timestamp>> {
        Ok(sqlx::query_scalar(
            "SELECT committed_at FROM commit_times
             WHERE repository = $1 AND sha = $2 AND committed_at IS NOT NULL LIMIT 1",
        )
        .bind(repository)
        .bind(sha)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn commit_look_done(
        &self,
        seq: i64,
        owner: &Owner,
        committed_at: Option<Timestamp>,
        error: Option<&str>,
    ) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE commit_times SET committed_at = $1, last_error = $2, done_at = $3,
                 lease_owner = NULL, attempts = attempts + 1
             WHERE seq = $4 AND lease_owner = $5 AND done_at IS NULL",
        )
        .bind(committed_at)
        .bind(error)
        .bind(Timestamp::now())
        .bind(seq)
        .bind(&owner.0)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    async fn commit_look_later(
        &self,
        seq: i64,
        owner: &Owner,
        at: Timestamp,
        error: &str,
    ) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE commit_times SET next_at = $1, last_error = $2, lease_owner = NULL,
                 attempts = attempts + 1
             WHERE seq = $3 AND lease_owner = $4 AND done_at IS NULL",
        )
        .bind(at)
        .bind(error)
        .bind(seq)
        .bind(&owner.0)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    async fn release_commit_looks(&self) -> Result<u64> {
        looks::release(self, TABLE, OPEN).await
    }
}
