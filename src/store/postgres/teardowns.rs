//! Teardowns on PostgreSQL: queued under the environment's advisory lock
//! (the one intake takes), so replicas that hear of the same closed pull
//! request, or sweep the same idle environment, queue one teardown.

use async_trait::async_trait;
use sqlx::{Postgres, Transaction};

use crate::store::{
    Claim, Deployment, DeploymentId, NewStatus, Result, SUPERSEDED_BY_TEARDOWN, State, StatusState,
    TORN_DOWN, TeardownCause, TeardownQueued, Teardowns,
};

use super::{DEPLOYMENT_COLUMNS, PgStore, Timestamp, deployment_from_row, insert_status};

/// The latest deployment of each environment (teardowns aside), as a
/// condition on `d`.
const LATEST: &str = "d.id >= 0 AND d.seq = (SELECT MAX(m.seq) FROM deployments m
     WHERE m.repository = d.repository AND m.environment = d.environment AND m.id >= 0)";

/// Queues the `inactive` status, with `description`, of each of `ids`.
async fn inactive(
    tx: &mut Transaction<'static, Postgres>,
    ids: &[DeploymentId],
    description: &str,
    now: Timestamp,
) -> std::result::Result<(), sqlx::Error> {
    let status = NewStatus::new(StatusState::Inactive, description.to_string());
    for id in ids {
        insert_status(tx, *id, &status, now).await?;
    }
    Ok(())
}

#[async_trait]
impl Teardowns for PgStore {
    async fn latest_deployments(&self, repository: &str) -> Result<Vec<Deployment>> {
        let sql = format!(
            "SELECT {DEPLOYMENT_COLUMNS} FROM deployments d WHERE d.repository = $1 AND {LATEST}
             ORDER BY d.seq"
        );
        self.deployments(sqlx::query(sqlx::AssertSqlSafe(sql)).bind(repository))
            .await
    }

    async fn ended_transient(&self) -> Result<Vec<Deployment>> {
        let sql = format!(
            "SELECT {DEPLOYMENT_COLUMNS} FROM deployments d
             WHERE d.transient AND d.finished_at IS NOT NULL AND {LATEST}
             AND NOT EXISTS (SELECT 1 FROM deployments t
                 WHERE t.repository = d.repository AND t.environment = d.environment
                 AND t.id < 0 AND t.seq > d.seq)
             ORDER BY d.finished_at"
        );
        self.deployments(sqlx::query(sqlx::AssertSqlSafe(sql)))
            .await
    }

    async fn queue_teardown(
        &self,
        repository: &str,
        environment: &str,
        cause: &TeardownCause,
    ) -> Result<TeardownQueued> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1 || E'\\n' || $2, 0))")
            .bind(repository)
            .bind(environment)
            .execute(&mut *tx)
            .await?;
        let sql = format!(
            "SELECT {DEPLOYMENT_COLUMNS}, seq FROM deployments
             WHERE repository = $1 AND environment = $2 AND id >= 0
             ORDER BY seq DESC LIMIT 1"
        );
        let Some(row) = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(repository)
            .bind(environment)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(TeardownQueued::NoDeployment);
        };
        let latest = deployment_from_row(&row)?;
        let seq: i64 = sqlx::Row::try_get(&row, "seq")?;
        if !cause.applies_to(&latest) {
            return Ok(TeardownQueued::NotApplicable(Box::new(latest)));
        }
        let sql = format!(
            "SELECT {DEPLOYMENT_COLUMNS} FROM deployments
             WHERE repository = $1 AND environment = $2 AND id < 0 AND seq > $3
             ORDER BY seq DESC LIMIT 1"
        );
        let since = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(repository)
            .bind(environment)
            .bind(seq)
            .fetch_optional(&mut *tx)
            .await?
            .as_ref()
            .map(deployment_from_row)
            .transpose()?;
        if let Some(t) = since
            && (cause.automatic()
                || matches!(t.state, State::Queued | State::Running | State::Success))
        {
            return Ok(TeardownQueued::Already(t));
        }
        let now = Timestamp::now();
        let superseded = supersede_waiting(&mut tx, repository, environment, now).await?;
        let sql = format!(
            "INSERT INTO deployments (id, repository, environment, task, git_ref, sha,
                 payload, creator, production, transient, installation_id, state, description,
                 created_at, teardown_of)
             SELECT -nextval('teardown_ids'), repository, environment, task, git_ref, sha,
                 payload, creator, production, transient, installation_id, 'queued', $1, $2, id
             FROM deployments WHERE id = $3
             RETURNING {DEPLOYMENT_COLUMNS}"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(cause.describe())
            .bind(now)
            .bind(latest.id.0)
            .fetch_one(&mut *tx)
            .await?;
        let teardown = deployment_from_row(&row)?;
        tx.commit().await?;
        Ok(TeardownQueued::Queued {
            teardown,
            superseded,
        })
    }

    async fn finish_teardown(
        &self,
        claim: Claim,
        state: State,
        description: &str,
    ) -> Result<Option<Vec<DeploymentId>>> {
        debug_assert!(state.is_final());
        let now = Timestamp::now();
        let mut tx = self.pool.begin().await?;
        let ended: Option<(String, String, i64)> = sqlx::query_as(
            "UPDATE deployments SET state = $1, description = $2, finished_at = $3,
                 lease_until = NULL
             WHERE id = $4 AND attempt = $5 AND state = 'running'
             RETURNING repository, environment, seq",
        )
        .bind(state.as_str())
        .bind(description)
        .bind(now)
        .bind(claim.id.0)
        .bind(claim.attempt as i32)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((repository, environment, seq)) = ended else {
            return Ok(None);
        };
        let mut gone = Vec::new();
        if state == State::Success {
            gone = sqlx::query_scalar(
                "UPDATE deployments SET state = 'inactive', description = $1
                 WHERE repository = $2 AND environment = $3 AND id >= 0 AND seq < $4
                 AND state IN ('success', 'failure', 'error')
                 RETURNING id",
            )
            .bind(TORN_DOWN)
            .bind(&repository)
            .bind(&environment)
            .bind(seq)
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .map(DeploymentId)
            .collect();
            gone.sort();
            inactive(&mut tx, &gone, TORN_DOWN, now).await?;
        }
        tx.commit().await?;
        Ok(Some(gone))
    }
}

/// The environment's waiting deployments become inactive, superseded by
/// its teardown (each with that status); which, in order.
async fn supersede_waiting(
    tx: &mut Transaction<'static, Postgres>,
    repository: &str,
    environment: &str,
    now: Timestamp,
) -> Result<Vec<DeploymentId>> {
    let mut superseded: Vec<DeploymentId> = sqlx::query_scalar(
        "UPDATE deployments SET state = 'inactive', finished_at = $1, description = $2
         WHERE repository = $3 AND environment = $4 AND state = 'queued' AND id >= 0
         RETURNING id",
    )
    .bind(now)
    .bind(SUPERSEDED_BY_TEARDOWN)
    .bind(repository)
    .bind(environment)
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .map(DeploymentId)
    .collect();
    superseded.sort();
    inactive(tx, &superseded, SUPERSEDED_BY_TEARDOWN, now).await?;
    Ok(superseded)
}
