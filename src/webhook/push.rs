//! A `push` to a branch that a target follows (`[target.auto_deploy]
//! branch`): its head becomes that environment's candidate, `202` once
//! stored; anything else (another branch, a tag, a deletion, a head seen
//! before) is `200` and changes nothing.

use super::event::PushEvent;
use super::{Answer, Intake};

const EVENT: &str = "push";

pub async fn pushed(app: &Intake, push: PushEvent) -> Answer {
    let Some(branch) = push.branch() else {
        return Answer::ignored(
            EVENT,
            format!("ignored: {} is not a branch's new head", push.git_ref),
        );
    };
    let config = app.config.get();
    let repository = config.repository_as_configured(&push.repository.full_name);
    let repository = repository.as_str();
    if crate::auto_deploy::following(&config, repository, branch)
        .next()
        .is_none()
    {
        return Answer::ignored(
            EVENT,
            format!("ignored: no target of {repository} auto-deploys {branch}"),
        );
    }
    let installation = push.installation.as_ref().map(|i| i.id);
    let offered = super::deployment::within_deadline(crate::auto_deploy::heads::offer_head(
        &app.store,
        &config,
        repository,
        branch,
        &push.after,
        installation,
    ))
    .await;
    match offered {
        Ok(offered) if offered.is_empty() => Answer::ignored(
            EVENT,
            format!(
                "ignored: {} of {branch} was a candidate before",
                crate::format::short_sha(&push.after)
            ),
        ),
        Ok(offered) => {
            for environment in &offered {
                tracing::info!(repository, environment = %environment, sha = %push.after,
                    "auto-deploy of {branch} at {} to {repository}:{environment}: a candidate (pushed)",
                    crate::format::short_sha(&push.after));
            }
            app.auto_deploy.notify_one();
            app.accepted(
                EVENT,
                format!(
                    "{} of {branch} is the candidate for {}",
                    crate::format::short_sha(&push.after),
                    offered.join(", ")
                ),
            )
        }
        Err(e) => {
            tracing::error!(error = %e, repository, "cannot store the head of {branch} of {repository}: {e}");
            Answer::unavailable(EVENT)
        }
    }
}
