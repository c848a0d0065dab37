//! The writer thread: the one connection that writes. Webhook intake and
//! the outbox's records of status posts come in bursts, so it takes every
//! delivery and record waiting and commits them together: one
//! `BEGIN IMMEDIATE`, one fsync. Each caller hears back only once its batch
//! is on disk. Sharing the commit matters: as separate transactions, the
//! outbox's records took every other turn at the disk from a burst of
//! deliveries. Other writes ([`Job`]s) each get a transaction of their own,
//! in arrival order, between batches.
//!
//! A burst to one environment brings batches where each deployment
//! supersedes the one before it. Those are stored `inactive` at once, with
//! no `queued` status for the outbox to settle later. That spares each
//! such delivery about a dozen b-tree changes (the status row and its
//! indexes, the state change and its indexes, the settling), all of them
//! pages the commit writes and the WAL's fsync waits for.

use std::collections::{HashMap, HashSet};

use rusqlite::{Connection, TransactionBehavior, params};
use tokio::sync::{mpsc, oneshot};

use crate::store::{
    Accepted, DeploymentId, Error, NewStatus, PostOutcome, Result, StatusState, Timestamp,
};

/// Deliveries committed together at most; more wait for the next commit.
pub const BATCH: usize = 256;

pub use crate::store::IntakeJob;

/// A write of its own: runs in its transaction and says what became of
/// it ([`Done`]).
pub type Job = Box<dyn FnOnce(&rusqlite::Transaction<'_>) -> Done + Send>;
pub type Reply = Box<dyn FnOnce(Result<()>) + Send>;

/// What a [`Job`] did: whether its transaction may commit (false: its
/// statements failed, roll it back), and what to tell its caller once the
/// commit's outcome is known.
pub struct Done {
    pub commit: bool,
    pub reply: Reply,
}

pub enum Message {
    Deliver(Box<IntakeJob>),
    /// What became of status posts, by outbox seq.
    Record {
        posts: Vec<(i64, PostOutcome)>,
        reply: oneshot::Sender<Result<()>>,
    },
    Write(Job),
    /// Close the connection and stop: later writes find no writer.
    Close(oneshot::Sender<()>),
}

/// Starts the writer's thread on `conn`.
pub fn start(conn: Connection, queue: mpsc::Receiver<Message>) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("ferry-store-writer".into())
        .spawn(move || writer(conn, queue))?;
    Ok(())
}

fn writer(mut conn: Connection, mut queue: mpsc::Receiver<Message>) {
    let mut batch: Vec<IntakeJob> = Vec::with_capacity(BATCH);
    let mut records = Vec::new();
    let mut jobs: Vec<Job> = Vec::new();
    // Only this thread inserts deployments, so it can count arrival order
    // itself; read from the table when unknown (at start, after an error).
    let mut next_seq = None;
    let mut closing = None;
    while closing.is_none() {
        let Some(first) = queue.blocking_recv() else {
            break;
        };
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                Message::Deliver(intake) => batch.push(*intake),
                Message::Record { posts, reply } => records.push((posts, reply)),
                Message::Write(job) => jobs.push(job),
                Message::Close(done) => closing = Some(done),
            }
            if batch.len() < BATCH && closing.is_none() {
                next = queue.try_recv().ok();
            }
        }
        if !batch.is_empty() || !records.is_empty() {
            match commit(&mut conn, &batch, &records, &mut next_seq) {
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
                    let e = Error::from(e);
                    for request in batch.drain(..) {
                        let _ = request.reply.send(Err(e.clone()));
                    }
                    for (_, reply) in records.drain(..) {
                        let _ = reply.send(Err(e.clone()));
                    }
                }
            }
        }
        if !jobs.is_empty() {
            // A job may insert a deployment (a lock task): count again.
            next_seq = None;
        }
        for job in jobs.drain(..) {
            run_job(&mut conn, job);
        }
    }
    drop(conn);
    if let Some(done) = closing {
        let _ = done.send(());
    }
}

/// A job whose transaction cannot even begin is dropped: its caller hears
/// that the store is unavailable through its closed reply channel.
fn run_job(conn: &mut Connection, job: Job) {
    let Ok(tx) = conn.transaction_with_behavior(TransactionBehavior::Immediate) else {
        return;
    };
    let Done { commit: ok, reply } = job(&tx);
    if ok {
        reply(tx.commit().map_err(Error::from));
    } else {
        drop(tx);
        reply(Ok(()));
    }
}

type Records = [(Vec<(i64, PostOutcome)>, oneshot::Sender<Result<()>>)];

/// One transaction for all of it; what became of each delivery.
fn commit(
    conn: &mut Connection,
    batch: &[IntakeJob],
    records: &Records,
    next_seq: &mut Option<i64>,
) -> rusqlite::Result<Vec<Accepted>> {
    let now = Timestamp::now();
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
    let fresh = new_deployments(&tx, batch, now)?;
    let superseded_by = superseded_in_batch(batch, &fresh);
    let mut results = Vec::with_capacity(batch.len());
    {
        let mut statements = Statements {
            deployment: tx.prepare_cached(
                "INSERT INTO deployments (id, seq, repository, environment, task, git_ref, sha, \
                 payload, creator, production, transient, installation_id, state, description, \
                 created_at, finished_at, checks_gate, checks_next_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )?,
            // Deployments of its environment still waiting become inactive,
            // each saying which deployment took its place.
            supersede: tx.prepare_cached(
                "UPDATE deployments SET state = 'inactive', finished_at = ?1, description = ?2 \
                 WHERE repository = ?3 AND environment = ?4 AND state = 'queued' AND seq < ?5 \
                 AND id >= 0 \
                 RETURNING id",
            )?,
            status: tx.prepare_cached(INSERT_STATUS)?,
        };
        for (i, fresh) in fresh.iter().enumerate() {
            if let Some(duplicate) = fresh {
                results.push(duplicate.clone());
                continue;
            }
            let at = Place { i, seq, now };
            results.push(store_one(&mut statements, batch, &superseded_by, at)?);
            seq += 1;
        }
    }
    tx.commit()?;
    *next_seq = Some(seq);
    Ok(results)
}

/// What one batch writes with, prepared once per transaction.
struct Statements<'t> {
    deployment: rusqlite::CachedStatement<'t>,
    supersede: rusqlite::CachedStatement<'t>,
    status: rusqlite::CachedStatement<'t>,
}

/// Where a new deployment goes: its place in the batch, its arrival
/// order, the batch's time.
struct Place {
    i: usize,
    seq: i64,
    now: Timestamp,
}

/// Stores the batch's `i`th delivery, a deployment new to the store: with
/// its first status, superseding what waits in its environment (and what
/// this batch superseded of it).
fn store_one(
    st: &mut Statements<'_>,
    batch: &[IntakeJob],
    superseded_by: &[Option<usize>],
    Place { i, seq, now }: Place,
) -> rusqlite::Result<Accepted> {
    let r = &batch[i];
    let d = &r.deployment;
    // Superseded within this batch: stored inactive at once, with
    // only that status. Its `queued` would never be posted.
    let (state, first, finished) = match superseded_by[i] {
        Some(j) => {
            let inactive = NewStatus::new(
                StatusState::Inactive,
                crate::wording::superseded_by(batch[j].deployment.id),
            );
            (StatusState::Inactive, inactive, Some(now))
        }
        None => (StatusState::Queued, r.queued.clone(), None),
    };
    st.deployment.execute(params![
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
        state.as_str(),
        first.description,
        now,
        finished,
        d.gated,
        d.gated.then_some(now),
    ])?;
    insert_status(&mut st.status, d.id, &first, now)?;
    let mut superseded: Vec<DeploymentId> = (0..i)
        .filter(|&k| superseded_by[k] == Some(i))
        .map(|k| batch[k].deployment.id)
        .collect();
    if r.supersede {
        let inactive = NewStatus::new(StatusState::Inactive, crate::wording::superseded_by(d.id));
        let gone = st
            .supersede
            .query_map(
                params![now, inactive.description, d.repository, d.environment, seq],
                |row| row.get(0).map(DeploymentId),
            )?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        for id in gone {
            insert_status(&mut st.status, id, &inactive, now)?;
            superseded.push(id);
        }
        superseded.sort();
    }
    Ok(Accepted::New { superseded })
}

/// Records each delivery as seen; `None` for those that bring a deployment
/// stored neither before nor earlier in the batch, else what it duplicates.
fn new_deployments(
    tx: &rusqlite::Transaction<'_>,
    batch: &[IntakeJob],
    now: Timestamp,
) -> rusqlite::Result<Vec<Option<Accepted>>> {
    let mut delivery = tx.prepare_cached(INSERT_DELIVERY)?;
    let mut stored = tx.prepare_cached("SELECT 1 FROM deployments WHERE id = ?")?;
    let mut ids = HashSet::with_capacity(batch.len());
    let mut fresh = Vec::with_capacity(batch.len());
    for r in batch {
        let (key, d) = (&r.delivery, &r.deployment);
        // A delivery without an id is told apart by its deployment only.
        fresh.push(
            if !key.delivery_id.is_empty()
                && delivery.execute(params![key.hook_id, key.delivery_id, now, d.id.0])? == 0
            {
                Some(Accepted::DuplicateDelivery)
            } else if !ids.insert(d.id) || stored.exists([d.id.0])? {
                Some(Accepted::DuplicateDeployment)
            } else {
                None
            },
        );
    }
    Ok(fresh)
}

/// For each new deployment of the batch, the later one in it that
/// supersedes it (the first in its environment whose target supersedes).
fn superseded_in_batch(batch: &[IntakeJob], fresh: &[Option<Accepted>]) -> Vec<Option<usize>> {
    let mut by = vec![None; batch.len()];
    let mut waiting: HashMap<(&str, &str), Vec<usize>> = HashMap::new();
    for (i, r) in batch.iter().enumerate() {
        if fresh[i].is_some() {
            continue;
        }
        let d = &r.deployment;
        let env = waiting
            .entry((d.repository.as_str(), d.environment.as_str()))
            .or_default();
        if r.supersede {
            for k in env.drain(..) {
                by[k] = Some(i);
            }
        }
        env.push(i);
    }
    by
}

/// A delivery seen; changes nothing (0 rows) if it was seen before.
pub const INSERT_DELIVERY: &str = "INSERT INTO deliveries (hook_id, delivery_id, received_at, \
     deployment_id) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING";

/// The outbox row for a status.
pub const INSERT_STATUS: &str = "INSERT INTO status_outbox (deployment_id, state, description, \
     log_url, environment_url, auto_inactive, created_at, next_attempt_at) \
     VALUES (?, ?, ?, ?, ?, ?, ?, ?)";

pub fn insert_status(
    statement: &mut rusqlite::CachedStatement<'_>,
    id: DeploymentId,
    s: &NewStatus,
    now: Timestamp,
) -> rusqlite::Result<()> {
    // Teardowns are ferry's own: GitHub hears of them only through the
    // `inactive` of the deployments they tear down.
    if id.is_teardown() {
        return Ok(());
    }
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
    now: Timestamp,
) -> rusqlite::Result<()> {
    let mut sent = tx.prepare_cached(
        "UPDATE status_outbox SET sent_at = ?, attempts = attempts + 1 WHERE seq = ?",
    )?;
    let mut retry = tx.prepare_cached(
        "UPDATE status_outbox SET next_attempt_at = ?, attempts = attempts + 1, last_error = ?, \
         tried_at = NULL WHERE seq = ?",
    )?;
    let mut unanswered = tx.prepare_cached(
        "UPDATE status_outbox SET next_attempt_at = ?, attempts = attempts + 1, last_error = ? \
         WHERE seq = ?",
    )?;
    let mut trying = tx.prepare_cached("UPDATE status_outbox SET tried_at = ? WHERE seq = ?")?;
    let mut failed = tx.prepare_cached(
        "UPDATE status_outbox SET failed_at = ?, attempts = attempts + 1, last_error = ? \
         WHERE seq = ?",
    )?;
    let mut coalesced =
        tx.prepare_cached("UPDATE status_outbox SET failed_at = ?, last_error = ? WHERE seq = ?")?;
    for (seq, outcome) in posts {
        match outcome {
            PostOutcome::Sent | PostOutcome::Confirmed => sent.execute(params![now, seq])?,
            PostOutcome::Trying => trying.execute(params![now, seq])?,
            PostOutcome::Unanswered { at, error } => unanswered.execute(params![at, error, seq])?,
            PostOutcome::Coalesced => {
                coalesced.execute(params![now, crate::store::COALESCED, seq])?
            }
            PostOutcome::RetryAt { at, error } => retry.execute(params![at, error, seq])?,
            PostOutcome::Failed { error } => failed.execute(params![now, error, seq])?,
        };
    }
    Ok(())
}
