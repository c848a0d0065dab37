//! Steps on hosts on SQLite: the process group of each running step, kept
//! until ferry has ended it; the ones whose deployment ended are holds
//! (claims skip their environment).

use async_trait::async_trait;

use super::*;
use crate::store::Steps;

const HOLDS: &str = "SELECT d.repository, d.environment, s.deployment_id, s.host, s.pgid, s.boot_id
     FROM remote_steps s JOIN deployments d ON d.id = s.deployment_id
     WHERE d.state NOT IN ('queued', 'running')";

fn hold_from_row(r: &Row<'_>) -> rusqlite::Result<Hold> {
    Ok(Hold {
        repository: r.get(0)?,
        environment: r.get(1)?,
        deployment: DeploymentId(r.get(2)?),
        step: RemoteStep {
            host: r.get(3)?,
            pgid: r.get(4)?,
            boot_id: r.get(5)?,
        },
    })
}

#[async_trait]
impl Steps for SqliteStore {
    async fn remember_step(
        &self,
        id: DeploymentId,
        host: &str,
        pgid: u32,
        boot_id: &str,
    ) -> Result<()> {
        let (host, boot_id) = (host.to_string(), boot_id.to_string());
        self.write(move |tx| {
            tx.prepare_cached(
                "INSERT INTO remote_steps (deployment_id, host, pgid, boot_id) VALUES (?, ?, ?, ?)
                 ON CONFLICT (deployment_id, host) DO UPDATE
                 SET pgid = excluded.pgid, boot_id = excluded.boot_id",
            )?
            .execute(params![id.0, host, i64::from(pgid), boot_id])
            .map(drop)
        })
        .await
    }

    async fn forget_step(&self, id: DeploymentId, host: &str) -> Result<()> {
        let host = host.to_string();
        self.write(move |tx| {
            tx.prepare_cached("DELETE FROM remote_steps WHERE deployment_id = ? AND host = ?")?
                .execute(params![id.0, host])
                .map(drop)
        })
        .await
    }

    async fn remote_steps(&self, id: DeploymentId) -> Result<Vec<RemoteStep>> {
        self.read(move |c| {
            c.prepare_cached(
                "SELECT host, pgid, boot_id FROM remote_steps WHERE deployment_id = ? ORDER BY host",
            )?
            .query_map(params![id.0], |r| {
                Ok(RemoteStep {
                    host: r.get(0)?,
                    pgid: r.get(1)?,
                    boot_id: r.get(2)?,
                })
            })?
            .collect()
        })
        .await
    }

    async fn holds(&self) -> Result<Vec<Hold>> {
        self.read(|c| {
            c.prepare_cached(&format!("{HOLDS} ORDER BY s.deployment_id, s.host"))?
                .query_map([], hold_from_row)?
                .collect()
        })
        .await
    }

    async fn release_holds(&self, repository: &str, environment: &str) -> Result<Vec<Hold>> {
        let (repository, environment) = (repository.to_string(), environment.to_string());
        self.write(move |tx| {
            let held: Vec<Hold> = tx
                .prepare_cached(&format!(
                    "{HOLDS} AND d.repository = ? AND d.environment = ? ORDER BY s.deployment_id, s.host"
                ))?
                .query_map(params![repository, environment], hold_from_row)?
                .collect::<rusqlite::Result<_>>()?;
            let mut forget = tx
                .prepare_cached("DELETE FROM remote_steps WHERE deployment_id = ? AND host = ?")?;
            for h in &held {
                forget.execute(params![h.deployment.0, h.step.host])?;
            }
            Ok(held)
        })
        .await
    }
}
