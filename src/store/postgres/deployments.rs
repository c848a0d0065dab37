//! Deployments and their queue on PostgreSQL: intake, claims with leases and
//! fencing, the rescue of expired claims, final states, and reads.

use crate::store::EnvKey;
use async_trait::async_trait;

use super::*;
use crate::store::Deployments;
use crate::store::Timestamp;

/// What leaves a queued deployment `d` free to run: nothing running in its
/// environment, no lock, no step left on a host, not held (`$1`, `$2`:
/// held repositories and environments). One text for the look and the
/// claim.
macro_rules! may_run {
    () => {
        " AND NOT EXISTS (SELECT 1 FROM deployments r WHERE r.state = 'running'
                 AND r.repository = d.repository AND r.environment = d.environment)
           AND NOT EXISTS (SELECT 1 FROM env_locks l
                 WHERE l.repository = d.repository AND l.environment = d.environment)
           AND NOT EXISTS (SELECT 1 FROM remote_steps s WHERE (
                 SELECT h.repository = d.repository AND h.environment = d.environment
                 FROM deployments h WHERE h.id = s.deployment_id))
           AND NOT EXISTS (SELECT 1 FROM unnest($1::text[], $2::text[]) AS f(r, e)
                 WHERE f.r = d.repository AND f.e = d.environment)
           AND ($3::text[] IS NULL OR EXISTS (SELECT 1 FROM unnest($3::text[], $4::text[]) AS w(r, e)
                 WHERE w.r = d.repository AND w.e = d.environment))"
    };
}

/// Whether any deployment may be claimed now. Public for its plan test
/// (tests/store/deployments.rs); `$1`, `$2`: held repositories and
/// environments; `$3`, `$4`: the only ones that may run, or NULL for all.
///
/// Runners ask after every delivery; in a burst the answer is mostly
/// "nothing", and a read finds that out without locking the row a
/// delivery is superseding.
///
/// Steps left on hosts are read from remote_steps (a handful of
/// rows), each one's deployment looked up by its key in a scalar
/// subquery, which the planner cannot turn around. As a join, it
/// walked the environment's every past deployment to probe
/// remote_steps for each (5,200 rows, 8 ms, in a burst whose
/// deployments ran), or hashed the whole table when a step was
/// running, because the statistics lag a burst. The order is the
/// queued-deployments index's, so the planner walks that index (a handful
/// of rows) rather than the table, whatever it believes of the table.
pub const CLAIM_LOOK: &str = concat!(
    "SELECT 1 FROM deployments d WHERE d.state = 'queued' AND NOT d.checks_gate",
    may_run!(),
    " ORDER BY d.repository, d.environment, d.seq LIMIT 1"
);

/// Environments as the two arrays the claim's `unnest` reads.
fn columns(keys: &[EnvKey]) -> (Vec<&str>, Vec<&str>) {
    keys.iter()
        .map(|k| (k.repository.as_str(), k.environment.as_str()))
        .unzip()
}

#[async_trait]
impl Deployments for PgStore {
    async fn accept(
        &self,
        delivery: &DeliveryKey,
        deployment: &NewDeployment,
        queued: &NewStatus,
        supersede: bool,
    ) -> Result<Accepted> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let request = intake::IntakeJob {
            delivery: delivery.clone(),
            deployment: deployment.clone(),
            queued: queued.clone(),
            supersede,
            reply,
        };
        self.intake.send(request).await.map_err(|_| Error::Closed)?;
        answer.await.map_err(|_| Error::Closed)?
    }

    async fn claim_next_except(
        &self,
        owner: &Owner,
        held: &[EnvKey],
        within: Option<&[EnvKey]>,
    ) -> Result<Option<Deployment>> {
        let (held_repos, held_envs) = columns(held);
        let (within_repos, within_envs) = within.map(columns).unzip();
        let runnable: Option<i32> = sqlx::query_scalar(CLAIM_LOOK)
            .bind(&held_repos)
            .bind(&held_envs)
            .bind(&within_repos)
            .bind(&within_envs)
            .fetch_optional(&self.pool)
            .await?;
        if runnable.is_none() {
            return Ok(None);
        }
        // The oldest waiting deployment of each environment is the only
        // candidate there, so a replica that skips a row another is
        // claiming never runs a newer one out of turn; one waiting for its
        // checks holds the environment's turn.
        let sql = format!(
            "UPDATE deployments SET state = 'running', started_at = $5,
                 attempt = attempt + 1, owner = $6, lease_until = {DB_NOW} + $7
             WHERE id = (
                 SELECT d.id FROM deployments d
                 WHERE d.state = 'queued' AND NOT d.checks_gate
                   AND d.seq = (SELECT MIN(q.seq) FROM deployments q WHERE q.state = 'queued'
                                AND q.repository = d.repository AND q.environment = d.environment)
                   {may_run}
                 ORDER BY d.seq LIMIT 1
                 FOR UPDATE SKIP LOCKED)
             RETURNING {DEPLOYMENT_COLUMNS}",
            may_run = may_run!()
        );
        // Two replicas claiming in one environment at once: the unique
        // index refuses the second, which then looks again.
        for _ in 0..3 {
            match sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                .bind(&held_repos)
                .bind(&held_envs)
                .bind(&within_repos)
                .bind(&within_envs)
                .bind(Timestamp::now())
                .bind(&owner.0)
                .bind(lease_ms())
                .fetch_optional(&self.pool)
                .await
            {
                Ok(row) => return Ok(row.as_ref().map(deployment_from_row).transpose()?),
                Err(e) if is_unique_violation(&e) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(None)
    }

    async fn waiting_environments(&self) -> Result<Vec<EnvKey>> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT DISTINCT repository, environment FROM deployments WHERE state = 'queued'",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(r, e)| EnvKey::new(r, e)).collect())
    }

    async fn renew(&self, owner: &Owner, claims: &[Claim]) -> Result<Vec<Claim>> {
        if claims.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = claims.iter().map(|c| c.id.0).collect();
        let attempts: Vec<i32> = claims.iter().map(|c| c.attempt as i32).collect();
        let held: Vec<(i64, i32)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE deployments d SET lease_until = {DB_NOW} + $1
             FROM UNNEST($2::bigint[], $3::int[]) AS c (id, attempt)
             WHERE d.id = c.id AND d.attempt = c.attempt AND d.owner = $4
               AND d.state = 'running'
             RETURNING d.id, d.attempt"
        )))
        .bind(lease_ms())
        .bind(&ids)
        .bind(&attempts)
        .bind(&owner.0)
        .fetch_all(&self.pool)
        .await?;
        Ok(held
            .into_iter()
            .map(|(id, attempt)| Claim {
                id: DeploymentId(id),
                attempt: i64::from(attempt),
            })
            .collect())
    }

    async fn rescue(&self, owner: &Owner, all: bool) -> Result<Vec<Deployment>> {
        // SKIP LOCKED: two replicas rescuing at once split the work; the
        // old owner comes back from the row as it was before the update.
        let sql = format!(
            "WITH expired AS (
                 SELECT id, owner FROM deployments
                 WHERE state = 'running' AND ($1 OR lease_until IS NULL OR lease_until < {DB_NOW})
                 ORDER BY seq FOR UPDATE SKIP LOCKED)
             UPDATE deployments d SET attempt = d.attempt + 1, owner = $2,
                 lease_until = {DB_NOW} + $3
             FROM expired e WHERE d.id = e.id
             RETURNING d.*, e.owner AS previous_owner"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(all)
            .bind(&owner.0)
            .bind(lease_ms())
            .fetch_all(&self.pool)
            .await?;
        let mut taken = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut d = deployment_from_row(row)?;
            d.owner = row.try_get("previous_owner")?;
            taken.push(d);
        }
        taken.sort_by_key(|d| d.id);
        Ok(taken)
    }

    async fn add_status(&self, claim: Claim, status: &NewStatus) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        // The row stays locked to the commit: a rescue cannot take the
        // deployment over between this check and the insert. The deployment
        // says what GitHub is told ("Deploying f95f852 to 2 hosts"), for
        // `ferry deployments` and the log page.
        let holds: Option<i32> = sqlx::query_scalar(
            "UPDATE deployments SET description = $3
             WHERE id = $1 AND attempt = $2 AND state = 'running'
             RETURNING 1",
        )
        .bind(claim.id.0)
        .bind(claim.attempt as i32)
        .bind(&status.description)
        .fetch_optional(&mut *tx)
        .await?;
        if holds.is_none() {
            return Ok(false);
        }
        insert_status(&mut tx, claim.id, status, Timestamp::now()).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn finish(&self, claim: Claim, state: State, status: &NewStatus) -> Result<bool> {
        debug_assert!(state.is_final());
        let now = Timestamp::now();
        let mut tx = self.pool.begin().await?;
        let changed = sqlx::query(
            "UPDATE deployments SET state = $1, description = $2, finished_at = $3,
                 lease_until = NULL
             WHERE id = $4 AND attempt = $5 AND state = 'running'",
        )
        .bind(state.as_str())
        .bind(&status.description)
        .bind(now)
        .bind(claim.id.0)
        .bind(claim.attempt as i32)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 0 {
            return Ok(false);
        }
        insert_status(&mut tx, claim.id, status, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn by_state(&self, state: State) -> Result<Vec<Deployment>> {
        let sql =
            format!("SELECT {DEPLOYMENT_COLUMNS} FROM deployments WHERE state = $1 ORDER BY seq");
        self.deployments(sqlx::query(sqlx::AssertSqlSafe(sql)).bind(state.as_str()))
            .await
    }

    async fn get(&self, id: DeploymentId) -> Result<Option<Deployment>> {
        let sql = format!("SELECT {DEPLOYMENT_COLUMNS} FROM deployments WHERE id = $1");
        Ok(sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(deployment_from_row)
            .transpose()?)
    }

    async fn last_success(
        &self,
        repository: &str,
        environment: &str,
    ) -> Result<Option<Deployment>> {
        let sql = format!(
            "SELECT {DEPLOYMENT_COLUMNS} FROM deployments
             WHERE repository = $1 AND environment = $2 AND state = 'success' AND id >= 0
               AND task NOT IN ('deploy:lock', 'deploy:unlock')
             ORDER BY seq DESC LIMIT 1"
        );
        Ok(self
            .deployments(
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(repository)
                    .bind(environment),
            )
            .await?
            .pop())
    }

    async fn history(
        &self,
        repository: &str,
        environment: &str,
        limit: i64,
    ) -> Result<Vec<Deployment>> {
        let sql = format!(
            "SELECT {DEPLOYMENT_COLUMNS} FROM deployments
             WHERE repository = $1 AND environment = $2 AND id >= 0
               AND task NOT IN ('deploy:lock', 'deploy:unlock')
             ORDER BY seq DESC LIMIT $3"
        );
        self.deployments(
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(repository)
                .bind(environment)
                .bind(limit),
        )
        .await
    }

    async fn recent(&self, limit: i64) -> Result<Vec<Deployment>> {
        let sql =
            format!("SELECT {DEPLOYMENT_COLUMNS} FROM deployments ORDER BY seq DESC LIMIT $1");
        self.deployments(sqlx::query(sqlx::AssertSqlSafe(sql)).bind(limit))
            .await
    }

    async fn count_by_state(&self, state: State) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM deployments WHERE state = $1")
                .bind(state.as_str())
                .fetch_one(&self.pool)
                .await?,
        )
    }
}
