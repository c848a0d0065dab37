//! Group commit for the two writes that come in bursts: webhook intake and
//! the outbox's record of status posts. One thread owns one SQLite
//! connection, takes every write waiting and commits them together: one
//! `BEGIN IMMEDIATE`, one fsync. Each caller hears back only once its batch
//! is on disk. Sharing the commit matters: as separate transactions, the
//! outbox's records took every other turn at the disk from a burst of
//! deliveries.
//!
//! Why a thread of its own, with rusqlite, when the rest of the store uses
//! sqlx: sqlx runs each statement as a round trip to its worker thread, and
//! under a burst those round trips (about seven a batch), not SQLite, were
//! most of the commit cycle. Here a batch costs one hand-over in and one
//! answer out per delivery, and each row is a cached prepared statement.
//! The thread still takes the store's write turn, like every other writer.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior, params};
use tokio::sync::{Mutex, mpsc, oneshot};

use super::{
    Accepted, DeliveryKey, DeploymentId, NewDeployment, NewStatus, PostOutcome, StatusState, now_ms,
};

/// Deliveries committed together at most; more wait for the next commit.
pub const BATCH: usize = 256;

/// One delivery waiting for the writer.
pub struct Intake {
    pub delivery: DeliveryKey,
    pub deployment: NewDeployment,
    pub queued: NewStatus,
    pub supersede: bool,
    pub reply: oneshot::Sender<Result<Accepted, sqlx::Error>>,
}

pub enum Message {
    Deliver(Box<Intake>),
    /// What became of status posts, by outbox seq.
    Record {
        posts: Vec<(i64, PostOutcome)>,
        reply: oneshot::Sender<Result<(), sqlx::Error>>,
    },
    /// Close the connection and stop: later deliveries find no writer.
    Close,
}

/// Opens the writer's connection (so that a bad database fails `open`,
/// not the first delivery) and starts its thread.
pub fn start(
    database: &Path,
    writers: Arc<Mutex<()>>,
    queue: mpsc::Receiver<Message>,
) -> anyhow::Result<()> {
    let conn = Connection::open(database)?;
    // journal_mode = WAL is the database's; the rest are the connection's.
    conn.execute_batch(
        "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA journal_mode = WAL;",
    )?;
    conn.busy_timeout(Duration::from_secs(10))?;
    std::thread::Builder::new()
        .name("ferry-intake".into())
        .spawn(move || writer(conn, writers, queue))?;
    Ok(())
}

fn writer(mut conn: Connection, writers: Arc<Mutex<()>>, mut queue: mpsc::Receiver<Message>) {
    let mut batch: Vec<Intake> = Vec::with_capacity(BATCH);
    let mut records = Vec::new();
    // Only this thread inserts deployments, so it can count arrival order
    // itself; read from the table when unknown (at start, after an error).
    let mut next_seq = None;
    let mut closing = false;
    while !closing {
        let Some(first) = queue.blocking_recv() else {
            break;
        };
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                Message::Deliver(intake) => batch.push(*intake),
                Message::Record { posts, reply } => records.push((posts, reply)),
                Message::Close => closing = true,
            }
            if batch.len() < BATCH && !closing {
                next = queue.try_recv().ok();
            }
        }
        if batch.is_empty() && records.is_empty() {
            continue;
        }
        let turn = writers.blocking_lock();
        let result = commit(&mut conn, &batch, &records, &mut next_seq);
        drop(turn);
        match result {
            Ok(results) => {
                for (request, result) in batch.drain(..).zip(results) {
                    let _ = request.reply.send(Ok(result));
                }
                for (_, reply) in records.drain(..) {
                    let _ = reply.send(Ok(()));
                }
            }
            Err(e) => {
                next_seq = None;
                let message = e.to_string();
                let error = || sqlx::Error::Protocol(message.clone());
                for request in batch.drain(..) {
                    let _ = request.reply.send(Err(error()));
                }
                for (_, reply) in records.drain(..) {
                    let _ = reply.send(Err(error()));
                }
            }
        }
    }
}

type Records = [(
    Vec<(i64, PostOutcome)>,
    oneshot::Sender<Result<(), sqlx::Error>>,
)];

/// One transaction for all of it; what became of each delivery.
fn commit(
    conn: &mut Connection,
    batch: &[Intake],
    records: &Records,
    next_seq: &mut Option<i64>,
) -> rusqlite::Result<Vec<Accepted>> {
    let now = now_ms();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for (posts, _) in records {
        record_posts(&tx, posts, now)?;
    }
    if batch.is_empty() {
        tx.commit()?;
        return Ok(Vec::new());
    }
    let mut seq = match *next_seq {
        Some(n) => n,
        None => tx.query_row(
            "SELECT COALESCE(MAX(seq), 0) + 1 FROM deployments",
            [],
            |r| r.get(0),
        )?,
    };
    let mut results = Vec::with_capacity(batch.len());
    {
        let mut delivery = tx.prepare_cached(
            "INSERT INTO deliveries (hook_id, delivery_id, received_at, deployment_id) \
             VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
        )?;
        let mut deployment = tx.prepare_cached(
            "INSERT INTO deployments (id, seq, repository, environment, task, git_ref, sha, \
             payload, creator, production, transient, installation_id, state, description, \
             created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?) \
             ON CONFLICT (id) DO NOTHING",
        )?;
        // Deployments of its environment still waiting become inactive,
        // each saying which deployment took its place.
        let mut supersede = tx.prepare_cached(
            "UPDATE deployments SET state = 'inactive', finished_at = ?1, \
             description = 'Superseded by deployment ' || ?2 \
             WHERE repository = ?3 AND environment = ?4 AND state = 'queued' AND seq < ?5 \
             RETURNING id, description",
        )?;
        let mut status = tx.prepare_cached(INSERT_STATUS)?;
        for r in batch {
            let (key, d) = (&r.delivery, &r.deployment);
            // A delivery without an id is told apart by its deployment only.
            if !key.delivery_id.is_empty()
                && delivery.execute(params![key.hook_id, key.delivery_id, now, d.id.0])? == 0
            {
                results.push(Accepted::DuplicateDelivery);
                continue;
            }
            let inserted = deployment.execute(params![
                d.id.0,
                seq,
                d.repository,
                d.environment,
                d.task,
                d.git_ref,
                d.sha,
                d.payload,
                d.creator,
                d.production,
                d.transient,
                d.installation_id,
                r.queued.description,
                now,
            ])? == 1;
            if !inserted {
                results.push(Accepted::DuplicateDeployment);
                continue;
            }
            insert_status(&mut status, d.id, &r.queued, now)?;
            let mut superseded = Vec::new();
            if r.supersede {
                let gone = supersede
                    .query_map(
                        params![now, d.id.0, d.repository, d.environment, seq],
                        |row| Ok((DeploymentId(row.get(0)?), row.get::<_, String>(1)?)),
                    )?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                for (id, description) in gone {
                    let inactive = NewStatus::new(StatusState::Inactive, description);
                    insert_status(&mut status, id, &inactive, now)?;
                    superseded.push(id);
                }
                superseded.sort();
            }
            seq += 1;
            results.push(Accepted::New { superseded });
        }
    }
    tx.commit()?;
    *next_seq = Some(seq);
    Ok(results)
}

/// The outbox row for a status; shared with the sqlx side of the store.
pub const INSERT_STATUS: &str = "INSERT INTO status_outbox (deployment_id, state, description, \
     log_url, environment_url, auto_inactive, created_at, next_attempt_at) \
     VALUES (?, ?, ?, ?, ?, ?, ?, ?)";

fn insert_status(
    statement: &mut rusqlite::CachedStatement<'_>,
    id: DeploymentId,
    s: &NewStatus,
    now: i64,
) -> rusqlite::Result<()> {
    statement.execute(params![
        id.0,
        s.state.as_str(),
        s.description,
        s.log_url,
        s.environment_url,
        s.auto_inactive,
        now,
        now,
    ])?;
    Ok(())
}

fn record_posts(
    tx: &rusqlite::Transaction<'_>,
    posts: &[(i64, PostOutcome)],
    now: i64,
) -> rusqlite::Result<()> {
    let mut sent = tx.prepare_cached(
        "UPDATE status_outbox SET sent_at = ?, attempts = attempts + 1 WHERE seq = ?",
    )?;
    let mut retry = tx.prepare_cached(
        "UPDATE status_outbox SET next_attempt_at = ?, attempts = attempts + 1, last_error = ? \
         WHERE seq = ?",
    )?;
    let mut failed = tx.prepare_cached(
        "UPDATE status_outbox SET failed_at = ?, attempts = attempts + 1, last_error = ? \
         WHERE seq = ?",
    )?;
    for (seq, outcome) in posts {
        match outcome {
            PostOutcome::Sent => sent.execute(params![now, seq])?,
            PostOutcome::RetryAt { at, error } => retry.execute(params![at, error, seq])?,
            PostOutcome::Failed { error } => failed.execute(params![now, error, seq])?,
        };
    }
    Ok(())
}
