//! Steps left on hosts that did not answer, on PostgreSQL: the rows of
//! `remote_steps` whose deployment has ended. Claims skip their
//! environment (`claim_next` in `mod.rs`), on every replica.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::PgRow;

use super::{DeploymentId, Hold, PgStore, RemoteStep, Result};
use crate::store::Holds;

const HOLDS: &str = "SELECT d.repository, d.environment, s.deployment_id, s.host, s.pgid, s.boot_id
     FROM remote_steps s JOIN deployments d ON d.id = s.deployment_id
     WHERE d.state NOT IN ('queued', 'running')";

fn hold_from_row(r: &PgRow) -> std::result::Result<Hold, sqlx::Error> {
    Ok(Hold {
        repository: r.try_get(0)?,
        environment: r.try_get(1)?,
        deployment: DeploymentId(r.try_get(2)?),
        step: RemoteStep {
            host: r.try_get(3)?,
            pgid: r.try_get(4)?,
            boot_id: r.try_get(5)?,
        },
    })
}

#[async_trait]
impl Holds for PgStore {
    async fn holds(&self) -> Result<Vec<Hold>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{HOLDS} ORDER BY s.deployment_id, s.host"
        )))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(hold_from_row)
            .collect::<std::result::Result<_, _>>()?)
    }

    async fn release_holds(&self, repository: &str, environment: &str) -> Result<Vec<Hold>> {
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{HOLDS} AND d.repository = $1 AND d.environment = $2
             ORDER BY s.deployment_id, s.host FOR UPDATE OF s"
        )))
        .bind(repository)
        .bind(environment)
        .fetch_all(&mut *tx)
        .await?;
        let held: Vec<Hold> = rows
            .iter()
            .map(hold_from_row)
            .collect::<std::result::Result<_, _>>()?;
        for h in &held {
            sqlx::query("DELETE FROM remote_steps WHERE deployment_id = $1 AND host = $2")
                .bind(h.deployment.0)
                .bind(&h.step.host)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(held)
    }
}
