//! Steps on hosts on PostgreSQL: the process group of each running step, kept
//! until ferry has ended it; the ones whose deployment ended are holds
//! (claims skip their environment).

use async_trait::async_trait;

use super::*;
use crate::store::Steps;

/// Each step's deployment is looked up by its key (`OFFSET 0` keeps the
/// planner from making it a join, which hashed the whole deployments
/// table for the one step on a host while statistics lagged a burst).
const HOLDS: &str = "SELECT d.repository, d.environment, s.deployment_id, s.host, s.pgid, s.boot_id
     FROM remote_steps s CROSS JOIN LATERAL (
         SELECT h.repository, h.environment, h.state FROM deployments h
         WHERE h.id = s.deployment_id OFFSET 0) d
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
impl Steps for PgStore {
    async fn remember_step(
        &self,
        id: DeploymentId,
        host: &str,
        pgid: u32,
        boot_id: &str,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO remote_steps (deployment_id, host, pgid, boot_id) VALUES ($1, $2, $3, $4)
             ON CONFLICT (deployment_id, host) DO UPDATE
             SET pgid = excluded.pgid, boot_id = excluded.boot_id",
        )
        .bind(id.0)
        .bind(host)
        .bind(i64::from(pgid))
        .bind(boot_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn forget_step(&self, id: DeploymentId, host: &str) -> Result<()> {
        sqlx::query("DELETE FROM remote_steps WHERE deployment_id = $1 AND host = $2")
            .bind(id.0)
            .bind(host)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn remote_steps(&self, id: DeploymentId) -> Result<Vec<RemoteStep>> {
        let rows: Vec<(String, i64, String)> = sqlx::query_as(
            "SELECT host, pgid, boot_id FROM remote_steps WHERE deployment_id = $1 ORDER BY host",
        )
        .bind(id.0)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(host, pgid, boot_id)| RemoteStep {
                host,
                pgid,
                boot_id,
            })
            .collect())
    }

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
