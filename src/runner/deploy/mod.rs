//! One deployment: hosts `parallel` at a time, steps in order, the first
//! failure stops every host, and one final status that says what happened.

use crate::sync::LockExt;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OnceCell, watch};
use tokio::task::JoinSet;

mod checks;
mod end;
mod host;
mod rollback;

use super::Handles;
pub use super::outcome::Outcome;
use super::ssh::Connector;
use super::step::Stop;
use crate::config::{Host, HostCheck, Step, Target};
use crate::format::{duration, plural, short_sha};
use crate::logs::LogWriter;
use crate::store::{Cancellation, Deployment, NewStatus, StatusState};

/// Exit statuses in the log for steps that did not exit on their own, as
/// ssh and shells report them: a lost connection, a SIGTERM.
const EXIT_LOST: i32 = 255;
const EXIT_STOPPED: i32 = 143;

/// Why a running deployment is told to stop before it ends by itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interrupt {
    None,
    Shutdown,
    LeaseLost,
    Cancel(Cancellation),
}

/// What every host task of one deployment shares.
struct Run {
    shared: Handles,
    connector: Arc<Connector>,
    deployment: Deployment,
    target: Target,
    /// The target's steps, or its teardown steps for a teardown.
    steps: Vec<Step>,
    /// Run on each host after its steps (none for a teardown).
    checks: Vec<HostCheck>,
    /// The hosts to run on: the target's, or for a rollback those where the
    /// failed deployment's steps started.
    hosts: Vec<Host>,
    /// The version the steps deploy: the deployment itself, or for a
    /// rollback the version it puts back (its variables).
    version: Deployment,
    /// For a rollback, the deployment it undoes (`FERRY_ROLLBACK_OF`).
    rollback_of: Option<crate::store::DeploymentId>,
    /// Hosts where a step started, in order: what a rollback puts back.
    started: Mutex<Vec<Host>>,
    log: LogWriter,
    log_url: String,
    stop: watch::Sender<Stop>,
    first_failure: Mutex<Option<Outcome>>,
    in_progress: OnceCell<()>,
    /// host → the step it is running, for the timeout message.
    current: Mutex<BTreeMap<String, String>>,
}

/// Runs a claimed deployment to its end and records the final status.
pub async fn deploy(
    shared: Handles,
    connector: Arc<Connector>,
    deployment: Deployment,
    interrupt: watch::Receiver<Interrupt>,
) {
    let id = deployment.id;
    let log_url = shared.logs.url(id);
    let (outcome, rolled_back) =
        execute(&shared, connector, &deployment, &log_url, interrupt).await;
    if outcome == Outcome::LeaseLost {
        end::lost(&shared, &deployment).await;
        return;
    }
    let state = outcome.state();
    let description = match &rolled_back {
        Some(note) => crate::wording::with_rollback(&outcome.describe(&deployment), note),
        None => outcome.describe(&deployment),
    };
    if rolled_back.is_some() {
        // Before the end is recorded: `ferry stats` counts it with its end.
        let automatic = crate::store::RollbackKind::Automatic;
        if let Err(e) = shared.store.record_rollback(id, automatic).await {
            tracing::warn!(deployment = %id, error = %e, "cannot record that deployment {id} rolled back: {e}");
        }
    }
    let status = end::final_status(&shared, &deployment, &outcome, &description, &log_url);
    end::say(&shared, &deployment, &outcome, &description).await;
    end::record(&shared, &deployment, state, &status, &description).await;
    shared.outbox.ring();
}

async fn execute(
    shared: &Handles,
    connector: Arc<Connector>,
    d: &Deployment,
    log_url: &str,
    mut interrupt: watch::Receiver<Interrupt>,
) -> (Outcome, Option<String>) {
    let log = match shared.logs.writer(d.id).await {
        Ok(w) => w,
        Err(e) => {
            return (
                Outcome::Internal(format!("cannot write its log: {e}")),
                None,
            );
        }
    };
    let config = shared.config.get();
    let Some(target) = config.target_for(&d.repository, &d.environment, &d.task) else {
        return (Outcome::NoTarget, None);
    };
    let steps = match steps_to_run(&log, d, target) {
        Ok(steps) => steps,
        Err(done) => return (done, None),
    };
    let (stop, _) = watch::channel(Stop::Run);
    let run = Arc::new(Run {
        shared: shared.clone(),
        connector,
        deployment: d.clone(),
        target: target.clone(),
        checks: if d.teardown_of.is_none() {
            target.checks.clone()
        } else {
            Vec::new()
        },
        hosts: target.hosts.clone(),
        version: d.clone(),
        rollback_of: None,
        started: Mutex::new(Vec::new()),
        steps,
        log,
        log_url: log_url.to_string(),
        stop,
        first_failure: Mutex::new(None),
        in_progress: OnceCell::new(),
        current: Mutex::new(BTreeMap::new()),
    });

    let outcome = drive(&run, target.timeout, &mut interrupt).await;
    let asked = matches!(&outcome, Outcome::Cancelled(c) if c.rollback);
    if !(asked || target.rollback && rollback::undoes(&outcome)) {
        return (outcome, None);
    }
    match rollback::roll_back(&run, &outcome, &mut interrupt).await {
        Err(lost) => (lost, None),
        Ok(note) => (outcome, Some(note)),
    }
}

/// The steps a deployment runs (a teardown's for a teardown), said in
/// its log; or how it ends without running any.
fn steps_to_run(log: &LogWriter, d: &Deployment, target: &Target) -> Result<Vec<Step>, Outcome> {
    let hosts: Vec<String> = target.hosts.iter().map(Host::to_string).collect();
    let on = format!("{}: {}", plural(hosts.len(), "host"), hosts.join(", "));
    match d.teardown_of {
        None if target.steps.is_empty() => Err(Outcome::NoSteps),
        None => {
            log.ferry(
                None,
                None,
                &format!(
                    "deploying {} ({}) of {} to {} on {on}",
                    short_sha(&d.sha),
                    d.git_ref,
                    d.repository,
                    d.environment,
                ),
            );
            Ok(target.steps.clone())
        }
        Some(latest) => {
            log.ferry(
                None,
                None,
                &format!(
                    "tearing down {} of {} (latest deployment {latest}: {} ({})): {}",
                    d.environment,
                    d.repository,
                    short_sha(&d.sha),
                    d.git_ref,
                    d.description
                ),
            );
            if target.teardown.is_empty() {
                log.ferry(
                    None,
                    None,
                    "the target has no [[target.teardown]] steps: nothing to run",
                );
                return Err(Outcome::Success {
                    hosts: 0,
                    elapsed: Duration::ZERO,
                });
            }
            log.ferry(None, None, &format!("teardown steps on {on}"));
            Ok(target.teardown.clone())
        }
    }
}

/// Runs `run` on its hosts until they are done, `timeout` runs out, or the
/// deployment is interrupted (cancel, shutdown, a lost lease); how it ended.
async fn drive(
    run: &Arc<Run>,
    timeout: Duration,
    interrupt: &mut watch::Receiver<Interrupt>,
) -> Outcome {
    let started = Instant::now();
    let ignore_cancel = run.rollback_of.is_some();
    let hosts_done = run_hosts(run.clone());
    tokio::pin!(hosts_done);
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let mut timed_out = None;
    let mut cancelled = None;
    loop {
        tokio::select! {
            _ = &mut hosts_done => break,
            _ = &mut deadline, if timed_out.is_none() => {
                let at = run.current.locked()
                    .iter().next().map(|(h, s)| (s.clone(), h.clone()));
                timed_out = Some(Outcome::TimedOut { after: timeout, at });
                run.log.ferry(None, None, &format!("timed out after {}: stopping every host", duration(timeout)));
                run.stop.send_replace(Stop::TimedOut);
            }
            // A rollback after `cancel --rollback` goes on despite that
            // cancel; a shutdown or a lost lease still stops it.
            why = interrupt.wait_for(|i| !(*i == Interrupt::None || (ignore_cancel && matches!(i, Interrupt::Cancel(_))))), if *run.stop.borrow() == Stop::Run => {
                let why = why.map(|w| w.clone()).unwrap_or(Interrupt::Shutdown);
                let (text, stop) = match why {
                    Interrupt::LeaseLost => (
                        "this ferry lost its claim on the deployment (another replica settles it): stopping every host".to_string(),
                        Stop::LeaseLost,
                    ),
                    Interrupt::Cancel(c) => {
                        let text = format!("{}; stopping every host", c.describe());
                        cancelled = Some(c);
                        (text, Stop::Cancelled)
                    }
                    _ => ("ferry is shutting down: stopping every host".to_string(), Stop::Shutdown),
                };
                run.log.ferry(None, None, &text);
                run.stop.send_replace(stop);
            }
        }
    }
    if let Some(t) = timed_out {
        return t;
    }
    if let Some(f) = run.first_failure.locked().take() {
        return f;
    }
    match *run.stop.borrow() {
        Stop::Shutdown => return Outcome::Shutdown,
        Stop::LeaseLost => return Outcome::LeaseLost,
        Stop::Cancelled => {
            if let Some(c) = cancelled {
                return Outcome::Cancelled(c);
            }
        }
        _ => {}
    }
    Outcome::Success {
        hosts: run.hosts.len(),
        elapsed: started.elapsed(),
    }
}

/// Starts hosts as slots free up, at most `parallel` at once; none start
/// after the deployment was stopped.
async fn run_hosts(run: Arc<Run>) {
    let window = run.target.parallel.map_or(run.hosts.len(), |p| p.get());
    let mut tasks = JoinSet::new();
    // With checks, hosts go in batches: the next batch starts only once
    // every host of this one passed its checks. Without, a host starts as
    // soon as a slot frees up.
    let batches = !run.checks.is_empty();
    for host in run.hosts.clone() {
        if batches && tasks.len() >= window {
            while tasks.join_next().await.is_some() {}
        }
        while tasks.len() >= window {
            tasks.join_next().await;
        }
        if *run.stop.borrow() != Stop::Run {
            break;
        }
        let run = run.clone();
        tasks.spawn(async move { run.host(host).await });
    }
    while tasks.join_next().await.is_some() {}
}

impl Run {
    fn fail(&self, outcome: Outcome) {
        let mut first = self.first_failure.locked();
        if first.is_none() && *self.stop.borrow() == Stop::Run {
            *first = Some(outcome);
            self.stop.send_replace(Stop::Halt);
        }
    }

    fn vars(&self, host: &str) -> Vec<(&'static str, String)> {
        let d = &self.version;
        // A teardown's steps see its latest deployment's variables.
        let id = d.teardown_of.unwrap_or(d.id);
        let mut vars = vec![
            ("FERRY_DEPLOYMENT_ID", id.to_string()),
            ("FERRY_REPOSITORY", d.repository.clone()),
            ("FERRY_ENVIRONMENT", d.environment.clone()),
            ("FERRY_TASK", d.task_run().to_string()),
            ("FERRY_REF", d.git_ref.clone()),
            ("FERRY_SHA", d.sha.clone()),
            ("FERRY_HOST", host.to_string()),
            ("FERRY_PAYLOAD", d.payload.clone()),
            ("FERRY_CREATOR", d.creator.clone()),
            ("FERRY_LOG_URL", self.log_url.clone()),
            ("FERRY_PRODUCTION", d.production.to_string()),
            ("FERRY_TRANSIENT", d.transient.to_string()),
        ];
        if let Some(undone) = self.rollback_of {
            vars.push(("FERRY_ROLLBACK_OF", undone.to_string()));
        }
        vars
    }

    /// `in_progress` goes out once, when the first step starts anywhere.
    async fn mark_in_progress(&self) {
        if self.deployment.teardown_of.is_some() || self.rollback_of.is_some() {
            return;
        }
        self.in_progress
            .get_or_init(|| async {
                let d = &self.deployment;
                let status = NewStatus::new(
                    StatusState::InProgress,
                    crate::wording::deploying(&d.sha, self.target.hosts.len()),
                )
                .with_log_url(&self.log_url);
                match self.shared.store.add_status(d.claim(), &status).await {
                    Ok(true) => {}
                    // The runner hears of it at its next renewal and stops us.
                    Ok(false) => tracing::warn!(deployment = %d.id, "deployment {} was taken over before it started; not posting in_progress", d.id),
                    Err(e) => tracing::error!(deployment = %d.id, error = %e, "cannot queue the in_progress status of deployment {}: {e}", d.id),
                }
                self.shared.outbox.ring();
            })
            .await;
    }
}
