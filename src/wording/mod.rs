//! Texts GitHub shows or an operator reads for a state, in one place, so
//! that the description on GitHub, `ferry locks`, the log and the journal
//! say the same thing in the same words.

pub mod pr;

use std::time::Duration;

use crate::format::{duration, plural, short_sha};
use crate::store::DeploymentId;

/// Before the id in [`superseded_by`]; PostgreSQL's `ferry_accept` is
/// handed it as a parameter and appends the id itself.
pub const SUPERSEDED_BY_PREFIX: &str = "Superseded by deployment ";

/// A waiting deployment superseded by a newer one, on the deployment and
/// in its `inactive` status.
pub fn superseded_by(by: DeploymentId) -> String {
    format!("{SUPERSEDED_BY_PREFIX}{by}")
}

/// Deployments still waiting when their environment's teardown was queued.
pub const SUPERSEDED_BY_TEARDOWN: &str = "Superseded by a teardown of the environment";
/// The comment of ferry's approval of a GitHub Actions run.
pub fn protection_approved(environment: &str) -> String {
    format!("ferry: {environment} is free (no lock, freeze or hold): approved")
}

/// Who lifted a lock whose `--for` ran out, in its unlock event.
pub const LOCK_RAN_OUT_BY: &str = "ferry (the lock's --for ran out)";
/// Every deployment of an environment a teardown removed.
pub const TORN_DOWN: &str = "Environment torn down";
/// In the outbox's history: a `queued` never sent.
pub const COALESCED: &str = "coalesced: its deployment was superseded before it went out";

/// The description of a deployment `ferry deploy` asks GitHub for.
pub fn deploy_by(by: &str) -> String {
    format!("Deploy by {by}")
}

/// The description of a deployment `ferry rollback` asks GitHub for.
pub fn rollback_by(sha: &str, of: DeploymentId, by: &str) -> String {
    format!("Rollback to {} (deployment {of}) by {by}", short_sha(sha))
}

/// The description of a deployment ferry starts for a branch's head
/// (`[target.auto_deploy] branch`).
pub fn auto_deploy_of(branch: &str, sha: &str) -> String {
    format!("Auto-deploy of {branch} at {}", short_sha(sha))
}

/// The description of a deployment ferry starts to promote what succeeded
/// in another environment (`[target.auto_deploy] after`).
pub fn promotion_of(sha: &str, from: &str) -> String {
    format!("Promote {} from {from}", short_sha(sha))
}

/// Why a promotion is not made: its deployment is no longer the newest to
/// have ended in the environment it would be promoted from.
pub fn promotion_overtaken(
    from: &str,
    was: DeploymentId,
    newest: Option<(DeploymentId, &str)>,
) -> String {
    match newest {
        Some((id, state)) => format!(
            "deployment {was} is no longer the newest to end in {from}: deployment {id} ended {state} since"
        ),
        None => format!("deployment {was} is no longer among {from}'s deployments"),
    }
}

/// Why an auto-deploy is not made: the sha is what the environment has.
pub fn already_newest(environment: &str, newest: DeploymentId) -> String {
    format!("already the newest deployment of {environment} (deployment {newest})")
}

/// A queued deployment's description while its environment is locked.
pub fn locked_waiting(environment: &str, held_by: &str) -> String {
    format!("Waiting: {environment} is locked by {held_by}")
}

/// A queued deployment's description while a freeze window holds its
/// environment: "Waiting: production is frozen until Mon 08:00 CET
/// (weekend)".
pub fn frozen_waiting(environment: &str, until: &str, freeze: &str) -> String {
    format!("Waiting: {environment} is frozen until {until} ({freeze})")
}

/// A `deploy:unlock` that lifted a freeze window (and no lock).
pub fn freeze_lifted_by(creator: &str, lifted: &str) -> String {
    format!("Lifted by {creator}: {lifted}")
}

/// A deployment waiting for its required checks: "Waiting for checks on
/// abc1234: test, lint" (`*`: every check, named as they appear).
pub fn checks_waiting(sha: &str, names: &[String]) -> String {
    let names: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .filter(|n| *n != "*")
        .collect();
    if names.is_empty() {
        format!("Waiting for checks on {}", short_sha(sha))
    } else {
        format!(
            "Waiting for checks on {}: {}",
            short_sha(sha),
            names.join(", ")
        )
    }
}

/// A required check that failed.
pub fn required_check_failed(check: &str, sha: &str) -> String {
    format!("Check '{check}' failed on {}", short_sha(sha))
}

/// A required check that had not passed by `checks_timeout`.
pub fn required_check_timed_out(check: &str, sha: &str, within: Duration) -> String {
    format!(
        "Check '{check}' did not pass on {} within {}",
        short_sha(sha),
        duration(within)
    )
}

/// GitHub would not show a sha's checks (403, 404): what the credentials
/// need.
pub fn checks_refused(sha: &str, why: &str) -> String {
    format!(
        "Waiting for checks on {}: GitHub refuses to show them; needs Checks: read and Commit statuses: read ({why})",
        short_sha(sha)
    )
}

/// Who holds a frozen environment, in `ferry locks`.
pub fn freeze_holder(freeze: &str) -> String {
    format!("freeze {freeze}")
}

/// "alice since 2026-11-21 14:05 UTC: reason".
pub fn held_by(holder: &str, since: &str, reason: &str) -> String {
    if reason.is_empty() {
        format!("{holder} since {since}")
    } else {
        format!("{holder} since {since}: {reason}")
    }
}

/// `deploy:lock` and `deploy:unlock` outcomes.
pub fn locked_by(creator: &str) -> String {
    format!("Locked by {creator}")
}

pub fn already_locked(held_by: &str) -> String {
    format!("Already locked by {held_by}")
}

pub fn unlocked_by(creator: &str, held_by: &str) -> String {
    format!("Unlocked by {creator} (locked by {held_by})")
}

pub const NOTHING_TO_UNLOCK: &str = "Not locked; nothing to unlock";

/// "Cancelled by NAME" and ": reason" when one was given.
pub fn cancelled_by(by: &str, reason: &str) -> String {
    if reason.is_empty() {
        format!("Cancelled by {by}")
    } else {
        format!("Cancelled by {by}: {reason}")
    }
}

/// A teardown's description while it waits, by cause.
pub fn teardown_for_pull_request(number: i64) -> String {
    format!("Teardown: pull request #{number} closed")
}

pub const TEARDOWN_IDLE: &str = "Teardown: idle past teardown_after";

pub fn teardown_asked_by(by: &str) -> String {
    format!("Teardown asked for by {by}")
}

/// A queued deployment's first description.
pub fn queued(sha: &str, environment: &str, hosts: usize) -> String {
    format!(
        "Queued {} for {environment} on {}",
        short_sha(sha),
        plural(hosts, "host")
    )
}

/// `in_progress`, when the first step starts.
pub fn deploying(sha: &str, hosts: usize) -> String {
    format!("Deploying {} to {}", short_sha(sha), plural(hosts, "host"))
}

/// A deployment a restart of the only ferry interrupted.
pub const INTERRUPTED_BY_RESTART: &str = "Interrupted: ferry restarted during the deployment";

/// A deployment whose replica stopped; another settled it.
pub fn interrupted_replica(who: &str) -> String {
    format!("Interrupted: replica {who} stopped during the deployment")
}

/// A step left on a host that ferry could not end yet.
pub fn hold(deployment: DeploymentId, host: &str) -> String {
    format!("cannot end the step of deployment {deployment} on {host} yet")
}

/// The `queued` description of a deployment waiting on a hold.
pub fn held_waiting(environment: &str, hold: &str) -> String {
    format!("Waiting: {environment} is held: {hold}")
}

/// A host that answered none of its keepalives while a step ran there.
pub fn lost_connection(host: &str, step: &str) -> String {
    format!("Lost the connection to {host} during step '{step}'")
}

/// `ferry teardown` of an environment whose latest deployment is not
/// transient, without `--yes`.
pub fn teardown_needs_yes(env: &str, latest: DeploymentId) -> String {
    format!(
        "{env} is not a review app (its latest deployment, {latest}, is not transient): \
         tearing it down marks every deployment of it inactive and GitHub then shows it \
         as destroyed; run `ferry teardown {env} --yes` if that is what you want"
    )
}

/// `/healthz` and the webhook's `503` while the store cannot take writes.
pub fn storage_unavailable(why: &str) -> String {
    format!("storage unavailable: {why}")
}

/// A deployment's final description, by outcome.
pub fn deployed(sha: &str, hosts: usize, took: Duration) -> String {
    format!(
        "Deployed {} to {} in {}",
        short_sha(sha),
        plural(hosts, "host"),
        duration(took)
    )
}

pub fn step_failed(step: &str, host: &str, code: i32) -> String {
    format!("Step '{step}' failed on {host} (exit {code})")
}

/// `at`: the step and host that were running, if any.
pub fn timed_out(after: Duration, at: Option<&(String, String)>) -> String {
    match at {
        Some((step, host)) => format!(
            "Timed out after {} in step '{step}' on {host}",
            duration(after)
        ),
        None => format!("Timed out after {}", duration(after)),
    }
}

/// "Check 'healthz' failed on web2 after 60s (exit 7)".
pub fn check_failed(check: &str, host: &str, after: Duration, code: i32) -> String {
    format!(
        "Check '{check}' failed on {host} after {} (exit {code})",
        duration(after)
    )
}

/// A failed deployment's description with its rollback's outcome,
/// fitted to GitHub's 140 characters: the outcome is kept whole, the
/// failure before it is shortened.
pub fn with_rollback(failure: &str, note: &str) -> String {
    let limit = crate::github::DESCRIPTION_MAX;
    let tail = format!("; {note}");
    let room = limit.saturating_sub(tail.chars().count());
    if failure.chars().count() <= room {
        return format!("{failure}{tail}");
    }
    let cut: String = failure.chars().take(room.saturating_sub(1)).collect();
    format!("{cut}…{tail}")
}

pub fn rolled_back_to(sha: &str) -> String {
    format!("rolled back to {sha}")
}

pub fn rollback_failed(sha: &str, host: &str, code: i32) -> String {
    format!("rollback to {sha} failed on {host} (exit {code})")
}

/// A rollback that could not run or stopped for another reason.
pub fn rollback_failed_to_start(why: &str) -> String {
    format!("rollback failed: {why}")
}

pub const NOTHING_TO_ROLL_BACK_TO: &str = "nothing to roll back to";

pub fn cannot_connect(host: &str, cause: &str) -> String {
    format!("Cannot connect to {host}: {cause}")
}

/// A step that ended without an exit status while its connection stayed up.
pub fn lost_step(step: &str, host: &str, cause: &str) -> String {
    format!("Lost step '{step}' on {host}: {cause}")
}

pub fn no_target(repository: &str, environment: &str, task: &str) -> String {
    format!("No target in ferry's config owns {repository} {environment} (task {task}) any more")
}

pub fn no_steps(task: &str, repository: &str) -> String {
    format!("No steps configured for task '{task}' of {repository}")
}

pub const SHUTTING_DOWN: &str = "Cancelled: ferry is shutting down";
pub const TAKEN_OVER: &str = "Taken over by another replica";

pub fn could_not_run(why: &str) -> String {
    format!("ferry could not run it: {why}")
}

/// A teardown's final description.
pub fn torn_down(hosts: usize, took: Duration) -> String {
    if hosts == 0 {
        "Torn down: no teardown steps to run".into()
    } else {
        format!(
            "Torn down on {} in {}",
            plural(hosts, "host"),
            duration(took)
        )
    }
}

pub fn not_torn_down(why: &str) -> String {
    format!("Not torn down: {why}")
}

/// Every command's answer for an id the store does not have.
pub fn no_deployment(id: DeploymentId, stored_in: &str) -> String {
    format!("no deployment {id} in {stored_in}; `ferry deployments` lists the recent ones")
}

/// What a try records when its request never reached GitHub (DNS, a
/// refused connection, TLS): `ferry show` tells it from what GitHub said.
pub const UNREACHED: &str = "could not reach GitHub";
/// What a try records when the request left but no answer came back.
pub const UNANSWERED: &str = "no answer from GitHub";

/// Whether a recorded error is ferry's failing to reach GitHub rather
/// than GitHub's answer.
pub fn is_unreached(error: &str) -> bool {
    error.starts_with(UNREACHED) || error.starts_with(UNANSWERED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rollback_note_is_kept_whole_within_140() {
        let short = with_rollback(
            "Step 'migrate' failed on web1 (exit 1)",
            "rolled back to abc1234",
        );
        assert_eq!(
            short,
            "Step 'migrate' failed on web1 (exit 1); rolled back to abc1234"
        );
        let long = with_rollback(&"x".repeat(200), &rollback_failed("abc1234", "web1", 1));
        assert_eq!(long.chars().count(), 140);
        assert!(
            long.ends_with("…; rollback to abc1234 failed on web1 (exit 1)"),
            "{long}"
        );
    }

    #[test]
    fn hold_texts_fit_a_description() {
        let d = held_waiting("production", &hold(DeploymentId(41), "web1"));
        assert_eq!(
            d,
            "Waiting: production is held: cannot end the step of deployment 41 on web1 yet"
        );
        assert!(d.len() <= 140);
    }
}
