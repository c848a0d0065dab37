//! What operators did through the command line, on PostgreSQL, until one
//! replica has written it to its log.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::PgRow;

use super::{DeploymentId, OperatorAction, PgStore, Result, Timestamp};
use crate::store::Actions;

fn action_from_row(r: &PgRow) -> std::result::Result<OperatorAction, sqlx::Error> {
    Ok(OperatorAction {
        seq: r.try_get("seq")?,
        at: r.try_get("at")?,
        actor: r.try_get("actor")?,
        action: r.try_get("action")?,
        repository: r.try_get("repository")?,
        environment: r.try_get("environment")?,
        deployment: r
            .try_get::<Option<i64>, _>("deployment_id")?
            .map(DeploymentId),
        detail: r.try_get("detail")?,
    })
}

#[async_trait]
impl Actions for PgStore {
    async fn record_action(&self, a: &OperatorAction) -> Result<()> {
        sqlx::query(
            "INSERT INTO operator_actions
                 (at, actor, action, repository, environment, deployment_id, detail)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(a.at)
        .bind(&a.actor)
        .bind(&a.action)
        .bind(&a.repository)
        .bind(&a.environment)
        .bind(a.deployment.map(|d| d.0))
        .bind(&a.detail)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn take_actions(&self, limit: i64) -> Result<Vec<OperatorAction>> {
        // SKIP LOCKED: replicas polling together each take different rows,
        // and every row is taken by one of them.
        let rows = sqlx::query(
            "UPDATE operator_actions SET logged_at = $1 WHERE seq IN (
                 SELECT seq FROM operator_actions WHERE logged_at IS NULL
                 ORDER BY seq LIMIT $2 FOR UPDATE SKIP LOCKED)
             RETURNING *",
        )
        .bind(Timestamp::now())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut taken = rows
            .iter()
            .map(action_from_row)
            .collect::<std::result::Result<Vec<_>, _>>()?;
        taken.sort_by_key(|a| a.seq);
        Ok(taken)
    }
    async fn actions_on(&self, id: DeploymentId) -> Result<Vec<OperatorAction>> {
        let rows =
            sqlx::query("SELECT * FROM operator_actions WHERE deployment_id = $1 ORDER BY seq")
                .bind(id.0)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .iter()
            .map(action_from_row)
            .collect::<std::result::Result<Vec<_>, _>>()?)
    }
}
