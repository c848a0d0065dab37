//! Steps left on hosts that did not answer, on SQLite: the rows of
//! `remote_steps` whose deployment has ended. Claims skip their
//! environment (`RUNNABLE` in `mod.rs`).

use async_trait::async_trait;
use rusqlite::{Row, params};

use super::{DeploymentId, Hold, RemoteStep, Result, SqliteStore};
use crate::store::Holds;

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
impl Holds for SqliteStore {
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
