//! Automatic rollback (`rollback = true`, docs/configuration.md, "Configure a target"): a
//! deployment whose step or check failed, or that timed out, is undone on
//! every host where its steps started, with `[[target.rollback]]` (else
//! the target's steps) and the variables of the environment's newest
//! successful deployment plus `FERRY_ROLLBACK_OF`; then the checks. The
//! rollback runs under the same claim (a lost lease stops it too), with a
//! timeout of its own, as a section of the same log.

use crate::sync::LockExt;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OnceCell, watch};

use super::{Interrupt, Outcome, Run, drive};
use crate::config::Step;
use crate::format::{plural, short_sha};
use crate::runner::step::Stop;
use crate::store::Deployment;
use crate::wording;

/// Whether `outcome` is one a rollback undoes: interruptions (a restart, a
/// dead replica) and failures to connect are not.
pub(super) fn undoes(outcome: &Outcome) -> bool {
    matches!(
        outcome,
        Outcome::StepFailed { .. } | Outcome::CheckFailed { .. } | Outcome::TimedOut { .. }
    )
}

/// Puts back the hosts `run` changed; the note its description ends with,
/// or `Err` with the outcome that ends it instead (the lease was lost).
/// The environment's last good version, or the note that says why there
/// is none to put back (also in the log).
async fn good_version(run: &Run) -> Result<Deployment, String> {
    let d = &run.deployment;
    match run
        .shared
        .store
        .last_success(&d.repository, &d.environment)
        .await
    {
        Ok(Some(good)) => Ok(good),
        Ok(None) => {
            run.log.ferry(
                None,
                None,
                "rollback: no earlier deployment of this environment succeeded",
            );
            Err(wording::NOTHING_TO_ROLL_BACK_TO.into())
        }
        Err(e) => {
            run.log.ferry(
                None,
                None,
                &format!("rollback: cannot read the version to put back: {e}"),
            );
            Err(wording::rollback_failed_to_start(&e.to_string()))
        }
    }
}

pub(super) async fn roll_back(
    run: &Arc<Run>,
    failed: &Outcome,
    interrupt: &mut watch::Receiver<Interrupt>,
) -> Result<String, Outcome> {
    let d = &run.deployment;
    let log = &run.log;
    let good = match good_version(run).await {
        Ok(good) => good,
        Err(note) => return Ok(note),
    };
    let hosts = run.started.locked().clone();
    let sha = short_sha(&good.sha).to_string();
    let names: Vec<String> = hosts.iter().map(ToString::to_string).collect();
    log.ferry(
        None,
        None,
        &format!(
            "rollback: putting back {sha} (deployment {}) on {}: {}",
            good.id,
            plural(hosts.len(), "host"),
            names.join(", ")
        ),
    );
    let target = &run.target;
    let steps = if target.rollback_steps.is_empty() {
        &target.steps
    } else {
        &target.rollback_steps
    };
    // Its own names in the log: the page groups lines by host and step.
    let section = |s: &Step| Step {
        name: format!("rollback: {}", s.name),
        run: s.run.clone(),
    };
    let (stop, _) = watch::channel(Stop::Run);
    let rollback = Arc::new(Run {
        shared: run.shared.clone(),
        connector: run.connector.clone(),
        deployment: d.clone(),
        target: target.clone(),
        steps: steps.iter().map(section).collect(),
        checks: run
            .checks
            .iter()
            .map(|c| crate::config::HostCheck {
                name: format!("rollback: {}", c.name),
                ..c.clone()
            })
            .collect(),
        hosts,
        version: good.clone(),
        rollback_of: Some(d.id),
        started: Mutex::new(Vec::new()),
        log: run.log.clone(),
        log_url: run.log_url.clone(),
        stop,
        first_failure: Mutex::new(None),
        in_progress: OnceCell::new(),
        current: Mutex::new(BTreeMap::new()),
    });
    let outcome = drive(&rollback, target.timeout, interrupt).await;
    let note = match &outcome {
        Outcome::Success { .. } => wording::rolled_back_to(&sha),
        Outcome::StepFailed { host, code, .. } | Outcome::CheckFailed { host, code, .. } => {
            wording::rollback_failed(&sha, host, *code)
        }
        Outcome::LeaseLost => return Err(Outcome::LeaseLost),
        other => wording::rollback_failed_to_start(&other.describe(d)),
    };
    log.ferry(
        None,
        None,
        &format!("rollback after {}: {note}", failed.describe(d)),
    );
    Ok(note)
}
