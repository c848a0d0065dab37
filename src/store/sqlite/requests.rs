//! Deployments asked for from the command line, on SQLite: one box, so
//! the clock of the command and of the daemon is the same.

use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{OptionalExtension, Row, params};

use super::{DeploymentId, Owner, Result, SqliteStore, Timestamp};
use crate::store::requests::{
    DeployRequest, RequestAnswer, RequestState, Requests, TakenRequest, state_of,
};

fn request_from_row(r: &Row<'_>) -> rusqlite::Result<DeployRequest> {
    Ok(DeployRequest {
        actor: r.get("actor")?,
        repository: r.get("repository")?,
        environment: r.get("environment")?,
        git_ref: r.get("git_ref")?,
        task: r.get("task")?,
        payload: r.get("payload")?,
        description: r.get("description")?,
        skip_contexts: r.get("skip_contexts")?,
        production: r.get("production")?,
        transient: r.get("transient")?,
        rollback_of: r.get::<_, Option<i64>>("rollback_of")?.map(DeploymentId),
    })
}

fn state_from_row(r: &Row<'_>) -> rusqlite::Result<RequestState> {
    let kind: Option<String> = r.get("answer_kind")?;
    let answer = match kind {
        Some(k) => Some((
            k,
            r.get("answer_deployment")?,
            r.get::<_, Option<String>>("answer_text")?
                .unwrap_or_default(),
        )),
        None => None,
    };
    Ok(state_of(
        answer,
        r.get("taken_by")?,
        r.get::<_, Option<i64>>("withdrawn_at")?.is_some(),
    ))
}

#[async_trait]
impl Requests for SqliteStore {
    async fn request_deployment(&self, q: &DeployRequest, within: Duration) -> Result<i64> {
        let q = q.clone();
        self.write(move |tx| {
            let now = Timestamp::now();
            tx.prepare_cached(
                "INSERT INTO deploy_requests (actor, repository, environment, git_ref, task,
                     payload, description, skip_contexts, production, transient, rollback_of,
                     created_at, deadline)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                 RETURNING seq",
            )?
            .query_row(
                params![
                    q.actor,
                    q.repository,
                    q.environment,
                    q.git_ref,
                    q.task,
                    q.payload,
                    q.description,
                    q.skip_contexts,
                    q.production,
                    q.transient,
                    q.rollback_of.map(|d| d.0),
                    now,
                    now + within
                ],
                |r| r.get(0),
            )
        })
        .await
    }

    async fn take_request(&self, owner: &Owner, margin: Duration) -> Result<Option<TakenRequest>> {
        // Asked twice a second: a read finds "nothing" without the writer.
        let any = self
            .read(move |c| {
                c.prepare_cached(
                    "SELECT seq FROM deploy_requests
                     WHERE taken_at IS NULL AND withdrawn_at IS NULL AND deadline > ? LIMIT 1",
                )?
                .query_row(params![Timestamp::now() + margin], |r| r.get::<_, i64>(0))
                .optional()
            })
            .await?;
        if any.is_none() {
            return Ok(None);
        }
        let owner = owner.0.clone();
        self.write(move |tx| {
            let now = Timestamp::now();
            tx.prepare_cached(
                "UPDATE deploy_requests SET taken_at = ?, taken_by = ? WHERE seq = (
                     SELECT seq FROM deploy_requests
                     WHERE taken_at IS NULL AND withdrawn_at IS NULL AND deadline > ?
                     ORDER BY seq LIMIT 1)
                 RETURNING *",
            )?
            .query_row(params![now, owner, now + margin], |r| {
                Ok(TakenRequest {
                    seq: r.get("seq")?,
                    request: request_from_row(r)?,
                    left: r.get::<_, Timestamp>("deadline")? - now,
                })
            })
            .optional()
        })
        .await
    }

    async fn answer_request(&self, seq: i64, answer: &RequestAnswer) -> Result<()> {
        let (kind, deployment, text) = answer.to_parts();
        self.write(move |tx| {
            tx.prepare_cached(
                "UPDATE deploy_requests SET answer_kind = ?, answer_deployment = ?, answer_text = ?
                 WHERE seq = ?",
            )?
            .execute(params![kind, deployment, text, seq])
            .map(drop)
        })
        .await
    }

    async fn request_state(&self, seq: i64) -> Result<Option<RequestState>> {
        self.read(move |c| {
            c.prepare_cached("SELECT * FROM deploy_requests WHERE seq = ?")?
                .query_row(params![seq], state_from_row)
                .optional()
        })
        .await
    }

    async fn withdraw_request(&self, seq: i64) -> Result<Option<RequestState>> {
        self.write(move |tx| {
            tx.prepare_cached(
                "UPDATE deploy_requests SET withdrawn_at = ?
                 WHERE seq = ? AND taken_at IS NULL AND withdrawn_at IS NULL",
            )?
            .execute(params![Timestamp::now(), seq])?;
            tx.prepare_cached("SELECT * FROM deploy_requests WHERE seq = ?")?
                .query_row(params![seq], state_from_row)
                .optional()
        })
        .await
    }
}
