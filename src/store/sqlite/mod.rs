//! The SQLite backend: one box, one file (`storage.dir/ferry.db`).
//!
//! WAL mode with `synchronous = FULL`: a transaction that returned has
//! reached the disk, so a `202` survives `kill -9` and power loss.
//!
//! One driver, rusqlite, chosen by measurement: with sqlx each statement
//! was a round trip to a worker thread, and under a burst those round trips
//! (about seven per batch) rather than SQLite were most of the commit cycle.
//! Every write goes to one thread that owns the write connection
//! ([`writer`]): it commits a burst of deliveries and status records in one
//! transaction, and writers never meet SQLite's busy handler (which sleeps
//! without being woken when the lock frees). Reads run on blocking threads
//! with connections of their own, beside the writer, as WAL allows.

mod actions;
mod cancels;
mod candidates;
mod commands;
mod daemons;
mod deployments;
mod events;
mod freezes;
mod gates;
pub mod holder;
mod locks;
mod looks;
mod migrate;
mod notifications;
mod origins;
mod outbox;
mod outcomes;
mod protection;
mod requests;
mod steps;
mod teardowns;
mod writer;

use crate::sync::LockExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params};
use tokio::sync::{mpsc, oneshot};

use super::{
    Accepted, CancelOutcome, Cancellation, Claim, DeliveryKey, Deployment, DeploymentId, EnvLock,
    Error, Hold, LEASE, LockTask, NewDeployment, NewStatus, OperatorAction, OutboxItem, Owner,
    PostOutcome, RemoteStep, Result, State, StatusState, Store, Timestamp,
};
use writer::{Job, Message};

/// Idle reader connections kept open.
const READERS: usize = 4;

#[derive(Clone)]
pub struct SqliteStore {
    writer: mpsc::Sender<Message>,
    readers: Arc<Readers>,
}

struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    closed: std::sync::atomic::AtomicBool,
}

impl Readers {
    fn open(&self) -> rusqlite::Result<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::from_secs(10))?;
        Ok(conn)
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        if self.closed.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(Error::Closed);
        }
        let idle = self.idle.locked().pop();
        let conn = match idle {
            Some(c) => c,
            None => self.open()?,
        };
        let result = f(&conn);
        let mut idle = self.idle.locked();
        if idle.len() < READERS {
            idle.push(conn);
        }
        Ok(result?)
    }
}

const DEPLOYMENT_COLUMNS: &str = "id, repository, environment, task, git_ref, sha, payload, \
     creator, production, transient, installation_id, state, description, created_at, \
     started_at, finished_at, attempt, owner, cancelled_by, cancel_reason, teardown_of, checks_gate";

fn bad_column(index: usize, what: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, what.into())
}

fn deployment_from_row(row: &Row<'_>) -> rusqlite::Result<Deployment> {
    let state: String = row.get("state")?;
    Ok(Deployment {
        spec: NewDeployment {
            id: DeploymentId(row.get("id")?),
            repository: row.get("repository")?,
            environment: row.get("environment")?,
            task: row.get("task")?,
            git_ref: row.get("git_ref")?,
            sha: row.get("sha")?,
            payload: row.get("payload")?,
            creator: row.get("creator")?,
            production: row.get("production")?,
            transient: row.get("transient")?,
            installation_id: row.get("installation_id")?,
            gated: row.get("checks_gate")?,
        },
        state: State::parse(&state).ok_or_else(|| bad_column(11, format!("state {state:?}")))?,
        description: row.get("description")?,
        created_at: row.get("created_at")?,
        started_at: row.get("started_at")?,
        finished_at: row.get("finished_at")?,
        attempt: row.get("attempt")?,
        owner: row.get("owner")?,
        cancelled: row
            .get::<_, Option<String>>("cancelled_by")?
            .map(|by| -> rusqlite::Result<Cancellation> {
                Ok(Cancellation {
                    by,
                    reason: row
                        .get::<_, Option<String>>("cancel_reason")?
                        .unwrap_or_default(),
                    // Only the runner asks (cancel_requests reads it).
                    rollback: false,
                })
            })
            .transpose()?,
        teardown_of: row.get::<_, Option<i64>>("teardown_of")?.map(DeploymentId),
    })
}

/// Under the packaged unit `storage.dir` is group ferry's (setgid): the
/// group's operators write the database too (`ferry lock`, `cancel`).
/// SQLite makes a database 0644 less the umask, so the group could only
/// read it; its `-wal` and `-shm` copy the database's mode. Elsewhere
/// (no setgid directory) a new database is 0600.
fn share_with_group(dir: &Path, db: &Path) {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let setgid = std::fs::metadata(dir).is_ok_and(|m| m.permissions().mode() & 0o2000 != 0);
    if !setgid {
        // Elsewhere (a ferry run by hand) the database is its owner's
        // alone: SQLite would make it 0644, readable by every local user,
        // and its -wal and -shm copy the mode.
        if !db.exists() {
            let _ = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(db);
        }
        return;
    }
    if !db.exists() {
        // An empty file is a new database to SQLite.
        let _ = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o660)
            .open(db);
    }
    for suffix in ["", "-wal", "-shm"] {
        let file = PathBuf::from(format!("{}{suffix}", db.display()));
        if let Ok(meta) = std::fs::metadata(&file) {
            let mode = meta.permissions().mode();
            if mode & 0o060 != 0o060 {
                // Not ours (an operator's CLI): the owner fixes it.
                let _ = std::fs::set_permissions(
                    &file,
                    std::fs::Permissions::from_mode((mode | 0o060) & 0o7777),
                );
            }
        }
    }
}

fn lock_from_row(row: &Row<'_>) -> rusqlite::Result<EnvLock> {
    Ok(EnvLock {
        repository: row.get("repository")?,
        environment: row.get("environment")?,
        holder: row.get("holder")?,
        reason: row.get("reason")?,
        since: row.get("since")?,
        until: row.get("until_at")?,
    })
}

impl SqliteStore {
    /// Opens (creating if needed) the database in `dir`.
    pub async fn open(dir: &Path) -> anyhow::Result<SqliteStore> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create storage.dir {}", dir.display()))?;
        let path = dir.join("ferry.db");
        share_with_group(dir, &path);
        let (tx, queue) = mpsc::channel(4 * writer::BATCH);
        let opened = path.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let mut conn = Connection::open(&opened)?;
            // journal_mode = WAL is the database's; the rest are the connection's.
            conn.execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
            )?;
            conn.busy_timeout(Duration::from_secs(10))?;
            migrate::run(&mut conn).context("cannot migrate the database")?;
            writer::start(conn, queue)?;
            Ok(())
        })
        .await?
        .with_context(|| format!("cannot open database {}", path.display()))?;
        Ok(SqliteStore {
            writer: tx,
            readers: Arc::new(Readers {
                path,
                idle: Mutex::new(Vec::new()),
                closed: Default::default(),
            }),
        })
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T> {
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || readers.with(f))
            .await
            .map_err(|e| Error::Unavailable(format!("a store read panicked: {e}")))?
    }

    /// Runs `f` in a transaction of its own on the writer thread.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T> {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |tx| {
            let result = f(tx).map_err(Error::from);
            let ok = result.is_ok();
            let answer: writer::Reply = Box::new(move |committed: Result<()>| {
                let _ = reply.send(committed.and(result));
            });
            writer::Done {
                commit: ok,
                reply: answer,
            }
        });
        self.writer
            .send(Message::Write(job))
            .await
            .map_err(|_| Error::Closed)?;
        answer.await.map_err(|_| Error::Closed)?
    }

    async fn deployments<P: rusqlite::Params + Send + 'static>(
        &self,
        sql: String,
        params: P,
    ) -> Result<Vec<Deployment>> {
        self.read(move |c| {
            c.prepare_cached(&sql)?
                .query_map(params, deployment_from_row)?
                .collect()
        })
        .await
    }
}

/// An outbox row as [`OutboxItem`] reads it; `status_outbox o` last, so
/// that an index can be named after it, before the join's `ON`.
const OUTBOX_ITEM: &str = "SELECT o.seq, o.deployment_id, o.state, o.description, o.log_url,
         o.environment_url, o.auto_inactive, o.attempts, d.repository, d.installation_id,
         (o.state = 'queued' AND d.state = 'inactive') AS superseded,
         o.tried_at IS NOT NULL AS in_doubt
     FROM deployments d JOIN status_outbox o";

fn lease_ms() -> i64 {
    LEASE.as_millis() as i64
}

/// Whether `claim` is still the running deployment's.
fn holds(tx: &rusqlite::Transaction<'_>, claim: Claim) -> rusqlite::Result<bool> {
    tx.prepare_cached(
        "SELECT 1 FROM deployments WHERE id = ? AND attempt = ? AND state = 'running'",
    )?
    .query_row(params![claim.id.0, claim.attempt], |_| Ok(()))
    .optional()
    .map(|r| r.is_some())
}

fn insert_status(
    tx: &rusqlite::Transaction<'_>,
    id: DeploymentId,
    s: &NewStatus,
    now: Timestamp,
) -> rusqlite::Result<()> {
    writer::insert_status(&mut tx.prepare_cached(writer::INSERT_STATUS)?, id, s, now)
}

#[async_trait]
impl Store for SqliteStore {
    fn replicas(&self) -> bool {
        false
    }

    async fn created_at(&self) -> Result<Timestamp> {
        self.read(|c| c.query_row("SELECT created_at FROM store_info", [], |r| r.get(0)))
            .await
    }

    async fn probe(&self) -> Result<()> {
        self.read(|c| c.query_row("SELECT 1", [], |_| Ok(()))).await
    }

    async fn close(&self) {
        self.readers
            .closed
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.readers.idle.locked().clear();
        let (reply, closed) = oneshot::channel();
        if self.writer.send(Message::Close(reply)).await.is_ok() {
            let _ = closed.await;
        }
    }
}
