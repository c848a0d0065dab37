//! Deployment logs as files: `storage.dir/logs/ID.jsonl`, one JSON line
//! per log line, appended with one write each.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::store::DeploymentId;

fn path(dir: &Path, id: DeploymentId) -> PathBuf {
    dir.join(format!("{id}.jsonl"))
}

pub fn append(dir: &Path, id: DeploymentId) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        // Group ferry's operators write logs too (`ferry cancel`).
        .mode(0o660)
        .open(path(dir, id))
}

/// The log's bytes from `offset` on; None when there is no log.
pub fn bytes_from(dir: &Path, id: DeploymentId, offset: u64) -> io::Result<Option<Vec<u8>>> {
    let mut file = match File::open(path(dir, id)) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    file.seek(SeekFrom::Start(offset))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(Some(bytes))
}

/// Deletes logs last written more than `retention` ago; returns how many.
pub fn prune(dir: &Path, retention: std::time::Duration) -> io::Result<usize> {
    let Some(cutoff) = std::time::SystemTime::now().checked_sub(retention) else {
        return Ok(0);
    };
    let mut removed = 0;
    for entry in std::fs::read_dir(dir)? {
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
