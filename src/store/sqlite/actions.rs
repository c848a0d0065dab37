//! What operators did through the command line, on SQLite, until the
//! running ferry has written it to its log.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, Row, params};

use super::{DeploymentId, OperatorAction, Result, SqliteStore, Timestamp};
use crate::store::Actions;

fn action_from_row(r: &Row<'_>) -> rusqlite::Result<OperatorAction> {
    Ok(OperatorAction {
        seq: r.get("seq")?,
        at: r.get("at")?,
        actor: r.get("actor")?,
        action: r.get("action")?,
        repository: r.get("repository")?,
        environment: r.get("environment")?,
        deployment: r.get::<_, Option<i64>>("deployment_id")?.map(DeploymentId),
        detail: r.get("detail")?,
    })
}

#[async_trait]
impl Actions for SqliteStore {
    async fn record_action(&self, a: &OperatorAction) -> Result<()> {
        let a = a.clone();
        self.write(move |tx| {
            tx.prepare_cached(
                "INSERT INTO operator_actions
                     (at, actor, action, repository, environment, deployment_id, detail)
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
            )?
            .execute(params![
                a.at,
                a.actor,
                a.action,
                a.repository,
                a.environment,
                a.deployment.map(|d| d.0),
                a.detail
            ])
            .map(drop)
        })
        .await
    }

    async fn take_actions(&self, limit: i64) -> Result<Vec<OperatorAction>> {
        // Asked twice a second: a read finds "nothing" without the writer.
        let any = self
            .read(|c| {
                c.prepare_cached(
                    "SELECT seq FROM operator_actions WHERE logged_at IS NULL LIMIT 1",
                )?
                .query_row([], |r| r.get::<_, i64>(0))
                .optional()
            })
            .await?;
        if any.is_none() {
            return Ok(Vec::new());
        }
        self.write(move |tx| {
            let mut taken: Vec<OperatorAction> = tx
                .prepare_cached(
                    "UPDATE operator_actions SET logged_at = ? WHERE seq IN (
                         SELECT seq FROM operator_actions WHERE logged_at IS NULL
                         ORDER BY seq LIMIT ?)
                     RETURNING *",
                )?
                .query_map(params![Timestamp::now(), limit], action_from_row)?
                .collect::<rusqlite::Result<_>>()?;
            taken.sort_by_key(|a| a.seq);
            Ok(taken)
        })
        .await
    }
    async fn actions_on(&self, id: DeploymentId) -> Result<Vec<OperatorAction>> {
        self.read(move |c| {
            c.prepare_cached("SELECT * FROM operator_actions WHERE deployment_id = ? ORDER BY seq")?
                .query_map(params![id.0], action_from_row)?
                .collect()
        })
        .await
    }
}
