//! Per-deployment logs: one JSON-lines file per deployment under
//! `storage.dir/logs`, the tokens that guard their URLs, and rendering.

pub mod html;
pub mod page;
mod render;

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::sign;
use crate::store::{DeploymentId, now_ms};

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
    pub t: i64,
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

#[derive(Clone)]
pub struct Logs {
    dir: PathBuf,
    public_url: String,
    key: Arc<Vec<u8>>,
}

impl Logs {
    /// Opens the log directory in `storage_dir`, creating the token key on
    /// first use. The key never leaves the state directory.
    pub fn open(storage_dir: &Path, public_url: &str) -> anyhow::Result<Logs> {
        let dir = storage_dir.join("logs");
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create log directory {}", dir.display()))?;
        let key = load_or_create_key(&storage_dir.join(TOKEN_KEY_FILE))?;
        Ok(Logs {
            dir,
            public_url: public_url.to_string(),
            key: Arc::new(key),
        })
    }

    /// For read-only users (the CLI): no key needed, none created.
    pub fn reader(storage_dir: &Path) -> Logs {
        Logs {
            dir: storage_dir.join("logs"),
            public_url: String::new(),
            key: Arc::new(Vec::new()),
        }
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

    fn path(&self, id: DeploymentId) -> PathBuf {
        self.dir.join(format!("{id}.jsonl"))
    }

    pub fn writer(&self, id: DeploymentId) -> io::Result<LogWriter> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o640)
            .open(self.path(id))?;
        let written = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(LogWriter {
            file: Arc::new(Mutex::new(LogFile {
                file,
                written,
                truncated: false,
            })),
        })
    }

    /// All lines of a deployment's log; `None` when it has none (yet, or any more).
    pub fn read(&self, id: DeploymentId) -> io::Result<Option<Vec<LogLine>>> {
        self.read_from(id, 0).map(|r| r.map(|(lines, _)| lines))
    }

    /// Lines starting at byte `offset`, and the offset after the last whole
    /// line read, for followers that poll.
    pub fn read_from(
        &self,
        id: DeploymentId,
        offset: u64,
    ) -> io::Result<Option<(Vec<LogLine>, u64)>> {
        Ok(self.entries_from(id, offset)?.map(|entries| {
            let end = entries.last().map_or(offset, |(_, end)| *end);
            (entries.into_iter().map(|(l, _)| l).collect(), end)
        }))
    }

    /// As [`Logs::read_from`], with the offset just after each line.
    pub fn entries_from(
        &self,
        id: DeploymentId,
        offset: u64,
    ) -> io::Result<Option<Vec<(LogLine, u64)>>> {
        let file = match File::open(self.path(id)) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut reader = BufReader::new(file);
        io::copy(&mut (&mut reader).take(offset), &mut io::sink())?;
        let mut lines = Vec::new();
        let mut pos = offset;
        let mut buf = Vec::new();
        loop {
            buf.clear();
            let n = reader.read_until(b'\n', &mut buf)?;
            // A line without its newline is still being written.
            if n == 0 || buf.last() != Some(&b'\n') {
                break;
            }
            pos += n as u64;
            if let Ok(line) = serde_json::from_slice::<LogLine>(&buf) {
                lines.push((line, pos));
            }
        }
        Ok(Some(lines))
    }
}

impl Logs {
    /// Deletes logs last written more than `retention` ago; returns how many.
    pub fn prune(&self, retention: std::time::Duration) -> io::Result<usize> {
        let Some(cutoff) = std::time::SystemTime::now().checked_sub(retention) else {
            return Ok(0);
        };
        let mut removed = 0;
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "jsonl") {
                continue;
            }
            if entry.metadata()?.modified()? < cutoff {
                std::fs::remove_file(&path)?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// Appends lines to one deployment's log; cheap to clone across host tasks.
#[derive(Clone)]
pub struct LogWriter {
    file: Arc<Mutex<LogFile>>,
}

struct LogFile {
    file: File,
    written: u64,
    truncated: bool,
}

impl LogWriter {
    pub fn line(&self, host: Option<&str>, step: Option<&str>, stream: Stream, text: &str) {
        let line = LogLine {
            t: now_ms(),
            host: host.map(str::to_string),
            step: step.map(str::to_string),
            stream,
            text: text.to_string(),
            exit: None,
        };
        let mut log = self.file.lock().unwrap_or_else(|p| p.into_inner());
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
            t: now_ms(),
            host: Some(host.to_string()),
            step: step.map(str::to_string),
            stream: Stream::Ferry,
            text: text.to_string(),
            exit: Some(exit),
        };
        self.file
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .append(&line);
    }
}

impl LogFile {
    fn append(&mut self, line: &LogLine) {
        let mut json = serde_json::to_vec(line).expect("log lines serialize");
        json.push(b'\n');
        // One write per line on an O_APPEND file: readers never see half a line.
        match self.file.write_all(&json) {
            Ok(()) => self.written += json.len() as u64,
            Err(e) => tracing::warn!(error = %e, "cannot write a deployment log line: {e}"),
        }
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
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(&key)?;
    file.sync_all()?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_per_deployment_and_per_key() {
        let dir = tempfile::tempdir().unwrap();
        let logs = Logs::open(dir.path(), "https://d.example").unwrap();
        let t1 = logs.token(DeploymentId(1));
        assert_eq!(t1.len(), 64);
        assert!(logs.token_valid(DeploymentId(1), &t1));
        assert!(!logs.token_valid(DeploymentId(2), &t1));
        assert!(!logs.token_valid(DeploymentId(1), &t1[..32]));
        assert!(!logs.token_valid(DeploymentId(1), "zz"));
        assert!(!logs.token_valid(DeploymentId(1), ""));
        // The key persists: a restart keeps old links working.
        let again = Logs::open(dir.path(), "https://d.example").unwrap();
        assert!(again.token_valid(DeploymentId(1), &t1));
        let other = tempfile::tempdir().unwrap();
        let stranger = Logs::open(other.path(), "https://d.example").unwrap();
        assert!(!stranger.token_valid(DeploymentId(1), &t1));
        assert_eq!(
            logs.url(DeploymentId(7)),
            format!(
                "https://d.example/deployments/7/log?token={}",
                logs.token(DeploymentId(7))
            )
        );
    }

    #[test]
    fn prune_removes_only_old_logs() {
        let dir = tempfile::tempdir().unwrap();
        let logs = Logs::open(dir.path(), "http://x").unwrap();
        logs.writer(DeploymentId(1))
            .unwrap()
            .ferry(None, None, "old");
        logs.writer(DeploymentId(2))
            .unwrap()
            .ferry(None, None, "new");
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3 * 86400);
        File::options()
            .write(true)
            .open(logs.path(DeploymentId(1)))
            .unwrap()
            .set_modified(old)
            .unwrap();
        assert_eq!(
            logs.prune(std::time::Duration::from_secs(86400)).unwrap(),
            1
        );
        assert!(logs.read(DeploymentId(1)).unwrap().is_none());
        assert!(logs.read(DeploymentId(2)).unwrap().is_some());
        assert!(
            dir.path().join(TOKEN_KEY_FILE).exists(),
            "only logs are pruned"
        );
    }

    #[test]
    fn lines_round_trip_and_partial_lines_wait() {
        let dir = tempfile::tempdir().unwrap();
        let logs = Logs::open(dir.path(), "http://x").unwrap();
        let id = DeploymentId(5);
        assert!(logs.read(id).unwrap().is_none());
        let w = logs.writer(id).unwrap();
        w.line(Some("web1"), Some("build"), Stream::Out, "hello <b>");
        w.ferry(None, None, "done");
        let (lines, end) = logs.read_from(id, 0).unwrap().unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].text, "hello <b>");
        assert_eq!(lines[0].host.as_deref(), Some("web1"));
        let mut f = OpenOptions::new().append(true).open(logs.path(id)).unwrap();
        f.write_all(b"{\"t\":1,\"stream\":\"out\",\"te").unwrap();
        let (more, end2) = logs.read_from(id, end).unwrap().unwrap();
        assert!(more.is_empty());
        assert_eq!(end2, end);
    }
}
