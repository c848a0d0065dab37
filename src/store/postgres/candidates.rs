//! Auto-deploy candidates on PostgreSQL: the unique key decides between
//! replicas offering the same sha, and each due look is taken by one
//! replica (`FOR UPDATE SKIP LOCKED`).

use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::PgRow;

use super::{DeploymentId, Owner, PgStore, Result, Timestamp, looks};
use crate::store::candidates::*;

const TABLE: &str = "auto_candidates";
const OPEN: &str = "state = 'waiting'";

fn candidate_from_row(r: &PgRow) -> std::result::Result<Candidate, sqlx::Error> {
    let state: String = r.try_get("state")?;
    Ok(Candidate {
        seq: r.try_get("seq")?,
        offer: NewCandidate {
            repository: r.try_get("repository")?,
            environment: r.try_get("environment")?,
            sha: r.try_get("sha")?,
            source: source_of(
                r.try_get("branch")?,
                r.try_get("from_environment")?,
                r.try_get("from_deployment")?,
            ),
            installation_id: r.try_get("installation_id")?,
            due_at: r.try_get("due_at")?,
        },
        created_at: r.try_get("created_at")?,
        state: CandidateState::from_parts(
            &state,
            r.try_get("deployment_id")?,
            r.try_get("reason")?,
        ),
        sent: r.try_get::<Option<i64>, _>("sent_at")?.is_some(),
    })
}

fn candidates_from_rows(rows: &[PgRow]) -> Result<Vec<Candidate>> {
    Ok(rows
        .iter()
        .map(candidate_from_row)
        .collect::<std::result::Result<_, _>>()?)
}

#[async_trait]
impl Candidates for PgStore {
    async fn offer_candidate(&self, c: &NewCandidate) -> Result<bool> {
        let now = Timestamp::now();
        let (branch, from_env, from_dep) = source_columns(&c.source);
        let mut tx = self.pool.begin().await?;
        let added = sqlx::query(
            "INSERT INTO auto_candidates (repository, environment, sha, branch,
                 from_environment, from_deployment, installation_id, created_at, due_at, next_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)
             ON CONFLICT (repository, environment, sha) DO NOTHING",
        )
        .bind(&c.repository)
        .bind(&c.environment)
        .bind(&c.sha)
        .bind(branch)
        .bind(from_env)
        .bind(from_dep)
        .bind(c.installation_id)
        .bind(now)
        .bind(c.due_at)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if added == 0 {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE auto_candidates SET state = 'replaced', settled_at = $1
             WHERE repository = $2 AND environment = $3 AND sha <> $4
               AND state = 'waiting' AND sent_at IS NULL",
        )
        .bind(now)
        .bind(&c.repository)
        .bind(&c.environment)
        .bind(&c.sha)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
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
        let n = sqlx::query(
            "UPDATE auto_candidates SET sent_at = COALESCE(sent_at, $1), next_at = $4
             WHERE seq = $2 AND lease_owner = $3 AND state = 'waiting'",
        )
        .bind(Timestamp::now())
        .bind(seq)
        .bind(&owner.0)
        .bind(until)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
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
        let (kind, deployment, reason) = end.to_parts();
        let n = sqlx::query(
            "UPDATE auto_candidates
             SET state = $1, deployment_id = $2, reason = $3, settled_at = $4, lease_owner = NULL
             WHERE seq = $5 AND lease_owner = $6 AND state = 'waiting'",
        )
        .bind(kind)
        .bind(deployment)
        .bind(reason)
        .bind(Timestamp::now())
        .bind(seq)
        .bind(&owner.0)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    async fn candidates_look_again(&self, repository: &str, sha: &str) -> Result<u64> {
        let n = sqlx::query(
            "UPDATE auto_candidates SET next_at = $1
             WHERE repository = $2 AND sha = $3 AND state = 'waiting'
               AND due_at <= $1 AND next_at > $1 AND lease_owner IS NULL",
        )
        .bind(Timestamp::now())
        .bind(repository)
        .bind(sha)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n)
    }

    async fn candidate_of(&self, id: DeploymentId) -> Result<Option<Candidate>> {
        let row = sqlx::query(
            "SELECT * FROM auto_candidates WHERE deployment_id = $1 ORDER BY seq DESC LIMIT 1",
        )
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(candidate_from_row).transpose()?)
    }

    async fn candidates_of(
        &self,
        repository: &str,
        environment: &str,
        limit: i64,
    ) -> Result<Vec<Candidate>> {
        let rows = sqlx::query(
            "SELECT * FROM auto_candidates WHERE repository = $1 AND environment = $2
             ORDER BY seq DESC LIMIT $3",
        )
        .bind(repository)
        .bind(environment)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        candidates_from_rows(&rows)
    }
}
