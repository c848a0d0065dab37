//! Group commit for webhook intake. One writer takes every delivery waiting
//! and commits them together: one `BEGIN IMMEDIATE`, one statement per table
//! for the whole batch, one fsync. Each caller hears back only once its
//! batch is on disk.
//!
//! Statements, not rows, are what cost: sqlx runs SQLite on a worker
//! thread, so every statement is a round trip between threads.

use std::collections::{HashMap, HashSet};

use sqlx::sqlite::SqlitePool;
use sqlx::{QueryBuilder, Sqlite, Transaction};
use tokio::sync::{mpsc, oneshot};

use super::{Accepted, DeliveryKey, DeploymentId, NewDeployment, NewStatus, StatusState, now_ms};

/// Deliveries committed together at most; more wait for the next commit.
/// Well under SQLite's 32766 bound variables for the widest insert.
pub const BATCH: usize = 256;

/// One delivery waiting for the writer.
pub struct Intake {
    pub delivery: DeliveryKey,
    pub deployment: NewDeployment,
    pub queued: NewStatus,
    pub supersede: bool,
    pub reply: oneshot::Sender<Result<Accepted, sqlx::Error>>,
}

pub async fn writer(pool: SqlitePool, mut queue: mpsc::Receiver<Intake>) {
    let mut batch = Vec::with_capacity(BATCH);
    // Only this task inserts deployments, so it can count arrival order
    // itself; read from the table when unknown (at start, after an error).
    let mut next_seq = None;
    while queue.recv_many(&mut batch, BATCH).await > 0 {
        match accept_batch(&pool, &batch, &mut next_seq).await {
            Ok(results) => {
                for (request, result) in batch.drain(..).zip(results) {
                    let _ = request.reply.send(Ok(result));
                }
            }
            Err(e) => {
                next_seq = None;
                let message = e.to_string();
                for request in batch.drain(..) {
                    let _ = request
                        .reply
                        .send(Err(sqlx::Error::Protocol(message.clone())));
                }
            }
        }
    }
}

async fn accept_batch(
    pool: &SqlitePool,
    batch: &[Intake],
    next_seq: &mut Option<i64>,
) -> Result<Vec<Accepted>, sqlx::Error> {
    let now = now_ms();
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let mut results = vec![Accepted::DuplicateDelivery; batch.len()];

    // Deliveries seen before, or twice in this batch, go no further.
    let mut keys = HashSet::new();
    let fresh: Vec<usize> = (0..batch.len())
        .filter(|&i| {
            let d = &batch[i].delivery;
            d.delivery_id.is_empty() || keys.insert((d.hook_id.as_str(), d.delivery_id.as_str()))
        })
        .collect();
    let named: Vec<usize> = fresh
        .iter()
        .copied()
        .filter(|&i| !batch[i].delivery.delivery_id.is_empty())
        .collect();
    let mut new_deliveries = HashSet::new();
    if !named.is_empty() {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO deliveries (hook_id, delivery_id, received_at, deployment_id) ",
        );
        q.push_values(&named, |mut b, &i| {
            let r = &batch[i];
            b.push_bind(r.delivery.hook_id.clone())
                .push_bind(r.delivery.delivery_id.clone())
                .push_bind(now)
                .push_bind(r.deployment.id.0);
        });
        q.push(" ON CONFLICT DO NOTHING RETURNING hook_id, delivery_id");
        let rows: Vec<(String, String)> = q.build_query_as().fetch_all(&mut *tx).await?;
        new_deliveries.extend(rows);
    }

    // Then deployments: the first delivery of an id in this batch inserts it.
    let mut ids = HashSet::new();
    let candidates: Vec<usize> = fresh
        .into_iter()
        .filter(|&i| {
            let d = &batch[i].delivery;
            let new_delivery = d.delivery_id.is_empty()
                || new_deliveries.contains(&(d.hook_id.clone(), d.delivery_id.clone()));
            if !new_delivery {
                return false;
            }
            // Past this point the delivery is recorded: at worst a duplicate.
            results[i] = Accepted::DuplicateDeployment;
            ids.insert(batch[i].deployment.id)
        })
        .collect();
    if candidates.is_empty() {
        tx.commit().await?;
        return Ok(results);
    }
    let first_seq = match *next_seq {
        Some(n) => n,
        None => {
            sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) + 1 FROM deployments")
                .fetch_one(&mut *tx)
                .await?
        }
    };
    // Ids that turn out to be duplicates leave gaps; order is all seq is for.
    *next_seq = Some(first_seq + candidates.len() as i64);
    let mut q = QueryBuilder::<Sqlite>::new(
        "INSERT INTO deployments (id, seq, repository, environment, task, git_ref, sha, payload, \
         creator, production, transient, installation_id, state, description, created_at) ",
    );
    q.push_values(candidates.iter().enumerate(), |mut b, (k, &i)| {
        let r = &batch[i];
        let d = &r.deployment;
        b.push_bind(d.id.0)
            .push_bind(first_seq + k as i64)
            .push_bind(d.repository.clone())
            .push_bind(d.environment.clone())
            .push_bind(d.task.clone())
            .push_bind(d.git_ref.clone())
            .push_bind(d.sha.clone())
            .push_bind(d.payload.clone())
            .push_bind(d.creator.clone())
            .push_bind(d.production)
            .push_bind(d.transient)
            .push_bind(d.installation_id)
            .push_bind("queued")
            .push_bind(r.queued.description.clone())
            .push_bind(now);
    });
    q.push(" ON CONFLICT (id) DO NOTHING RETURNING id");
    let inserted: HashSet<i64> = q
        .build_query_scalar()
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect();
    let accepted: Vec<(usize, i64)> = candidates
        .iter()
        .enumerate()
        .filter(|(_, i)| inserted.contains(&batch[**i].deployment.id.0))
        .map(|(k, &i)| (i, first_seq + k as i64))
        .collect();
    if accepted.is_empty() {
        tx.commit().await?;
        return Ok(results);
    }
    let queued: Vec<(DeploymentId, &NewStatus)> = accepted
        .iter()
        .map(|&(i, _)| (batch[i].deployment.id, &batch[i].queued))
        .collect();
    insert_statuses(&mut tx, &queued, now).await?;
    for &(i, _) in &accepted {
        results[i] = Accepted::New {
            superseded: Vec::new(),
        };
    }

    // Supersede: in each environment, the newest new deployment whose target
    // supersedes makes every older waiting one inactive.
    let mut newest: HashMap<(&str, &str), (usize, i64)> = HashMap::new();
    for &(i, seq) in &accepted {
        if batch[i].supersede {
            let d = &batch[i].deployment;
            newest.insert((d.repository.as_str(), d.environment.as_str()), (i, seq));
        }
    }
    if !newest.is_empty() {
        let mut q =
            QueryBuilder::<Sqlite>::new("WITH newest (repository, environment, seq, id) AS (");
        q.push_values(
            newest.iter(),
            |mut b, ((repository, environment), (i, seq))| {
                b.push_bind(*repository)
                    .push_bind(*environment)
                    .push_bind(*seq)
                    .push_bind(batch[*i].deployment.id.0);
            },
        );
        q.push(
            ") UPDATE deployments SET state = 'inactive', finished_at = ",
        )
        .push_bind(now)
        .push(
            ", description = 'Superseded by deployment ' || (SELECT n.id FROM newest n \
             WHERE n.repository = deployments.repository AND n.environment = deployments.environment) \
             WHERE id IN (SELECT d.id FROM newest n JOIN deployments d \
             ON d.repository = n.repository AND d.environment = n.environment \
             AND d.state = 'queued' AND d.seq < n.seq) \
             RETURNING id, description, repository, environment",
        );
        let gone: Vec<(i64, String, String, String)> =
            q.build_query_as().fetch_all(&mut *tx).await?;
        if !gone.is_empty() {
            let statuses: Vec<NewStatus> = gone
                .iter()
                .map(|(_, description, _, _)| {
                    NewStatus::new(StatusState::Inactive, description.clone())
                })
                .collect();
            let pairs: Vec<(DeploymentId, &NewStatus)> = gone
                .iter()
                .zip(&statuses)
                .map(|((id, ..), s)| (DeploymentId(*id), s))
                .collect();
            insert_statuses(&mut tx, &pairs, now).await?;
            // Tell each newest deployment which ones it superseded.
            for ((repository, environment), (i, _)) in &newest {
                let mut ids: Vec<DeploymentId> = gone
                    .iter()
                    .filter(|(_, _, r, e)| r == repository && e == environment)
                    .map(|(id, ..)| DeploymentId(*id))
                    .collect();
                if !ids.is_empty() {
                    ids.sort();
                    results[*i] = Accepted::New { superseded: ids };
                }
            }
        }
    }
    tx.commit().await?;
    Ok(results)
}

/// Queues statuses, in the order given, with one statement.
pub async fn insert_statuses(
    tx: &mut Transaction<'static, Sqlite>,
    statuses: &[(DeploymentId, &NewStatus)],
    now: i64,
) -> Result<(), sqlx::Error> {
    let mut q = QueryBuilder::<Sqlite>::new(
        "INSERT INTO status_outbox (deployment_id, state, description, log_url, environment_url, \
         auto_inactive, created_at, next_attempt_at) ",
    );
    q.push_values(statuses, |mut b, (id, s)| {
        b.push_bind(id.0)
            .push_bind(s.state.as_str())
            .push_bind(s.description.clone())
            .push_bind(s.log_url.clone())
            .push_bind(s.environment_url.clone())
            .push_bind(s.auto_inactive)
            .push_bind(now)
            .push_bind(now);
    });
    q.build().execute(&mut **tx).await?;
    Ok(())
}
