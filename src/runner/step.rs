//! Running one step on a connection: the wrapper's stdin, its output line
//! by line, its process group announced as it starts, and ending it (a
//! kill on request, or telling a lost connection from a killed step).

use std::sync::OnceLock;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use super::link::Link;
use super::remote::{self, RemoteGroup};
use crate::logs::Stream;

/// Longest line kept whole; longer output is split into pieces this long.
pub const MAX_LINE: usize = 16 * 1024;

/// Why a running step was interrupted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    Run,
    /// Another host failed: the deployment is over.
    Halt,
    TimedOut,
    Shutdown,
    /// Another process took the deployment over (this one lost its lease).
    LeaseLost,
    /// An operator cancelled it.
    Cancelled,
}

#[derive(Debug, PartialEq, Eq)]
pub enum StepEnd {
    Exited(i32),
    /// The remote process ended without an exit status (a signal), while
    /// the connection stayed up.
    Lost(String),
    /// The connection died while the step ran (the host missed its
    /// keepalives): the step may well still run there.
    ConnectionLost,
    /// The connection could not start the step: nothing ran.
    NotStarted(String),
    /// Stopped on request; `ended` when the kill reached the host (else the
    /// step may still run there).
    Stopped {
        ended: bool,
    },
}

/// Runs one step's input through the wrapper; every output line goes to
/// `emit`. Returns when the step ends or `stop` says to stop (after killing
/// the step's process group on the host).
///
/// The wrapper announces its process group (`started`) before it reads its
/// script from stdin, and the script is sent only once `recorded` is done
/// (the caller has stored the group) or the wrapper announced none. Sent at
/// once, a ferry that died in between left a step running that nothing
/// recorded, so the next ferry could neither end it nor hold its
/// environment; now such a wrapper's stdin closes and its empty script
/// runs nothing.
pub async fn run_step(
    link: &Link,
    input: Vec<u8>,
    stop: &mut watch::Receiver<Stop>,
    emit: &(dyn Fn(Stream, &str) + Sync),
    started: &(dyn Fn(&RemoteGroup) + Sync),
    recorded: impl std::future::Future<Output = ()>,
) -> StepEnd {
    let child = match link.spawn(remote::WRAPPER).await {
        Ok(c) => c,
        Err(e) => return StepEnd::NotStarted(format!("cannot start the step: {e}")),
    };
    let (mut stdin, stdout, stderr, child) = (child.stdin, child.stdout, child.stderr, child.child);
    let pgid = OnceLock::new();
    let announced = tokio::sync::Notify::new();
    let no_group = tokio::sync::Notify::new();
    let announce = |group: &RemoteGroup| {
        started(group);
        announced.notify_one();
    };
    let no_group_ref = &no_group;
    let feed = async move {
        tokio::select! {
            _ = recorded => {}
            _ = no_group_ref.notified() => {}
        }
        // A write error means the step already ended; its status says why.
        let _ = stdin.write_all(&input).await;
        let _ = stdin.shutdown().await;
        drop(stdin);
    };
    let io = async {
        tokio::join!(
            feed,
            pump(stdout, Stream::Out, emit, None),
            pump(
                stderr,
                Stream::Err,
                emit,
                Some((&pgid, &announce, &no_group))
            ),
        )
    };
    tokio::pin!(io);
    let stopped = async {
        // A closed channel means the deployment was dropped: also stop.
        let _ = stop.wait_for(|s| *s != Stop::Run).await;
    };
    tokio::select! {
        _ = &mut io => {}
        _ = stopped => {
            // Asked to stop before the wrapper said which group the step
            // runs in (a deadline that ran out while the session started):
            // its first line says so, so wait for it rather than leave the
            // step running on the host, unkilled.
            if pgid.get().is_none() {
                let _ = tokio::time::timeout(ANNOUNCE_WAIT, async {
                    tokio::select! {
                        _ = &mut io => {}
                        _ = announced.notified() => {}
                    }
                })
                .await;
            }
            let ended = kill_group(link, pgid.get().map(|g: &RemoteGroup| g.pgid), emit).await;
            // Give the streams a moment to deliver the last lines.
            let _ = tokio::time::timeout(Duration::from_secs(5), &mut io).await;
            return StepEnd::Stopped { ended };
        }
    }
    let ended = match child.wait().await {
        Ok(status) => match status.code() {
            Some(code) => return StepEnd::Exited(code),
            None => "the step ended without an exit status (killed by a signal?)".to_string(),
        },
        Err(e) => e,
    };
    // The multiplexer says the same ("the remote process has terminated")
    // when the connection died: only a master that still answers means
    // the step is really gone.
    if link.alive().await {
        StepEnd::Lost(ended)
    } else {
        StepEnd::ConnectionLost
    }
}

/// How long a step asked to stop may take to announce its process group
/// (the wrapper's first line) so that it can be killed.
const ANNOUNCE_WAIT: Duration = Duration::from_secs(5);

/// Kills the step's process group; whether the kill reached the host.
async fn kill_group(link: &Link, pgid: Option<u32>, emit: &(dyn Fn(Stream, &str) + Sync)) -> bool {
    let Some(pgid) = pgid.filter(|&g| g > 1) else {
        // Nothing announced a group: the step had not started, or its
        // wrapper never ran. Nothing is recorded to hold the host for.
        emit(
            Stream::Ferry,
            "cannot stop the step: its process group is unknown",
        );
        return true;
    };
    let command = remote::kill_command(pgid);
    match tokio::time::timeout(Duration::from_secs(15), link.status(&command)).await {
        Ok(Ok(_)) => {
            emit(
                Stream::Ferry,
                &format!("stopped the step (process group {pgid})"),
            );
            true
        }
        Ok(Err(e)) => {
            emit(
                Stream::Ferry,
                &format!("cannot stop the step (process group {pgid}): {e}"),
            );
            false
        }
        Err(_) => {
            emit(
                Stream::Ferry,
                &format!("stopping the step (process group {pgid}) timed out"),
            );
            false
        }
    }
}

/// Reads a stream to its end, emitting lines: invalid UTF-8 replaced, very
/// long lines split. With `group`, the wrapper's first line is taken from
/// it, and announced; if that line names no group (or the stream ends
/// first), the last `Notify` says so.
type GroupSink<'a> = (
    &'a OnceLock<RemoteGroup>,
    &'a (dyn Fn(&RemoteGroup) + Sync),
    &'a tokio::sync::Notify,
);

async fn pump(
    mut r: impl AsyncRead + Unpin,
    stream: Stream,
    emit: &(dyn Fn(Stream, &str) + Sync),
    pgid: Option<GroupSink<'_>>,
) {
    let mut marker_pending = pgid.is_some();
    let mut line: Vec<u8> = Vec::with_capacity(256);
    let mut buf = vec![0u8; 16 * 1024];
    let flush = |line: &mut Vec<u8>, marker_pending: &mut bool| {
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        let text = String::from_utf8_lossy(line);
        // Only the first line may be the marker (and only with a sink).
        match std::mem::take(marker_pending).then_some(pgid).flatten() {
            Some((cell, started, none)) => {
                match text
                    .strip_prefix(remote::PGID_MARKER)
                    .map(RemoteGroup::parse)
                {
                    Some(Some(g)) => {
                        started(&g);
                        let _ = cell.set(g);
                    }
                    // A marker naming no group is not output either.
                    Some(None) => none.notify_one(),
                    None => {
                        none.notify_one();
                        emit(stream, &text);
                    }
                }
            }
            None => emit(stream, &text),
        }
        line.clear();
    };
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        for &b in &buf[..n] {
            if b == b'\n' {
                flush(&mut line, &mut marker_pending);
            } else {
                line.push(b);
                if line.len() >= MAX_LINE {
                    flush(&mut line, &mut marker_pending);
                }
            }
        }
    }
    if !line.is_empty() {
        flush(&mut line, &mut marker_pending);
    }
    if let (Some((_, _, none)), true) = (pgid, marker_pending) {
        none.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    async fn pumped(input: &[u8], with_marker: bool) -> (Vec<String>, Option<u32>) {
        let seen = Mutex::new(Vec::new());
        let pgid = OnceLock::new();
        let emit = |_: Stream, t: &str| seen.lock().unwrap().push(t.to_string());
        let started = |_: &RemoteGroup| {};
        let none = tokio::sync::Notify::new();
        pump(
            input,
            Stream::Err,
            &emit,
            with_marker.then_some((&pgid, &started, &none)),
        )
        .await;
        (
            seen.into_inner().unwrap(),
            pgid.get().map(|g: &RemoteGroup| g.pgid),
        )
    }

    #[tokio::test]
    async fn lines_are_split_decoded_and_the_marker_taken() {
        let (lines, g) = pumped(b"ferry-pgid:4242\nhello\r\nbad \xff byte\nlast", true).await;
        assert_eq!(g, Some(4242));
        assert_eq!(lines, vec!["hello", "bad \u{FFFD} byte", "last"]);
        let long = vec![b'x'; MAX_LINE * 2 + 10];
        let (lines, _) = pumped(&long, false).await;
        assert_eq!(
            lines.iter().map(|l| l.len()).collect::<Vec<_>>(),
            vec![MAX_LINE, MAX_LINE, 10]
        );
        // Only the first line can be the marker.
        let (lines, g) = pumped(b"x\nferry-pgid:1\n", true).await;
        assert_eq!(g, None);
        assert_eq!(lines, vec!["x", "ferry-pgid:1"]);
    }

    /// Whether process `pid` has exited (a zombie not yet reaped, or gone).
    fn exited(pid: u32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| {
            s.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('Z'))
        })
    }

    /// A run dropped after the wrapper announced its group but before the
    /// group was recorded (ferry killed in between) leaves a wrapper that
    /// never got its script: it ends having run nothing.
    #[tokio::test]
    async fn the_script_waits_until_the_group_is_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let ran = dir.path().join("ran");
        let input = format!("touch '{}'\n", ran.display()).into_bytes();
        let (_keep, mut stop) = watch::channel(Stop::Run);
        let group = Mutex::new(None);
        let announced = tokio::sync::Notify::new();
        let started = |g: &RemoteGroup| {
            *group.lock().unwrap() = Some(g.pgid);
            announced.notify_one();
        };
        let emit = |_: Stream, _: &str| {};
        let never = std::future::pending::<()>();
        tokio::select! {
            end = run_step(&Link::Local, input.clone(), &mut stop, &emit, &started, never) => {
                panic!("the step ended before its group was recorded: {end:?}")
            }
            _ = announced.notified() => {}
        }
        let pgid = group.lock().unwrap().expect("announced");
        ferry_testkit::eventually("the wrapper's end", Duration::from_secs(10), || async {
            exited(pgid).then_some(())
        })
        .await;
        assert!(!ran.exists(), "the script ran with nothing recorded");

        // Recorded: the script runs.
        let end = run_step(&Link::Local, input, &mut stop, &emit, &started, async {}).await;
        assert_eq!(end, StepEnd::Exited(0));
        assert!(ran.exists());
    }
}
