//! Whether the store can take writes, for `GET /healthz` (docs/reference.md, "HTTP", and
//! "Storage unavailable"): a load balancer or monitor sees `503` and the
//! reason while the database is unreachable or the disk is full, and `200`
//! again as soon as it is back, without a restart.
//!
//! Three parts report: intake (a delivery the store refused), the logs (a
//! log that cannot grow) and a probe that looks every second. A refusal
//! counts for [`REMEMBER`] unless something succeeds since; the probe's
//! finding counts until its next look.

use crate::sync::LockExt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::store::SharedStore;

/// How long a failed write keeps `/healthz` at 503 without a new failure.
pub const REMEMBER: Duration = Duration::from_secs(5);
/// Between the probe's looks.
pub const PROBE_EVERY: Duration = Duration::from_secs(1);
/// A probe that takes longer than this is a failure.
pub const PROBE_WITHIN: Duration = Duration::from_millis(1500);
/// Free space under which an SQLite `storage.dir` counts as full: the WAL,
/// a checkpoint and the logs need room to grow.
pub const MIN_FREE_BYTES: u64 = 1024 * 1024;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Part {
    Intake,
    Logs,
    Probe,
}

struct Finding {
    part: Part,
    why: String,
    at: Instant,
}

static FINDINGS: Mutex<Vec<Finding>> = Mutex::new(Vec::new());

fn findings() -> std::sync::MutexGuard<'static, Vec<Finding>> {
    FINDINGS.locked()
}

/// `part` could not write: `why` is what `/healthz` says.
pub fn failed(part: Part, why: impl Into<String>) {
    let why = why.into();
    let mut f = findings();
    f.retain(|x| x.part != part);
    f.push(Finding {
        part,
        why,
        at: Instant::now(),
    });
}

/// `part` wrote successfully: what it reported before no longer holds.
pub fn recovered(part: Part) {
    findings().retain(|x| x.part != part);
}

/// Why the store cannot take writes now, if it cannot.
pub fn problem() -> Option<String> {
    let mut f = findings();
    f.retain(|x| x.part == Part::Probe || x.at.elapsed() < REMEMBER);
    // The probe's finding first: it is the freshest look at the storage.
    f.iter()
        .find(|x| x.part == Part::Probe)
        .or_else(|| f.last())
        .map(|x| x.why.clone())
}

/// What the probe found at its last look, if the storage is unusable: a
/// delivery then gets its `503` at once instead of waiting for a write
/// that cannot succeed (or, on a full disk, one that might just fit while
/// the logs cannot grow).
pub fn probe_problem() -> Option<String> {
    findings()
        .iter()
        .find(|x| x.part == Part::Probe)
        .map(|x| x.why.clone())
}

/// Looks at the storage every [`PROBE_EVERY`] until `stop`: the database
/// answers a query, and (SQLite) `dir` has room to grow.
pub async fn probe(
    store: SharedStore,
    dir: Option<std::path::PathBuf>,
    stop: tokio_util::sync::CancellationToken,
) {
    loop {
        let finding = match tokio::time::timeout(PROBE_WITHIN, store.probe()).await {
            Ok(Ok(())) => dir.as_deref().and_then(disk_full),
            Ok(Err(e)) => Some(format!("the database does not answer: {e}")),
            Err(_) => Some(format!(
                "the database does not answer within {}",
                crate::format::duration(PROBE_WITHIN)
            )),
        };
        match finding {
            Some(why) => {
                if problem().as_deref() != Some(why.as_str()) {
                    tracing::error!("storage unavailable: {why}");
                }
                failed(Part::Probe, why);
            }
            None => {
                if findings().iter().any(|f| f.part == Part::Probe) {
                    tracing::info!("storage available again");
                }
                recovered(Part::Probe);
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(PROBE_EVERY) => {}
            _ = stop.cancelled() => return,
        }
    }
}

/// "disk full: 12 KiB free in /var/lib/ferry", if so.
pub fn disk_full(dir: &std::path::Path) -> Option<String> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: a valid C string and an out-parameter we own.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(path.as_ptr(), &mut s) } != 0 {
        return None;
    }
    let free = s.f_bavail as u64 * s.f_frsize as u64;
    (free < MIN_FREE_BYTES)
        .then(|| format!("disk full: {} KiB free in {}", free / 1024, dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_is_reported_until_recovered() {
        recovered(Part::Intake);
        recovered(Part::Probe);
        assert_eq!(problem(), None);
        failed(Part::Intake, "database is locked");
        assert_eq!(problem().as_deref(), Some("database is locked"));
        failed(Part::Probe, "disk full");
        assert_eq!(problem().as_deref(), Some("disk full"));
        recovered(Part::Probe);
        recovered(Part::Intake);
        assert_eq!(problem(), None);
        assert_eq!(disk_full(std::path::Path::new("/")), None);
    }
}
