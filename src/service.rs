//! The systemd side: readiness, status lines, reloads, stopping, and a
//! watchdog that only pets systemd while the runner is alive.
//!
//! Every call is a no-op outside systemd (no `NOTIFY_SOCKET`).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;

use crate::store::Timestamp;

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::debug!(error = %e, "cannot notify systemd");
    }
}

pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

pub fn status(status: &str) {
    send(&[NotifyState::Status(status)]);
}

pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

/// `RELOADING=1` must carry the time on systemd ≥ 253.
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(_) => send(&[NotifyState::Reloading]),
    }
}

/// When the runner last went round its loop, for the watchdog.
pub struct Heartbeat(AtomicI64);

impl Default for Heartbeat {
    /// Born beating: a watchdog that looks before the runner's first round
    /// must not report a runner stalled since 1970.
    fn default() -> Heartbeat {
        Heartbeat(AtomicI64::new(Timestamp::now().as_millis()))
    }
}

impl Heartbeat {
    pub fn beat(&self) {
        self.0
            .store(Timestamp::now().as_millis(), Ordering::Relaxed);
    }

    fn age(&self) -> Duration {
        Timestamp::now() - Timestamp::from_millis(self.0.load(Ordering::Relaxed))
    }
}

fn runner_alive(age: Duration, interval: Duration) -> bool {
    age < interval.max(Duration::from_secs(10))
}

/// Pets systemd's watchdog at half its interval, but only while the runner
/// moved within the interval (or 10s, as its loop may idle a few seconds):
/// a wedged runner gets ferry restarted instead of holding its deployments.
pub async fn watchdog(heartbeat: Arc<Heartbeat>, stop: CancellationToken) {
    let Some(interval) = sd_notify::watchdog_enabled() else {
        return;
    };
    let mut warned = false;
    loop {
        if runner_alive(heartbeat.age(), interval) {
            send(&[NotifyState::Watchdog]);
            warned = false;
        } else if !warned {
            tracing::error!(
                "the runner has not moved for {}s; not petting the watchdog, so systemd restarts ferry",
                heartbeat.age().as_secs()
            );
            warned = true;
        }
        tokio::select! {
            _ = tokio::time::sleep(interval / 2) => {}
            _ = stop.cancelled() => return,
        }
    }
}

/// Raises the soft limit on open files to the hard one, for the sockets of
/// many slow clients at once. Under the packaged unit `LimitNOFILE=` has
/// set both already (and the syscall filter refuses setrlimit); elsewhere
/// the soft limit is often 1024. The limit in force, for the log.
pub fn raise_open_files() -> u64 {
    // SAFETY: getrlimit/setrlimit on a stack value we own.
    unsafe {
        let mut l = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) != 0 {
            return 0;
        }
        if l.rlim_cur < l.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: l.rlim_max,
                rlim_max: l.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                return raised.rlim_cur;
            }
        }
        l.rlim_cur
    }
}

#[cfg(test)]
mod tests {
    use super::{Heartbeat, runner_alive};
    use std::time::Duration;

    #[test]
    fn a_runner_that_has_not_gone_round_yet_counts_as_alive() {
        let fresh = Heartbeat::default();
        assert!(fresh.age() < Duration::from_secs(1), "{:?}", fresh.age());
        assert!(runner_alive(fresh.age(), Duration::from_secs(60)));
    }

    #[test]
    fn a_runner_that_stopped_moving_is_not_vouched_for() {
        let s = Duration::from_secs;
        assert!(runner_alive(s(2), s(60)));
        assert!(!runner_alive(s(61), s(60)));
        // Short intervals still allow the loop's idle seconds.
        assert!(runner_alive(s(2), Duration::from_millis(400)));
        assert!(!runner_alive(s(11), Duration::from_millis(400)));
    }
}
