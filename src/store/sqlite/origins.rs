//! What started deployments, on SQLite.

use std::collections::HashMap;

use async_trait::async_trait;
use rusqlite::params;

use super::{DeploymentId, Result, SqliteStore};
use crate::store::candidates::source_of;
use crate::store::origins::{Origin, Origins};

#[async_trait]
impl Origins for SqliteStore {
    async fn origins(&self, ids: &[DeploymentId]) -> Result<HashMap<DeploymentId, Origin>> {
        let ids = serde_json::to_string(&ids.iter().map(|d| d.0).collect::<Vec<_>>())
            .unwrap_or_else(|_| "[]".into());
        self.read(move |c| {
            let mut found = HashMap::new();
            let mut requests = c.prepare_cached(
                "SELECT answer_deployment, actor, rollback_of FROM deploy_requests
                 WHERE answer_kind = 'created'
                   AND answer_deployment IN (SELECT value FROM json_each(?))",
            )?;
            let rows = requests.query_map(params![ids], |r| {
                Ok((
                    DeploymentId(r.get(0)?),
                    Origin::Command {
                        actor: r.get(1)?,
                        rollback_of: r.get::<_, Option<i64>>(2)?.map(DeploymentId),
                    },
                ))
            })?;
            for row in rows {
                let (id, origin) = row?;
                found.insert(id, origin);
            }
            let mut candidates = c.prepare_cached(
                "SELECT deployment_id, branch, from_environment, from_deployment
                 FROM auto_candidates
                 WHERE state = 'created' AND deployment_id IN (SELECT value FROM json_each(?))",
            )?;
            let rows = candidates.query_map(params![ids], |r| {
                Ok((
                    DeploymentId(r.get(0)?),
                    Origin::Auto(source_of(r.get(1)?, r.get(2)?, r.get(3)?)),
                ))
            })?;
            for row in rows {
                let (id, origin) = row?;
                found.insert(id, origin);
            }
            let mut commands = c.prepare_cached(
                "SELECT deployment_id, number, login FROM pr_commands
                 WHERE deployment_id IN (SELECT value FROM json_each(?))",
            )?;
            let rows = commands.query_map(params![ids], |r| {
                Ok((
                    DeploymentId(r.get(0)?),
                    Origin::PullRequest {
                        number: r.get(1)?,
                        login: r.get(2)?,
                    },
                ))
            })?;
            for row in rows {
                let (id, origin) = row?;
                found.insert(id, origin);
            }
            Ok(found)
        })
        .await
    }
}
