//! Deployment logs in PostgreSQL, so that any replica serves any log live.
//!
//! A log is the same JSON lines as on disk, stored as chunks of whole lines
//! keyed by the byte offset just past each chunk: readers resume at an
//! offset exactly as with a file. Writers buffer lines and append a chunk
//! every [`FLUSH_EVERY`] or [`FLUSH_BYTES`], and `NOTIFY ferry_log` so that
//! other replicas' live pages wake (a hint: they poll too).

use crate::sync::LockExt;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::{Notify, broadcast};

use crate::error::error_chain;
use crate::store::{DeploymentId, Timestamp};

pub const FLUSH_EVERY: Duration = Duration::from_millis(250);
pub const FLUSH_BYTES: usize = 64 * 1024;
/// The channel other replicas' appends are announced on.
pub const CHANNEL: &str = "ferry_log";

fn io_error(e: sqlx::Error) -> io::Error {
    io::Error::other(error_chain(&e))
}

/// Where the log-link key lives with replicas: one key for all of them, so
/// a link minted by one opens on another.
pub(super) async fn key(pool: &PgPool) -> anyhow::Result<Vec<u8>> {
    let mut fresh = vec![0u8; 32];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut fresh)?;
    sqlx::query(
        "INSERT INTO ferry_keys (name, value) VALUES ('log-token', $1) ON CONFLICT DO NOTHING",
    )
    .bind(&fresh)
    .execute(pool)
    .await?;
    Ok(
        sqlx::query_scalar("SELECT value FROM ferry_keys WHERE name = 'log-token'")
            .fetch_one(pool)
            .await?,
    )
}

/// The log's bytes from `offset` on; None when it has none.
pub(super) async fn bytes_from(
    pool: &PgPool,
    id: DeploymentId,
    offset: u64,
) -> io::Result<Option<Vec<u8>>> {
    let chunks: Vec<(i64, Vec<u8>)> = sqlx::query_as(
        "SELECT end_offset, body FROM log_chunks WHERE deployment_id = $1 AND end_offset > $2
         ORDER BY end_offset",
    )
    .bind(id.0)
    .bind(offset as i64)
    .fetch_all(pool)
    .await
    .map_err(io_error)?;
    if chunks.is_empty() {
        let any: Option<i32> =
            sqlx::query_scalar("SELECT 1 FROM log_chunks WHERE deployment_id = $1 LIMIT 1")
                .bind(id.0)
                .fetch_optional(pool)
                .await
                .map_err(io_error)?;
        return Ok(any.map(|_| Vec::new()));
    }
    let start = chunks[0].0 as u64 - chunks[0].1.len() as u64;
    let mut bytes: Vec<u8> = chunks.into_iter().flat_map(|(_, b)| b).collect();
    // Offsets handed out fall between lines, so this cuts at a line.
    bytes.drain(..(offset.saturating_sub(start) as usize).min(bytes.len()));
    Ok(Some(bytes))
}

/// The log's length so far: where a new writer carries on.
pub(super) async fn length(pool: &PgPool, id: DeploymentId) -> io::Result<u64> {
    let end: Option<i64> =
        sqlx::query_scalar("SELECT MAX(end_offset) FROM log_chunks WHERE deployment_id = $1")
            .bind(id.0)
            .fetch_one(pool)
            .await
            .map_err(io_error)?;
    Ok(end.unwrap_or(0) as u64)
}

/// Deletes the logs of deployments whose last line is older than `cutoff`
/// (unix ms); how many logs went.
pub(super) async fn prune(pool: &PgPool, cutoff: Timestamp) -> io::Result<usize> {
    let gone: i64 = sqlx::query_scalar(
        "WITH old AS (
             SELECT deployment_id FROM log_chunks GROUP BY deployment_id
             HAVING MAX(created_at) < $1),
         gone AS (
             DELETE FROM log_chunks WHERE deployment_id IN (SELECT deployment_id FROM old))
         SELECT COUNT(*) FROM old",
    )
    .bind(cutoff)
    .fetch_one(pool)
    .await
    .map_err(io_error)?;
    Ok(gone as usize)
}

/// Lines waiting to be appended, shared by a deployment's writers and the
/// task that flushes them.
pub struct Buffer {
    shared: Arc<Shared>,
}

struct Shared {
    pool: PgPool,
    id: DeploymentId,
    bytes: Mutex<Vec<u8>>,
    /// Held while a chunk is taken and appended: chunks land in order.
    appending: tokio::sync::Mutex<()>,
    wake: Notify,
    closed: AtomicBool,
    changed: broadcast::Sender<DeploymentId>,
}

impl Buffer {
    /// A buffer for `id`'s log, with its flushing task.
    pub(super) fn new(
        pool: PgPool,
        id: DeploymentId,
        changed: broadcast::Sender<DeploymentId>,
    ) -> Buffer {
        let shared = Arc::new(Shared {
            pool,
            id,
            bytes: Mutex::new(Vec::new()),
            appending: tokio::sync::Mutex::new(()),
            wake: Notify::new(),
            closed: AtomicBool::new(false),
            changed,
        });
        tokio::spawn(flush_loop(shared.clone()));
        Buffer { shared }
    }

    pub fn push(&self, line: &[u8]) {
        let full = {
            let mut bytes = self.shared.bytes.locked();
            bytes.extend_from_slice(line);
            bytes.len() >= FLUSH_BYTES
        };
        if full {
            self.shared.wake.notify_one();
        }
    }

    /// What can flush the buffer without holding on to it.
    pub fn handle(&self) -> Flush {
        Flush {
            shared: self.shared.clone(),
        }
    }
}

pub struct Flush {
    shared: Arc<Shared>,
}

impl Flush {
    /// Appends what is buffered now, and returns once it is stored.
    pub async fn flush(&self) -> io::Result<()> {
        self.shared.append().await
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        self.shared.wake.notify_one();
    }
}

impl Shared {
    async fn append(&self) -> io::Result<()> {
        let _turn = self.appending.lock().await;
        let chunk = std::mem::take(&mut *self.bytes.locked());
        if chunk.is_empty() {
            return Ok(());
        }
        match self.insert(&chunk).await {
            Ok(()) => {
                let _ = self.changed.send(self.id);
                Ok(())
            }
            Err(e) => {
                // Back in front of whatever arrived meanwhile, for the next try.
                let mut bytes = self.bytes.locked();
                let later = std::mem::replace(&mut *bytes, chunk);
                bytes.extend_from_slice(&later);
                Err(io_error(e))
            }
        }
    }

    async fn insert(&self, chunk: &[u8]) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        // Writers of one log (two replicas, after a takeover) take turns,
        // so that offsets never overlap.
        sqlx::query("SELECT pg_advisory_xact_lock(1718054759, hashint8($1))")
            .bind(self.id.0)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO log_chunks (deployment_id, end_offset, body, created_at)
             SELECT $1, COALESCE(MAX(end_offset), 0) + $2, $3, $4
             FROM log_chunks WHERE deployment_id = $1",
        )
        .bind(self.id.0)
        .bind(chunk.len() as i64)
        .bind(chunk)
        .bind(Timestamp::now())
        .execute(&mut *tx)
        .await?;
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(self.id.0.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    }
}

/// Appends every [`FLUSH_EVERY`] (sooner when [`FLUSH_BYTES`] wait), until
/// the writers are gone and all they wrote is stored. While the database is
/// away, lines wait in memory (at most a deployment's output cap) and the
/// append is tried again.
async fn flush_loop(shared: Arc<Shared>) {
    let mut failures = 0u32;
    loop {
        let closed = shared.closed.load(Ordering::Acquire);
        if !closed {
            tokio::select! {
                _ = shared.wake.notified() => {}
                _ = tokio::time::sleep(FLUSH_EVERY) => {}
            }
        }
        match shared.append().await {
            Ok(()) => failures = 0,
            Err(e) => {
                failures += 1;
                if failures == 1 || failures.is_multiple_of(20) {
                    tracing::warn!(deployment = %shared.id, "cannot store log lines of deployment {}, retrying: {e}", shared.id);
                }
                // Give up on a closed log after about five minutes of trying.
                if closed && failures > 300 {
                    tracing::error!(deployment = %shared.id, "log lines of deployment {} lost: {e}", shared.id);
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        }
        if closed && shared.bytes.locked().is_empty() {
            return;
        }
    }
}
