//! What deployments came to, on SQLite.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, Row, params};

use super::{DeploymentId, Owner, Result, SqliteStore, State, Timestamp, looks};
use crate::store::outcomes::*;
use crate::store::outcomes::{ENDED, IS_ENDED};

const TABLE: &str = "commit_times";
const OPEN: &str = "done_at IS NULL";

fn ended_from_row(r: &Row<'_>) -> rusqlite::Result<Ended> {
    let state: String = r.get("state")?;
    Ok(Ended {
        id: DeploymentId(r.get("id")?),
        repository: r.get("repository")?,
        environment: r.get("environment")?,
        state: State::parse(&state).unwrap_or(State::Error),
        started_at: r.get("started_at")?,
        finished_at: r.get("finished_at")?,
        cancelled: r.get("cancelled")?,
        rollback: r.get("rollback")?,
        committed_at: r.get("committed_at")?,
    })
}

fn look_from_row(r: &Row<'_>) -> rusqlite::Result<CommitLook> {
    Ok(CommitLook {
        seq: r.get("seq")?,
        deployment: DeploymentId(r.get("deployment_id")?),
        repository: r.get("repository")?,
        sha: r.get("sha")?,
        installation_id: r.get("installation_id")?,
        attempts: r.get("attempts")?,
    })
}

#[async_trait]
impl Outcomes for SqliteStore {
    async fn ended_since(
        &self,
        since: Timestamp,
        environment: Option<(&str, &str)>,
    ) -> Result<Vec<Ended>> {
        let environment = environment.map(|(r, e)| (r.to_string(), e.to_string()));
        self.read(move |c| match environment {
            None => c
                .prepare_cached(&format!(
                    "{ENDED} WHERE d.finished_at >= ?1 AND {IS_ENDED}
                     ORDER BY d.finished_at, d.id"
                ))?
                .query_map(params![since], ended_from_row)?
                .collect(),
            Some((repository, environment)) => c
                .prepare_cached(&format!(
                    "{ENDED} WHERE d.repository = ?1 AND d.environment = ?2
                         AND d.finished_at >= ?3 AND {IS_ENDED}
                     ORDER BY d.finished_at, d.id"
                ))?
                .query_map(params![repository, environment, since], ended_from_row)?
                .collect(),
        })
        .await
    }

    async fn ended(&self, id: DeploymentId) -> Result<Option<Ended>> {
        self.read(move |c| {
            c.prepare_cached(&format!("{ENDED} WHERE d.id = ?1 AND {IS_ENDED}"))?
                .query_row(params![id.0], ended_from_row)
                .optional()
        })
        .await
    }

    async fn ended_before(&self, id: DeploymentId, limit: i64) -> Result<Vec<Ended>> {
        self.read(move |c| {
            c.prepare_cached(&format!(
                "{ENDED} JOIN deployments me ON me.id = ?1
                 WHERE d.repository = me.repository AND d.environment = me.environment
                   AND d.finished_at <= me.finished_at AND d.id <> me.id AND {IS_ENDED}
                 ORDER BY d.finished_at DESC, d.id DESC LIMIT ?2"
            ))?
            .query_map(params![id.0, limit], ended_from_row)?
            .collect()
        })
        .await
    }

    async fn record_rollback(&self, id: DeploymentId, kind: RollbackKind) -> Result<()> {
        self.write(move |tx| {
            tx.prepare_cached(
                "INSERT OR IGNORE INTO rollbacks (deployment_id, kind, at) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![id.0, kind.as_str(), Timestamp::now()])?;
            Ok(())
        })
        .await
    }

    async fn due_commit_looks(
        &self,
        owner: &Owner,
        now: Timestamp,
        until: Timestamp,
        limit: i64,
    ) -> Result<Vec<CommitLook>> {
        let when = (now, until, limit);
        looks::take_due(self, TABLE, OPEN, owner, when, look_from_row).await
    }

    async fn known_commit_time(&self, repository: &str, sha: &str) -> Result<Option<Timestamp>> {
        let (repository, sha) = (repository.to_string(), sha.to_string());
        self.read(move |c| {
            c.prepare_cached(
                "SELECT committed_at FROM commit_times
                 WHERE repository = ?1 AND sha = ?2 AND committed_at IS NOT NULL LIMIT 1",
            )?
            .query_row(params![repository, sha], |r| r.get(0))
            .optional()
        })
        .await
    }

    async fn commit_look_done(
        &self,
        seq: i64,
        owner: &Owner,
        committed_at: Option<Timestamp>,
        error: Option<&str>,
    ) -> Result<bool> {
        let (owner, error) = (owner.0.clone(), error.map(str::to_string));
        self.write(move |tx| {
            let n = tx
                .prepare_cached(
                    "UPDATE commit_times SET committed_at = ?1, last_error = ?2, done_at = ?3,
                         lease_owner = NULL, attempts = attempts + 1
                     WHERE seq = ?4 AND lease_owner = ?5 AND done_at IS NULL",
                )?
                .execute(params![committed_at, error, Timestamp::now(), seq, owner])?;
            Ok(n == 1)
        })
        .await
    }

    async fn commit_look_later(
        &self,
        seq: i64,
        owner: &Owner,
        at: Timestamp,
        error: &str,
    ) -> Result<bool> {
        let (owner, error) = (owner.0.clone(), error.to_string());
        self.write(move |tx| {
            let n = tx
                .prepare_cached(
                    "UPDATE commit_times SET next_at = ?1, last_error = ?2, lease_owner = NULL,
                         attempts = attempts + 1
                     WHERE seq = ?3 AND lease_owner = ?4 AND done_at IS NULL",
                )?
                .execute(params![at, error, seq, owner])?;
            Ok(n == 1)
        })
        .await
    }

    async fn release_commit_looks(&self) -> Result<u64> {
        looks::release(self, TABLE, OPEN).await
    }
}
