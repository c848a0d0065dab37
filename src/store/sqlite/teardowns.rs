//! Teardowns on SQLite: queued and finished on the writer thread, each in
//! one transaction with the statuses they cause.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, Transaction, params};

use crate::store::{
    Claim, Deployment, DeploymentId, NewStatus, Result, SUPERSEDED_BY_TEARDOWN, State, StatusState,
    TORN_DOWN, TeardownCause, TeardownQueued, Teardowns,
};

use super::{DEPLOYMENT_COLUMNS, SqliteStore, Timestamp, deployment_from_row, insert_status};

/// The latest deployment of each environment (teardowns aside), as a
/// condition on `d`.
const LATEST: &str = "d.id >= 0 AND d.seq = (SELECT MAX(m.seq) FROM deployments m
     WHERE m.repository = d.repository AND m.environment = d.environment AND m.id >= 0)";

/// Marks the deployments `ids` inactive with `description`, queueing the
/// status of each.
fn inactive(
    tx: &Transaction<'_>,
    ids: &[DeploymentId],
    description: &str,
    now: Timestamp,
) -> rusqlite::Result<()> {
    let status = NewStatus::new(StatusState::Inactive, description.to_string());
    for id in ids {
        insert_status(tx, *id, &status, now)?;
    }
    Ok(())
}

fn queue(
    tx: &Transaction<'_>,
    repository: &str,
    environment: &str,
    cause: &TeardownCause,
) -> rusqlite::Result<TeardownQueued> {
    let sql = format!(
        "SELECT {DEPLOYMENT_COLUMNS}, seq FROM deployments d
         WHERE d.repository = ?1 AND d.environment = ?2 AND d.id >= 0
         ORDER BY d.seq DESC LIMIT 1"
    );
    let latest = tx
        .prepare_cached(&sql)?
        .query_row(params![repository, environment], |r| {
            Ok((deployment_from_row(r)?, r.get::<_, i64>("seq")?))
        })
        .optional()?;
    let Some((latest, seq)) = latest else {
        return Ok(TeardownQueued::NoDeployment);
    };
    if !cause.applies_to(&latest) {
        return Ok(TeardownQueued::NotApplicable(Box::new(latest)));
    }
    let sql = format!(
        "SELECT {DEPLOYMENT_COLUMNS} FROM deployments
         WHERE repository = ?1 AND environment = ?2 AND id < 0 AND seq > ?3
         ORDER BY seq DESC LIMIT 1"
    );
    let since = tx
        .prepare_cached(&sql)?
        .query_row(params![repository, environment, seq], deployment_from_row)
        .optional()?;
    if let Some(t) = since
        && (cause.automatic() || matches!(t.state, State::Queued | State::Running | State::Success))
    {
        return Ok(TeardownQueued::Already(t));
    }
    let now = Timestamp::now();
    let mut superseded: Vec<DeploymentId> = tx
        .prepare_cached(
            "UPDATE deployments SET state = 'inactive', finished_at = ?1, description = ?2
             WHERE repository = ?3 AND environment = ?4 AND state = 'queued' AND id >= 0
             RETURNING id",
        )?
        .query_map(
            params![now, SUPERSEDED_BY_TEARDOWN, repository, environment],
            |r| r.get(0).map(DeploymentId),
        )?
        .collect::<rusqlite::Result<_>>()?;
    superseded.sort();
    inactive(tx, &superseded, SUPERSEDED_BY_TEARDOWN, now)?;
    let sql = format!(
        "INSERT INTO deployments (id, seq, repository, environment, task, git_ref, sha,
             payload, creator, production, transient, installation_id, state, description,
             created_at, teardown_of)
         SELECT (SELECT MIN(MIN(id), 0) - 1 FROM deployments),
             (SELECT COALESCE(MAX(seq), 0) + 1 FROM deployments),
             repository, environment, task, git_ref, sha, payload, creator, production,
             transient, installation_id, 'queued', ?1, ?2, id
         FROM deployments WHERE id = ?3
         RETURNING {DEPLOYMENT_COLUMNS}"
    );
    let teardown = tx.prepare_cached(&sql)?.query_row(
        params![cause.describe(), now, latest.id.0],
        deployment_from_row,
    )?;
    Ok(TeardownQueued::Queued {
        teardown,
        superseded,
    })
}

#[async_trait]
impl Teardowns for SqliteStore {
    async fn latest_deployments(&self, repository: &str) -> Result<Vec<Deployment>> {
        let sql = format!(
            "SELECT {DEPLOYMENT_COLUMNS} FROM deployments d WHERE d.repository = ? AND {LATEST}
             ORDER BY d.seq"
        );
        self.deployments(sql, (repository.to_string(),)).await
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
        self.deployments(sql, ()).await
    }

    async fn queue_teardown(
        &self,
        repository: &str,
        environment: &str,
        cause: &TeardownCause,
    ) -> Result<TeardownQueued> {
        let (repository, environment, cause) = (
            repository.to_string(),
            environment.to_string(),
            cause.clone(),
        );
        self.write(move |tx| queue(tx, &repository, &environment, &cause))
            .await
    }

    async fn finish_teardown(
        &self,
        claim: Claim,
        state: State,
        description: &str,
    ) -> Result<Option<Vec<DeploymentId>>> {
        debug_assert!(state.is_final());
        let description = description.to_string();
        self.write(move |tx| {
            let now = Timestamp::now();
            let ended = tx
                .prepare_cached(
                    "UPDATE deployments SET state = ?, description = ?, finished_at = ?,
                         lease_until = NULL
                     WHERE id = ? AND attempt = ? AND state = 'running'
                     RETURNING repository, environment, seq",
                )?
                .query_row(
                    params![state.as_str(), description, now, claim.id.0, claim.attempt],
                    |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, i64>(2)?,
                        ))
                    },
                )
                .optional()?;
            let Some((repository, environment, seq)) = ended else {
                return Ok(None);
            };
            if state != State::Success {
                return Ok(Some(Vec::new()));
            }
            let mut gone: Vec<DeploymentId> = tx
                .prepare_cached(
                    "UPDATE deployments SET state = 'inactive', description = ?1
                     WHERE repository = ?2 AND environment = ?3 AND id >= 0 AND seq < ?4
                     AND state IN ('success', 'failure', 'error')
                     RETURNING id",
                )?
                .query_map(params![TORN_DOWN, repository, environment, seq], |r| {
                    r.get(0).map(DeploymentId)
                })?
                .collect::<rusqlite::Result<_>>()?;
            gone.sort();
            inactive(tx, &gone, TORN_DOWN, now)?;
            Ok(Some(gone))
        })
        .await
    }
}
