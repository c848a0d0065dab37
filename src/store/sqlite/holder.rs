//! One `ferry serve` per SQLite store.
//!
//! A second daemon on the same `storage.dir` (an operator trying a config
//! by hand beside the service) took the live daemon's running deployment
//! for a crash leftover and killed its step on the host. `serve` therefore
//! holds an exclusive `flock` on `storage.dir/serve.lock` for its whole
//! life. The kernel releases it when the process ends, `kill -9` included,
//! so a stale file never keeps ferry from starting. The CLI commands do not
//! take it: they work beside the daemon.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The file's name in `storage.dir`.
pub const LOCK_FILE: &str = "serve.lock";

/// Held while it lives; dropping it (or the process ending) lets go.
#[derive(Debug)]
pub struct DirHold {
    _file: File,
}

/// Why the directory could not be held.
#[derive(Debug, thiserror::Error)]
pub enum HoldError {
    #[error(
        "storage.dir {dir} is in use by another ferry serve{}; stop it first, or give this one a storage.dir of its own (replicas share PostgreSQL instead)",
        pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
    )]
    InUse { dir: PathBuf, pid: Option<u32> },
    #[error("cannot lock {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Takes `dir` for this process, or says which process has it. Changes
/// nothing in the directory but the lock file (created if missing).
pub fn hold(dir: &Path) -> Result<DirHold, HoldError> {
    let path = dir.join(LOCK_FILE);
    let io = |source| HoldError::Io {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .open(&path)
        .map_err(io)?;
    // SAFETY: flock on a descriptor this function owns.
    let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
    if !locked {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
            return Err(io(err));
        }
        let mut text = String::new();
        let _ = file.read_to_string(&mut text);
        return Err(HoldError::InUse {
            dir: dir.to_path_buf(),
            pid: text.trim().parse().ok(),
        });
    }
    // Ours now: say who holds it, for the next one that asks.
    file.set_len(0).map_err(io)?;
    file.rewind().map_err(io)?;
    writeln!(file, "{}", std::process::id()).map_err(io)?;
    Ok(DirHold { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_hold_names_the_first_holder_and_a_dropped_one_frees_the_dir() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        let first = hold(dir).unwrap();
        let err = hold(dir).unwrap_err().to_string();
        assert!(err.contains(&dir.display().to_string()), "{err}");
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        drop(first);
        hold(dir).expect("free again once dropped");
    }
}
