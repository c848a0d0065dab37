//! What started deployments, on PostgreSQL.

use std::collections::HashMap;

use async_trait::async_trait;
use sqlx::Row;

use super::{DeploymentId, PgStore, Result};
use crate::store::candidates::source_of;
use crate::store::origins::{Origin, Origins};

#[async_trait]
impl Origins for PgStore {
    async fn origins(&self, ids: &[DeploymentId]) -> Result<HashMap<DeploymentId, Origin>> {
        let ids: Vec<i64> = ids.iter().map(|d| d.0).collect();
        let mut found = HashMap::new();
        let requests = sqlx::query(
            "SELECT answer_deployment, actor, rollback_of FROM deploy_requests
             WHERE answer_kind = 'created' AND answer_deployment = ANY($1)",
        )
        .bind(&ids)
        .fetch_all(&self.pool)
        .await?;
        for r in &requests {
            found.insert(
                DeploymentId(r.try_get(0)?),
                Origin::Command {
                    actor: r.try_get(1)?,
                    rollback_of: r.try_get::<Option<i64>, _>(2)?.map(DeploymentId),
                },
            );
        }
        let candidates = sqlx::query(
            "SELECT deployment_id, branch, from_environment, from_deployment FROM auto_candidates
             WHERE state = 'created' AND deployment_id = ANY($1)",
        )
        .bind(&ids)
        .fetch_all(&self.pool)
        .await?;
        for r in &candidates {
            found.insert(
                DeploymentId(r.try_get(0)?),
                Origin::Auto(source_of(r.try_get(1)?, r.try_get(2)?, r.try_get(3)?)),
            );
        }
        let commands = sqlx::query(
            "SELECT deployment_id, number, login FROM pr_commands WHERE deployment_id = ANY($1)",
        )
        .bind(&ids)
        .fetch_all(&self.pool)
        .await?;
        for r in &commands {
            found.insert(
                DeploymentId(r.try_get(0)?),
                Origin::PullRequest {
                    number: r.try_get(1)?,
                    login: r.try_get(2)?,
                },
            );
        }
        Ok(found)
    }
}
