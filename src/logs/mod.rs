//! Per-deployment logs as JSON lines: one file per deployment under
//! `storage.dir/logs`, or chunks in PostgreSQL (the store's
//! [`Database`], `store/postgres/logs.rs`) where replicas share it; the
//! tokens that guard their URLs; and rendering.

mod files;
pub mod html;
pub mod page;
mod render;

use crate::sync::LockExt;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::sign;
use crate::store::postgres::{Database, LogBuffer};
use crate::store::{DeploymentId, Timestamp};

pub use crate::store::postgres::LOG_CHANNEL as NOTIFY_CHANNEL;
pub use render::text;

const TOKEN_KEY_FILE: &str = "log-token.key";

/// Step output kept per deployment. Past it the log says so once and the
/// rest is read from the hosts and dropped: the deployment carries on.
pub const MAX_OUTPUT_BYTES: u64 = 16 * 1024 * 1024;

/// Which stream a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Out,
    Err,
    /// ferry's own account of what it did.
    Ferry,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// Unix milliseconds.
    pub t: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    pub stream: Stream,
    pub text: String,
    /// On the line that ends a step (or a failed connect): its exit status,
    /// 255 when the connection failed or was lost, 143 when ferry stopped it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<i32>,
}

/// Where logs are kept: files beside the SQLite database, or PostgreSQL
/// where replicas share it.
#[derive(Clone)]
enum Storage {
    Files(PathBuf),
    Database(Database),
}

#[derive(Clone)]
pub struct Logs {
    storage: Storage,
    public_url: String,
    key: Arc<Vec<u8>>,
    /// A deployment's writers share one state, so that lines from the
    /// runner, the rescuer and the final status land in order.
    writers: Arc<Mutex<HashMap<DeploymentId, Weak<Mutex<Sink>>>>>,
    /// Rung with a deployment's id when lines were added to its log (by
    /// this process, or by another replica as PostgreSQL tells).
    changed: broadcast::Sender<DeploymentId>,
}

impl Logs {
    /// Opens the logs: files in `storage_dir/logs`, or the PostgreSQL
    /// database `db`. The key that signs log links is made on first use and
    /// kept where the logs are.
    pub async fn open(
        storage_dir: &Path,
        public_url: &str,
        db: Option<Database>,
    ) -> anyhow::Result<Logs> {
        let (storage, key) = match db {
            Some(db) => {
                let key = db
                    .log_key()
                    .await
                    .context("cannot read the log-link key from PostgreSQL")?;
                (Storage::Database(db), key)
            }
            None => {
                let dir = storage_dir.join("logs");
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("cannot create log directory {}", dir.display()))?;
                let key = load_or_create_key(&storage_dir.join(TOKEN_KEY_FILE))?;
                (Storage::Files(dir), key)
            }
        };
        Ok(Logs::with(storage, public_url, key))
    }

    fn with(storage: Storage, public_url: &str, key: Vec<u8>) -> Logs {
        Logs {
            storage,
            public_url: public_url.to_string(),
            key: Arc::new(key),
            writers: Arc::default(),
            changed: broadcast::channel(256).0,
        }
    }

    /// For read-only users (the CLI): no key needed, none created.
    pub fn reader(storage_dir: &Path, db: Option<Database>) -> Logs {
        let storage = match db {
            Some(db) => Storage::Database(db),
            None => Storage::Files(storage_dir.join("logs")),
        };
        Logs::with(storage, "", Vec::new())
    }

    fn message(id: DeploymentId) -> String {
        format!("ferry log {id}")
    }

    pub fn token(&self, id: DeploymentId) -> String {
        hex::encode(sign::sign(&self.key, Self::message(id).as_bytes()))
    }

    pub fn token_valid(&self, id: DeploymentId, token: &str) -> bool {
        match hex::decode(token) {
            Ok(tag) => {
                !self.key.is_empty() && sign::verify(&self.key, Self::message(id).as_bytes(), &tag)
            }
            Err(_) => false,
        }
    }

    pub fn url(&self, id: DeploymentId) -> String {
        format!(
            "{}/deployments/{id}/log?token={}",
            self.public_url,
            self.token(id)
        )
    }

    /// Wakes on new lines in any log; a hint, as some are missed (a lagging
    /// reader, a replica's notice lost while reconnecting).
    pub fn changes(&self) -> broadcast::Receiver<DeploymentId> {
        self.changed.subscribe()
    }

    /// Another replica added lines to `id`'s log.
    pub fn changed_elsewhere(&self, id: DeploymentId) {
        let _ = self.changed.send(id);
    }

    /// A writer for `id`'s log, sharing its state with any other writer of
    /// it open in this process.
    pub async fn writer(&self, id: DeploymentId) -> io::Result<LogWriter> {
        if let Some(open) = self.writers.locked().get(&id).and_then(Weak::upgrade) {
            return Ok(LogWriter { sink: open });
        }
        let (target, written) = match &self.storage {
            Storage::Files(dir) => {
                let file = files::append(dir, id)?;
                let written = file.metadata().map(|m| m.len()).unwrap_or(0);
                (Target::File(file, self.changed.clone(), id), written)
            }
            Storage::Database(db) => {
                let written = db.log_length(id).await?;
                let buffer = db.log_buffer(id, self.changed.clone());
                (Target::Database(buffer), written)
            }
        };
        let sink = Arc::new(Mutex::new(Sink {
            target,
            written,
            truncated: false,
        }));
        let mut writers = self.writers.locked();
        writers.retain(|_, w| w.strong_count() > 0);
        // Another task may have opened one meanwhile: use that one.
        if let Some(open) = writers.get(&id).and_then(Weak::upgrade) {
            return Ok(LogWriter { sink: open });
        }
        writers.insert(id, Arc::downgrade(&sink));
        Ok(LogWriter { sink })
    }

    /// All lines of a deployment's log; `None` when it has none (yet, or any more).
    pub async fn read(&self, id: DeploymentId) -> io::Result<Option<Vec<LogLine>>> {
        Ok(self.read_from(id, 0).await?.map(|(lines, _)| lines))
    }

    /// Lines starting at byte `offset`, and the offset after the last whole
    /// line read, for followers that poll.
    pub async fn read_from(
        &self,
        id: DeploymentId,
        offset: u64,
    ) -> io::Result<Option<(Vec<LogLine>, u64)>> {
        Ok(self.entries_from(id, offset).await?.map(|entries| {
            let end = entries.last().map_or(offset, |(_, end)| *end);
            (entries.into_iter().map(|(l, _)| l).collect(), end)
        }))
    }

    /// As [`Logs::read_from`], with the offset just after each line.
    pub async fn entries_from(
        &self,
        id: DeploymentId,
        offset: u64,
    ) -> io::Result<Option<Vec<(LogLine, u64)>>> {
        let bytes = match &self.storage {
            Storage::Files(dir) => files::bytes_from(dir, id, offset)?,
            Storage::Database(db) => db.log_from(id, offset).await?,
        };
        Ok(bytes.map(|b| parse(&b, offset)))
    }

    /// Deletes logs last written more than `retention` ago; returns how many.
    pub async fn prune(&self, retention: std::time::Duration) -> io::Result<usize> {
        match &self.storage {
            Storage::Files(dir) => {
                let dir = dir.clone();
                tokio::task::spawn_blocking(move || files::prune(&dir, retention))
                    .await
                    .map_err(io::Error::other)?
            }
            Storage::Database(db) => db.prune_logs(Timestamp::now() - retention).await,
        }
    }
}

/// Whole lines from `bytes`, which start at `offset`, each with the offset
/// just after it. A line without its newline is still being written.
fn parse(bytes: &[u8], offset: u64) -> Vec<(LogLine, u64)> {
    let mut lines = Vec::new();
    let mut pos = offset;
    for raw in bytes.split_inclusive(|b| *b == b'\n') {
        if raw.last() != Some(&b'\n') {
            break;
        }
        pos += raw.len() as u64;
        if let Ok(line) = serde_json::from_slice::<LogLine>(raw) {
            lines.push((line, pos));
        }
    }
    lines
}

/// Appends lines to one deployment's log; cheap to clone across host tasks.
#[derive(Clone)]
pub struct LogWriter {
    sink: Arc<Mutex<Sink>>,
}

struct Sink {
    target: Target,
    written: u64,
    truncated: bool,
}

enum Target {
    File(File, broadcast::Sender<DeploymentId>, DeploymentId),
    Database(LogBuffer),
}

impl LogWriter {
    fn lock(&self) -> std::sync::MutexGuard<'_, Sink> {
        self.sink.locked()
    }

    pub fn line(&self, host: Option<&str>, step: Option<&str>, stream: Stream, text: &str) {
        let line = LogLine {
            t: Timestamp::now(),
            host: host.map(str::to_string),
            step: step.map(str::to_string),
            stream,
            text: text.to_string(),
            exit: None,
        };
        let mut log = self.lock();
        if stream != Stream::Ferry && log.written >= MAX_OUTPUT_BYTES {
            if log.truncated {
                return;
            }
            log.truncated = true;
            let note = LogLine {
                stream: Stream::Ferry,
                text: format!(
                    "output truncated: a deployment log keeps {} MiB of output; the rest is discarded",
                    MAX_OUTPUT_BYTES >> 20
                ),
                ..line
            };
            return log.append(&note);
        }
        log.append(&line);
    }

    pub fn ferry(&self, host: Option<&str>, step: Option<&str>, text: &str) {
        self.line(host, step, Stream::Ferry, text);
    }

    /// ferry's line that ends a step (or a connection attempt) with `exit`.
    pub fn ended(&self, host: &str, step: Option<&str>, text: &str, exit: i32) {
        let line = LogLine {
            t: Timestamp::now(),
            host: Some(host.to_string()),
            step: step.map(str::to_string),
            stream: Stream::Ferry,
            text: text.to_string(),
            exit: Some(exit),
        };
        self.lock().append(&line);
    }

    /// Returns once every line written so far can be read back: before a
    /// final status announces the log complete.
    pub async fn flush(&self) -> io::Result<()> {
        let buffer = match &self.lock().target {
            Target::File(..) => return Ok(()),
            Target::Database(b) => b.handle(),
        };
        buffer.flush().await
    }
}

impl Sink {
    fn append(&mut self, line: &LogLine) {
        let mut json = serde_json::to_vec(line).expect("log lines serialize");
        json.push(b'\n');
        match &mut self.target {
            // One write per line on an O_APPEND file: readers never see half a line.
            Target::File(file, changed, id) => match file.write_all(&json) {
                Ok(()) => {
                    let _ = changed.send(*id);
                    crate::health::recovered(crate::health::Part::Logs);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot write a deployment log line: {e}");
                    crate::health::failed(
                        crate::health::Part::Logs,
                        format!("cannot write deployment logs: {e}"),
                    );
                    return;
                }
            },
            Target::Database(buffer) => buffer.push(&json),
        }
        self.written += json.len() as u64;
    }
}

fn load_or_create_key(path: &Path) -> anyhow::Result<Vec<u8>> {
    match std::fs::read(path) {
        Ok(key) if key.len() >= 32 => return Ok(key),
        Ok(_) => anyhow::bail!(
            "{} is shorter than 32 bytes; remove it and ferry makes a new one (old log links stop working)",
            path.display()
        ),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
    let mut key = vec![0u8; 32];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut key))
        .context("cannot read /dev/urandom")?;
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        // Readable by group ferry's operators, whose `ferry cancel` puts
        // a log link in the status it queues; they read the logs anyway.
        .mode(0o640)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(&key)?;
    file.sync_all()?;
    Ok(key)
}

#[cfg(test)]
mod tests;
