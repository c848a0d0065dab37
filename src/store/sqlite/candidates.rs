//! Auto-deploy candidates on SQLite: one writer, so a look's lease is an
//! UPDATE of the due rows in one transaction.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, Row, params};

use super::{DeploymentId, Owner, Result, SqliteStore, Timestamp, looks};
use crate::store::candidates::*;

const TABLE: &str = "auto_candidates";
const OPEN: &str = "state = 'waiting'";

fn candidate_from_row(r: &Row<'_>) -> rusqlite::Result<Candidate> {
    let state: String = r.get("state")?;
    Ok(Candidate {
        seq: r.get("seq")?,
        offer: NewCandidate {
            repository: r.get("repository")?,
            environment: r.get("environment")?,
            sha: r.get("sha")?,
            source: source_of(
                r.get("branch")?,
                r.get("from_environment")?,
                r.get("from_deployment")?,
            ),
            installation_id: r.get("installation_id")?,
            due_at: r.get("due_at")?,
        },
        created_at: r.get("created_at")?,
        state: CandidateState::from_parts(&state, r.get("deployment_id")?, r.get("reason")?),
        sent: r.get::<_, Option<i64>>("sent_at")?.is_some(),
    })
}

#[async_trait]
impl Candidates for SqliteStore {
    async fn offer_candidate(&self, offer: &NewCandidate) -> Result<bool> {
        let c = offer.clone();
        self.write(move |tx| {
            let now = Timestamp::now();
            let (branch, from_env, from_dep) = source_columns(&c.source);
            let added = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO auto_candidates (repository, environment, sha, branch,
                         from_environment, from_deployment, installation_id, created_at, due_at,
                         next_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)",
                )?
                .execute(params![
                    c.repository,
                    c.environment,
                    c.sha,
                    branch,
                    from_env,
                    from_dep,
                    c.installation_id,
                    now,
                    c.due_at
                ])?;
            if added == 0 {
                return Ok(false);
            }
            tx.prepare_cached(
                "UPDATE auto_candidates SET state = 'replaced', settled_at = ?1
                 WHERE repository = ?2 AND environment = ?3 AND sha <> ?4
                   AND state = 'waiting' AND sent_at IS NULL",
            )?
            .execute(params![now, c.repository, c.environment, c.sha])?;
            Ok(true)
        })
        .await
    }

    async fn due_candidates(
        &self,
        owner: &Owner,
        now: Timestamp,
        until: Timestamp,
        limit: i64,
    ) -> Result<Vec<Candidate>> {
        let when = (now, until, limit);
        looks::take_due(self, TABLE, OPEN, owner, when, candidate_from_row).await
    }

    async fn candidate_later(&self, seq: i64, owner: &Owner, at: Timestamp) -> Result<bool> {
        looks::later(self, TABLE, OPEN, seq, owner, at).await
    }

    async fn candidate_sending(&self, seq: i64, owner: &Owner, until: Timestamp) -> Result<bool> {
        let owner = owner.0.clone();
        self.write(move |tx| {
            let n = tx
                .prepare_cached(
                    "UPDATE auto_candidates SET sent_at = COALESCE(sent_at, ?1), next_at = ?4
                     WHERE seq = ?2 AND lease_owner = ?3 AND state = 'waiting'",
                )?
                .execute(params![Timestamp::now(), seq, owner, until])?;
            Ok(n == 1)
        })
        .await
    }

    async fn release_candidates(&self) -> Result<u64> {
        looks::release(self, TABLE, OPEN).await
    }

    async fn settle_candidate(
        &self,
        seq: i64,
        owner: &Owner,
        end: &CandidateState,
    ) -> Result<bool> {
        let owner = owner.0.clone();
        let end = end.clone();
        self.write(move |tx| {
            let (kind, deployment, reason) = end.to_parts();
            let n = tx
                .prepare_cached(
                    "UPDATE auto_candidates
                     SET state = ?1, deployment_id = ?2, reason = ?3, settled_at = ?4,
                         lease_owner = NULL
                     WHERE seq = ?5 AND lease_owner = ?6 AND state = 'waiting'",
                )?
                .execute(params![
                    kind,
                    deployment,
                    reason,
                    Timestamp::now(),
                    seq,
                    owner
                ])?;
            Ok(n == 1)
        })
        .await
    }

    async fn candidates_look_again(&self, repository: &str, sha: &str) -> Result<u64> {
        let (repository, sha) = (repository.to_string(), sha.to_string());
        self.write(move |tx| {
            let now = Timestamp::now();
            let n = tx
                .prepare_cached(
                    "UPDATE auto_candidates SET next_at = ?1
                     WHERE repository = ?2 AND sha = ?3 AND state = 'waiting'
                       AND due_at <= ?1 AND next_at > ?1 AND lease_owner IS NULL",
                )?
                .execute(params![now, repository, sha])?;
            Ok(n as u64)
        })
        .await
    }

    async fn candidate_of(&self, id: DeploymentId) -> Result<Option<Candidate>> {
        self.read(move |c| {
            c.prepare_cached(
                "SELECT * FROM auto_candidates WHERE deployment_id = ? ORDER BY seq DESC LIMIT 1",
            )?
            .query_row(params![id.0], candidate_from_row)
            .optional()
        })
        .await
    }

    async fn candidates_of(
        &self,
        repository: &str,
        environment: &str,
        limit: i64,
    ) -> Result<Vec<Candidate>> {
        let (repository, environment) = (repository.to_string(), environment.to_string());
        self.read(move |c| {
            c.prepare_cached(
                "SELECT * FROM auto_candidates WHERE repository = ? AND environment = ?
                 ORDER BY seq DESC LIMIT ?",
            )?
            .query_map(params![repository, environment, limit], candidate_from_row)?
            .collect()
        })
        .await
    }
}
