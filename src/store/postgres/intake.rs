//! Webhook intake on PostgreSQL, committed in batches.
//!
//! Deliveries of one environment must take turns (each supersedes the one
//! waiting before it, whichever replica took it), so each transaction holds
//! its environments' advisory locks until its commit has reached the disk.
//! One delivery per transaction made a burst to one environment as slow as
//! one fsync after another (750/s). Here one task per replica takes every
//! delivery waiting and commits them together: one round trip to a
//! function that locks and accepts the batch, one fsync.

use sqlx::PgPool;
use tokio::sync::mpsc;

use crate::store::{Accepted, DeploymentId, Error, Timestamp};

/// Deliveries committed together at most.
pub const BATCH: usize = 128;

pub use crate::store::IntakeJob;

/// Runs until every sender is gone.
pub async fn run(pool: PgPool, mut queue: mpsc::Receiver<IntakeJob>) {
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
    batch: &[IntakeJob],
) -> std::result::Result<Vec<Accepted>, sqlx::Error> {
    fn column<'a, T>(batch: &'a [IntakeJob], f: impl Fn(&'a IntakeJob) -> T) -> Vec<T> {
        batch.iter().map(f).collect()
    }
    // Deployments that wait for their checks are marked in the same
    // transaction, which then needs to be explicit; most batches have none
    // and stay one round trip.
    let gated = batch.iter().any(|r| r.deployment.gated);
    let mut tx = if gated {
        Some(pool.begin().await?)
    } else {
        None
    };
    // ferry_accept (migrations/postgres/functions/ferry_accept.sql) takes the batch column by
    // column and answers one row per delivery, in order.
    let query = sqlx::query_as(
        "SELECT * FROM ferry_accept($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, \
         $14, $15, $16, $17, $18, $19, $20) ORDER BY n",
    )
    .bind(Timestamp::now())
    .bind(column(batch, |r| r.delivery.hook_id.as_str()))
    .bind(column(batch, |r| r.delivery.delivery_id.as_str()))
    .bind(column(batch, |r| r.deployment.id.0))
    .bind(column(batch, |r| r.deployment.repository.as_str()))
    .bind(column(batch, |r| r.deployment.environment.as_str()))
    .bind(column(batch, |r| r.deployment.task.as_str()))
    .bind(column(batch, |r| r.deployment.git_ref.as_str()))
    .bind(column(batch, |r| r.deployment.sha.as_str()))
    .bind(column(batch, |r| r.deployment.payload.as_str()))
    .bind(column(batch, |r| r.deployment.creator.as_str()))
    .bind(column(batch, |r| r.deployment.production))
    .bind(column(batch, |r| r.deployment.transient))
    .bind(column(batch, |r| r.deployment.installation_id))
    .bind(column(batch, |r| r.queued.description.as_str()))
    .bind(column(batch, |r| r.queued.log_url.as_deref()))
    .bind(column(batch, |r| r.queued.environment_url.as_deref()))
    .bind(column(batch, |r| r.queued.auto_inactive))
    .bind(column(batch, |r| r.supersede))
    .bind(crate::wording::SUPERSEDED_BY_PREFIX);
    let rows: Vec<(i32, bool, bool, Vec<i64>)> = match tx.as_mut() {
        Some(tx) => query.fetch_all(&mut **tx).await?,
        None => query.fetch_all(pool).await?,
    };
    if rows.len() != batch.len() {
        return Err(sqlx::Error::Protocol(format!(
            "ferry_accept answered {} rows for {} deliveries",
            rows.len(),
            batch.len()
        )));
    }
    if let Some(mut tx) = tx {
        let ids: Vec<i64> = batch
            .iter()
            .zip(&rows)
            .filter(|(r, (_, fresh, inserted, _))| r.deployment.gated && *fresh && *inserted)
            .map(|(r, _)| r.deployment.id.0)
            .collect();
        sqlx::query(
            "UPDATE deployments SET checks_gate = true, checks_next_at = $1
             WHERE id = ANY($2) AND state = 'queued'",
        )
        .bind(Timestamp::now())
        .bind(&ids)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
    }
    Ok(answers(rows))
}

/// ferry_accept's row per delivery (its number, whether the delivery was
/// new, whether its deployment was, the deployments it superseded) as
/// intake's answers.
fn answers(rows: Vec<(i32, bool, bool, Vec<i64>)>) -> Vec<Accepted> {
    rows.into_iter()
        .map(|(_, fresh, inserted, superseded)| match (fresh, inserted) {
            (false, _) => Accepted::DuplicateDelivery,
            (true, false) => Accepted::DuplicateDeployment,
            (true, true) => Accepted::New {
                superseded: superseded.into_iter().map(DeploymentId).collect(),
            },
        })
        .collect()
}
