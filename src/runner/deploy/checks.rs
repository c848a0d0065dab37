//! On one host: running a script with its process group tracked, and the
//! target's checks after the steps, each tried until it passes.

use crate::sync::LockExt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::{Outcome, Run};
use crate::format::duration;
use crate::logs::Stream;
use crate::runner::remote::{self, RemoteGroup};
use crate::runner::step::{StepEnd, Stop, run_step};

impl Run {
    /// Runs one script (a step or a check try) on `link`. While it runs
    /// the store knows its process group, so a ferry killed meanwhile can
    /// end it at the next start; one that may still run on the host stays
    /// recorded, and holds the environment until ferry ends it there.
    pub(super) async fn run_tracked(
        &self,
        link: &crate::runner::link::Link,
        spec: &str,
        input: Vec<u8>,
        stop: &mut watch::Receiver<Stop>,
        emit: &(dyn Fn(Stream, &str) + Sync),
    ) -> StepEnd {
        let (groups, mut announced) = tokio::sync::mpsc::unbounded_channel::<RemoteGroup>();
        let (recorded, is_recorded) = tokio::sync::oneshot::channel::<()>();
        let (store, id, remembered) = (
            self.shared.store.clone(),
            self.deployment.id,
            spec.to_string(),
        );
        let remember = tokio::spawn(async move {
            let mut recorded = Some(recorded);
            while let Some(g) = announced.recv().await {
                if let Err(e) = store
                    .remember_step(id, &remembered, g.pgid, &g.boot_id)
                    .await
                {
                    tracing::warn!(deployment = %id, error = %e, "cannot record a running step of deployment {id}: {e}");
                }
                // The step's script goes out now (recorded or not: a store
                // that cannot take the write must not stop deployments).
                if let Some(r) = recorded.take() {
                    let _ = r.send(());
                }
            }
        });
        let announce = move |g: &RemoteGroup| {
            let _ = groups.send(g.clone());
        };
        let end = run_step(link, input, stop, emit, &announce, async {
            let _ = is_recorded.await;
        })
        .await;
        drop(announce);
        let _ = remember.await;
        let gone = !matches!(
            end,
            StepEnd::ConnectionLost | StepEnd::Stopped { ended: false }
        );
        if gone && let Err(e) = self.shared.store.forget_step(id, spec).await {
            tracing::warn!(deployment = %id, error = %e, "cannot clear a finished step of deployment {id}: {e}");
        }
        end
    }

    /// Runs the target's checks on a host whose steps succeeded, each
    /// until it passes; a check that does not pass within its `within`
    /// fails the deployment. Every try is a line in the log; only the last
    /// try's output is kept, so a check retried thirty times does not
    /// flood it.
    /// One try of `check` on a host, stopped after `left` or when the
    /// deployment stops: how it ended, and what it printed (logged only
    /// for the last try, so that a check polled every 2 s does not flood
    /// the log).
    async fn check_try(
        &self,
        link: &crate::runner::link::Link,
        (name, spec): (&str, &str),
        vars: &[(&'static str, String)],
        check: &crate::config::HostCheck,
        left: Duration,
        stop: &watch::Receiver<Stop>,
    ) -> (StepEnd, Vec<(Stream, String)>) {
        self.current
            .locked()
            .insert(name.to_string(), check.name.clone());
        let output = Mutex::new(Vec::<(Stream, String)>::new());
        let emit = |stream: Stream, text: &str| {
            output.locked().push((stream, text.to_string()));
        };
        let (try_stop, mut try_rx) = watch::channel(Stop::Run);
        let mut outer = stop.clone();
        let input = remote::stdin_for(vars, &check.run);
        let run = self.run_tracked(link, spec, input, &mut try_rx, &emit);
        tokio::pin!(run);
        let end = tokio::select! {
            end = &mut run => end,
            why = async {
                tokio::select! {
                    _ = tokio::time::sleep(left) => Stop::TimedOut,
                    s = outer.wait_for(|s| *s != Stop::Run) => s.map(|s| *s).unwrap_or(Stop::Shutdown),
                }
            } => {
                try_stop.send_replace(why);
                run.await
            }
        };
        self.current.locked().remove(name);
        let output = std::mem::take(&mut *output.locked());
        (end, output)
    }

    pub(super) async fn check_host(
        &self,
        link: &crate::runner::link::Link,
        name: &str,
        spec: &str,
        vars: &[(&'static str, String)],
        stop: &mut watch::Receiver<Stop>,
    ) {
        let log = &self.log;
        for check in &self.checks {
            let tries =
                (check.within.as_secs_f64() / check.interval.as_secs_f64()).ceil() as u64 + 1;
            let first = Instant::now();
            for n in 1.. {
                if *stop.borrow() != Stop::Run {
                    return;
                }
                // A try may not outlast `within`: it is stopped then, and
                // counts as failed (exit 124, as timeout(1) says).
                let left = check
                    .within
                    .saturating_sub(first.elapsed())
                    .max(Duration::from_secs(1));
                let (end, output) = self
                    .check_try(link, (name, spec), vars, check, left, stop)
                    .await;
                let code = match end {
                    StepEnd::Exited(code) => code,
                    StepEnd::Stopped { .. } if *stop.borrow() != Stop::Run => return,
                    StepEnd::Stopped { .. } => 124,
                    StepEnd::Lost(cause) | StepEnd::NotStarted(cause) => {
                        self.fail(Outcome::Lost {
                            step: check.name.clone(),
                            host: name.to_string(),
                            cause,
                        });
                        return;
                    }
                    StepEnd::ConnectionLost => {
                        self.fail(Outcome::ConnectionLost {
                            step: check.name.clone(),
                            host: name.to_string(),
                        });
                        return;
                    }
                };
                let spent = first.elapsed();
                let last = code == 0 || spent + check.interval >= check.within;
                let verdict = if code == 0 { "passed" } else { "failed" };
                let text = format!(
                    "check try {n} of ~{tries} {verdict} after {} (exit {code})",
                    duration(spent)
                );
                if last {
                    for (stream, line) in output {
                        log.line(Some(name), Some(&check.name), stream, &line);
                    }
                    log.ended(name, Some(&check.name), &text, code);
                } else {
                    log.ferry(Some(name), Some(&check.name), &text);
                }
                if code == 0 {
                    break;
                }
                if last {
                    self.fail(Outcome::CheckFailed {
                        check: check.name.clone(),
                        host: name.to_string(),
                        after: spent,
                        code,
                    });
                    return;
                }
                tokio::select! {
                    _ = tokio::time::sleep(check.interval) => {}
                    _ = stop.wait_for(|s| *s != Stop::Run) => return,
                }
            }
        }
    }
}
