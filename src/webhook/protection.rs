//! A `deployment_protection_rule` `requested` event of a repository
//! `[protection]` covers: the GitHub Actions run is stored once, by its
//! callback URL (`202`), and answered from the store (`src/protection.rs`).
//! Its callback must be under `github.api_url`: an installation token
//! never leaves for a host ferry does not know (`400`, at warning
//! priority).

use super::event::ProtectionRuleEvent;
use super::{Answer, Intake};
use crate::store::NewRun;

const EVENT: &str = "deployment_protection_rule";

pub async fn requested(app: &Intake, e: ProtectionRuleEvent) -> Answer {
    let config = app.config.get();
    let repository = config.repository_as_configured(&e.repository.full_name);
    let repository = repository.as_str();
    let Some(protection) = &config.protection else {
        return Answer::ignored(EVENT, "ignored: no [protection] in the config");
    };
    if e.action != "requested" {
        return Answer::ignored(
            EVENT,
            format!(
                "ignored: only \"requested\" is answered (got {:?})",
                e.action
            ),
        );
    }
    if !protection.covers(&config.targets, repository) {
        return Answer::ignored(
            EVENT,
            format!("ignored: [protection] does not cover {repository}"),
        );
    }
    let (Some(environment), Some(callback)) = (e.environment, e.deployment_callback_url) else {
        return Answer::bad_request(
            EVENT,
            "environment and deployment_callback_url: missing".to_string(),
        );
    };
    let prefix = format!("{}/repos/{repository}/actions/runs/", config.github.api_url);
    let run_id = callback
        .strip_prefix(&prefix)
        .and_then(|rest| rest.strip_suffix("/deployment_protection_rule"))
        .and_then(|id| id.parse::<i64>().ok());
    let Some(run_id) = run_id else {
        tracing::warn!(
            repository,
            "refused a deployment protection rule: its deployment_callback_url {callback:?} is not {prefix}RUN/deployment_protection_rule"
        );
        return Answer::bad_request(
            EVENT,
            format!(
                "deployment_callback_url: not under {prefix}: ferry sends its token only to github.api_url"
            ),
        );
    };
    let run = NewRun {
        repository: repository.to_string(),
        environment,
        run_id,
        callback_url: callback,
        installation_id: e.installation.map(|i| i.id),
    };
    match super::deployment::within_deadline(app.store.record_run(&run)).await {
        Ok(false) => Answer::ignored(EVENT, format!("ignored: run {run_id} was taken before")),
        Ok(true) => {
            tracing::info!(repository, environment = %run.environment,
                "GitHub Actions run {run_id} of {repository} asks to deploy to {}", run.environment);
            app.protection.notify_one();
            app.accepted(EVENT, format!("run {run_id} to {} taken", run.environment))
        }
        Err(err) => {
            tracing::error!(error = %err, repository, "cannot store a protection rule's run: {err}");
            Answer::unavailable(EVENT)
        }
    }
}
