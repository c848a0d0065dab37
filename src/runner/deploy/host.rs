//! On one host: a link to it, the steps one after the other, and what
//! each step's end means for the host and the deployment.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;

use super::{EXIT_LOST, EXIT_STOPPED, Outcome, Run};
use crate::config::{Host, Step};
use crate::format::duration;
use crate::logs::Stream;
use crate::runner::link::Link;
use crate::runner::remote;
use crate::runner::ssh::Connected;
use crate::runner::step::{StepEnd, Stop};
use crate::sync::LockExt;

impl Run {
    pub(super) async fn host(self: Arc<Self>, host: Host) {
        // A connection left open may have died unnoticed (a host rebooted
        // while it idled). If the first step could not even start on it,
        // nothing ran: start again on a new connection.
        if let OnHost::Again = self.on_host(&host, true).await {
            self.on_host(&host, false).await;
        }
    }

    async fn on_host(&self, host: &Host, reuse: bool) -> OnHost {
        let name = host.to_string();
        let mut stop = self.stop.subscribe();
        let Some((link, reused)) = self.open_link(host, &name, reuse, &mut stop).await else {
            return OnHost::Done;
        };
        let vars = self.vars(&name);
        // After a lost step the connection is not trusted with another
        // deployment; a failed or stopped step leaves it sound.
        let mut reusable = true;
        let mut steps_done = 0;
        for (i, step) in self.steps.iter().enumerate() {
            if *stop.borrow() != Stop::Run {
                break;
            }
            self.mark_in_progress().await;
            self.current
                .locked()
                .insert(name.clone(), step.name.clone());
            if i == 0 {
                let mut started = self.started.locked();
                if !started.contains(host) {
                    started.push(host.clone());
                }
            }
            self.log
                .ferry(Some(&name), Some(&step.name), "step started");
            let started = Instant::now();
            let emit = |stream: Stream, text: &str| {
                self.log.line(Some(&name), Some(&step.name), stream, text)
            };
            let spec = host.spec();
            let end = self
                .run_tracked(
                    &link,
                    &spec,
                    remote::stdin_for(&vars, &step.run),
                    &mut stop,
                    &emit,
                )
                .await;
            self.current.locked().remove(&name);
            let took = duration(started.elapsed());
            match self.step_ended(&name, step, end, &took, reused && i == 0) {
                After::Next => steps_done += 1,
                After::Retry => {
                    self.connector.release(host, link, false).await;
                    return OnHost::Again;
                }
                After::Stop { sound } => {
                    reusable &= sound;
                    break;
                }
            }
        }
        if steps_done == self.steps.len() && !self.checks.is_empty() {
            self.check_host(&link, &name, &host.spec(), &vars, &mut stop)
                .await;
        }
        self.connector.release(host, link, reusable).await;
        OnHost::Done
    }

    /// A link to `host`: one left open (when `reuse`) or a new one, said in
    /// the log; None when it cannot be had or the deployment stops first
    /// (the failure recorded). Whether it was one left open.
    async fn open_link(
        &self,
        host: &Host,
        name: &str,
        reuse: bool,
        stop: &mut watch::Receiver<Stop>,
    ) -> Option<(Link, bool)> {
        let log = &self.log;
        log.ferry(Some(name), None, "connecting");
        let open = async {
            if reuse {
                self.connector.checkout(host).await
            } else {
                let (link, took) = self.connector.connect(host).await?;
                Ok((link, Connected::Opened(took)))
            }
        };
        // A timeout, a failure elsewhere or a shutdown also ends a handshake.
        let connected = tokio::select! {
            c = open => c,
            _ = stop.wait_for(|s| *s != Stop::Run) => {
                log.ended(name, None, "stopped while connecting", EXIT_STOPPED);
                return None;
            }
        };
        match connected {
            Ok((link, how)) => {
                let reused = matches!(how, Connected::Reused(_));
                let text = match how {
                    Connected::Opened(_) if host.is_local() => {
                        "on ferry's own host, as its user".to_string()
                    }
                    Connected::Opened(took) => format!("connected in {}", duration(took)),
                    Connected::Reused(idle) => {
                        format!("reusing the connection left open {} ago", duration(idle))
                    }
                };
                log.ferry(Some(name), None, &text);
                Some((link, reused))
            }
            Err(cause) => {
                log.ended(name, None, &format!("cannot connect: {cause}"), EXIT_LOST);
                self.fail(Outcome::ConnectFailed {
                    host: name.to_string(),
                    cause,
                });
                None
            }
        }
    }

    /// What a step's end means for the host: its log line, the
    /// deployment's failure if it failed, and what comes next. `first_on_kept`:
    /// the host's first step, on a connection left open.
    /// The host answered no keepalive: the step may still run there, so
    /// its environment is held until ferry ends it.
    fn connection_lost(&self, name: &str, step: &Step, took: &str) -> After {
        let hold = crate::wording::hold(self.deployment.id, name);
        self.log.ended(
            name,
            Some(step.name.as_str()),
            &format!(
                "lost the connection after {took}: {name} answered none of {} keepalives; \
                 the step may still run there, so the environment is held ({hold}) \
                 until ferry ends it",
                crate::config::KEEPALIVES_MISSED
            ),
            EXIT_LOST,
        );
        self.fail(Outcome::ConnectionLost {
            step: step.name.clone(),
            host: name.to_string(),
        });
        After::Stop { sound: false }
    }

    fn step_ended(
        &self,
        name: &str,
        step: &Step,
        end: StepEnd,
        took: &str,
        first_on_kept: bool,
    ) -> After {
        let log = &self.log;
        let step_name = Some(step.name.as_str());
        match end {
            StepEnd::Exited(0) => {
                log.ended(
                    name,
                    step_name,
                    &format!("step finished in {took} (exit 0)"),
                    0,
                );
                After::Next
            }
            StepEnd::Exited(code) => {
                log.ended(
                    name,
                    step_name,
                    &format!("step failed after {took} (exit {code})"),
                    code,
                );
                self.fail(Outcome::StepFailed {
                    step: step.name.clone(),
                    host: name.to_string(),
                    code,
                });
                After::Stop { sound: true }
            }
            // A connection left open may have died unnoticed (a host
            // rebooted while it idled): nothing ran, start again.
            StepEnd::NotStarted(cause) if first_on_kept => {
                log.ferry(
                    Some(name),
                    step_name,
                    &format!("the connection left open is gone ({cause}); opening a new one"),
                );
                After::Retry
            }
            StepEnd::Lost(cause) | StepEnd::NotStarted(cause) => {
                log.ended(
                    name,
                    step_name,
                    &format!("step lost after {took}: {cause}"),
                    EXIT_LOST,
                );
                self.fail(Outcome::Lost {
                    step: step.name.clone(),
                    host: name.to_string(),
                    cause,
                });
                After::Stop { sound: false }
            }
            StepEnd::ConnectionLost => self.connection_lost(name, step, took),
            StepEnd::Stopped { ended } => {
                log.ended(
                    name,
                    step_name,
                    &format!("step stopped after {took}"),
                    EXIT_STOPPED,
                );
                After::Stop { sound: ended }
            }
        }
    }
}

/// What comes after one step on a host.
enum After {
    /// It succeeded: the next step.
    Next,
    /// Nothing ran on a connection that was left open and is gone.
    Retry,
    /// The host is done; `sound`: its connection may serve another
    /// deployment (false after a lost step).
    Stop { sound: bool },
}

/// How one attempt at a host's steps ended.
enum OnHost {
    Done,
    /// Nothing ran: try again on a new connection.
    Again,
}
