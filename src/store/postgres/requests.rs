//! Deployments asked for from the command line, on PostgreSQL. The
//! deadline is on the database's clock, which the command and every
//! replica share whatever their own clocks say.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::PgRow;

use super::{DeploymentId, Owner, PgStore, Result};
use crate::store::requests::{
    DeployRequest, RequestAnswer, RequestState, Requests, TakenRequest, state_of,
};

/// The database's time, in ms since the epoch.
const DB_NOW: &str = "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)";

fn request_from_row(r: &PgRow) -> std::result::Result<DeployRequest, sqlx::Error> {
    Ok(DeployRequest {
        actor: r.try_get("actor")?,
        repository: r.try_get("repository")?,
        environment: r.try_get("environment")?,
        git_ref: r.try_get("git_ref")?,
        task: r.try_get("task")?,
        payload: r.try_get("payload")?,
        description: r.try_get("description")?,
        skip_contexts: r.try_get("skip_contexts")?,
        production: r.try_get("production")?,
        transient: r.try_get("transient")?,
        rollback_of: r
            .try_get::<Option<i64>, _>("rollback_of")?
            .map(DeploymentId),
    })
}

fn state_from_row(r: &PgRow) -> std::result::Result<RequestState, sqlx::Error> {
    let kind: Option<String> = r.try_get("answer_kind")?;
    let answer = match kind {
        Some(k) => Some((
            k,
            r.try_get("answer_deployment")?,
            r.try_get::<Option<String>, _>("answer_text")?
                .unwrap_or_default(),
        )),
        None => None,
    };
    Ok(state_of(
        answer,
        r.try_get("taken_by")?,
        r.try_get::<Option<i64>, _>("withdrawn_at")?.is_some(),
    ))
}

#[async_trait]
impl Requests for PgStore {
    async fn request_deployment(&self, q: &DeployRequest, within: Duration) -> Result<i64> {
        let sql = format!(
            "INSERT INTO deploy_requests (actor, repository, environment, git_ref, task,
                 payload, description, skip_contexts, production, transient, rollback_of,
                 created_at, deadline)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, {DB_NOW}, {DB_NOW} + $12)
             RETURNING seq"
        );
        Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(&q.actor)
            .bind(&q.repository)
            .bind(&q.environment)
            .bind(&q.git_ref)
            .bind(&q.task)
            .bind(&q.payload)
            .bind(&q.description)
            .bind(q.skip_contexts)
            .bind(q.production)
            .bind(q.transient)
            .bind(q.rollback_of.map(|d| d.0))
            .bind(within.as_millis() as i64)
            .fetch_one(&self.pool)
            .await?)
    }

    async fn take_request(&self, owner: &Owner, margin: Duration) -> Result<Option<TakenRequest>> {
        // SKIP LOCKED: replicas polling together take different requests,
        // and each request is taken by one of them.
        let sql = format!(
            "UPDATE deploy_requests SET taken_at = {DB_NOW}, taken_by = $1 WHERE seq = (
                 SELECT seq FROM deploy_requests
                 WHERE taken_at IS NULL AND withdrawn_at IS NULL AND deadline > {DB_NOW} + $2
                 ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED)
             RETURNING *, deadline - {DB_NOW} AS left_ms"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&owner.0)
            .bind(margin.as_millis() as i64)
            .fetch_optional(&self.pool)
            .await?;
        let Some(r) = row else { return Ok(None) };
        Ok(Some(TakenRequest {
            seq: r.try_get("seq")?,
            request: request_from_row(&r)?,
            left: Duration::from_millis(r.try_get::<i64, _>("left_ms")?.max(0) as u64),
        }))
    }

    async fn answer_request(&self, seq: i64, answer: &RequestAnswer) -> Result<()> {
        let (kind, deployment, text) = answer.to_parts();
        sqlx::query(
            "UPDATE deploy_requests SET answer_kind = $1, answer_deployment = $2, answer_text = $3
             WHERE seq = $4",
        )
        .bind(kind)
        .bind(deployment)
        .bind(text)
        .bind(seq)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn request_state(&self, seq: i64) -> Result<Option<RequestState>> {
        let row = sqlx::query("SELECT * FROM deploy_requests WHERE seq = $1")
            .bind(seq)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(state_from_row).transpose()?)
    }

    async fn withdraw_request(&self, seq: i64) -> Result<Option<RequestState>> {
        let sql = format!(
            "UPDATE deploy_requests SET withdrawn_at = {DB_NOW}
             WHERE seq = $1 AND taken_at IS NULL AND withdrawn_at IS NULL"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(seq)
            .execute(&self.pool)
            .await?;
        self.request_state(seq).await
    }
}
