//! Webhook intake on PostgreSQL, committed in batches.
//!
//! Deliveries of one environment must take turns (each supersedes the one
//! waiting before it, whichever replica took it), so each transaction holds
//! its environments' advisory locks until its commit has reached the disk.
//! One delivery per transaction made a burst to one environment as slow as
//! one fsync after another (750/s). Here one task per replica takes every
//! delivery waiting and commits them together: one lock round, one fsync,
//! and each delivery is a single statement.

use sqlx::PgPool;
use tokio::sync::mpsc;

use crate::store::{Accepted, DeploymentId, Error, now_ms};

/// Deliveries committed together at most.
pub const BATCH: usize = 128;

pub use crate::store::Intake;

/// One delivery, all in one statement: the delivery is recorded (unless
/// seen), the deployment inserted (unless known) with its `queued` status,
/// and with `supersede` the deployments still waiting in its environment
/// become `inactive`, each with its status. The statements of one WITH see
/// the same snapshot, so what is superseded is what waited before it.
const ACCEPT: &str = "
WITH seen AS (
    INSERT INTO deliveries (hook_id, delivery_id, received_at, deployment_id)
    SELECT $1, $2, $3, $4 WHERE $2 <> ''
    ON CONFLICT DO NOTHING RETURNING 1),
fresh AS (SELECT ($2 = '' OR EXISTS (SELECT 1 FROM seen)) AS ok),
dep AS (
    INSERT INTO deployments (id, repository, environment, task, git_ref, sha, payload,
        creator, production, transient, installation_id, state, description, created_at)
    SELECT $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, 'queued', $15, $3
    FROM fresh WHERE ok
    ON CONFLICT (id) DO NOTHING RETURNING seq),
queued AS (
    INSERT INTO status_outbox (deployment_id, state, description, log_url,
        environment_url, auto_inactive, created_at, next_attempt_at)
    SELECT $4, 'queued', $15, $16, $17, $18, $3, $3 FROM dep),
gone AS (
    UPDATE deployments SET state = 'inactive', finished_at = $3,
        description = 'Superseded by deployment ' || $4::bigint
    WHERE $19 AND repository = $5 AND environment = $6 AND state = 'queued'
      AND seq < (SELECT seq FROM dep)
    RETURNING id, description),
inactive AS (
    INSERT INTO status_outbox (deployment_id, state, description, created_at, next_attempt_at)
    SELECT id, 'inactive', description, $3, $3 FROM gone)
SELECT (SELECT ok FROM fresh), EXISTS (SELECT 1 FROM dep),
       ARRAY(SELECT id FROM gone ORDER BY id)";

/// Runs until every sender is gone.
pub async fn run(pool: PgPool, mut queue: mpsc::Receiver<Intake>) {
    let mut batch = Vec::with_capacity(BATCH);
    while let Some(first) = queue.recv().await {
        batch.push(first);
        while batch.len() < BATCH {
            match queue.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        match commit(&pool, &batch).await {
            Ok(results) => {
                for (request, result) in batch.drain(..).zip(results) {
                    let _ = request.reply.send(Ok(result));
                }
            }
            Err(e) => {
                let e = Error::from(e);
                for request in batch.drain(..) {
                    let _ = request.reply.send(Err(e.clone()));
                }
            }
        }
    }
}

async fn commit(
    pool: &PgPool,
    batch: &[Intake],
) -> std::result::Result<Vec<Accepted>, sqlx::Error> {
    let now = now_ms();
    let mut tx = pool.begin().await?;
    // Every environment of the batch, locked in one order on every replica
    // so that two batches never wait on each other in a circle.
    let (repositories, environments): (Vec<&str>, Vec<&str>) = batch
        .iter()
        .map(|r| {
            (
                r.deployment.repository.as_str(),
                r.deployment.environment.as_str(),
            )
        })
        .unzip();
    sqlx::query(
        "SELECT pg_advisory_xact_lock(k) FROM (
             SELECT DISTINCT hashtextextended(r || E'\\n' || e, 0) AS k
             FROM UNNEST($1::text[], $2::text[]) AS t (r, e) ORDER BY k) AS keys",
    )
    .bind(&repositories)
    .bind(&environments)
    .execute(&mut *tx)
    .await?;
    let mut results = Vec::with_capacity(batch.len());
    for r in batch {
        let (d, q) = (&r.deployment, &r.queued);
        let (fresh, inserted, superseded): (bool, bool, Vec<i64>) = sqlx::query_as(ACCEPT)
            .bind(&r.delivery.hook_id)
            .bind(&r.delivery.delivery_id)
            .bind(now)
            .bind(d.id.0)
            .bind(&d.repository)
            .bind(&d.environment)
            .bind(&d.task)
            .bind(&d.git_ref)
            .bind(&d.sha)
            .bind(&d.payload)
            .bind(&d.creator)
            .bind(d.production)
            .bind(d.transient)
            .bind(d.installation_id)
            .bind(&q.description)
            .bind(&q.log_url)
            .bind(&q.environment_url)
            .bind(q.auto_inactive)
            .bind(r.supersede)
            .fetch_one(&mut *tx)
            .await?;
        results.push(match (fresh, inserted) {
            (false, _) => Accepted::DuplicateDelivery,
            (true, false) => Accepted::DuplicateDeployment,
            (true, true) => Accepted::New {
                superseded: superseded.into_iter().map(DeploymentId).collect(),
            },
        });
    }
    tx.commit().await?;
    Ok(results)
}
