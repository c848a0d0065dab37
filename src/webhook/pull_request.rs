//! A closed pull request tears down the review apps of its branch: `202`
//! once a teardown is queued (durably), `200` when there was nothing to do.

use super::event::PullRequestEvent;
use super::{Answer, Intake};
use crate::store::{TeardownCause, TeardownQueued};

const EVENT: &str = "pull_request";

pub async fn closed(app: &Intake, parsed: PullRequestEvent) -> Answer {
    let repository = parsed.repository.full_name;
    if parsed.action != "closed" {
        return Answer::ignored(
            EVENT,
            format!(
                "ignored: only action \"closed\" tears down (got {:?})",
                parsed.action
            ),
        );
    }
    let config = app.config.get();
    let repository = config.repository_as_configured(&repository);
    if !config.targets.iter().any(|t| t.repository == repository) {
        return Answer::ignored(EVENT, format!("ignored: no target owns {repository}"));
    }
    let cause = TeardownCause::PullRequest {
        number: parsed.number,
        head_ref: parsed.pull_request.head.git_ref,
        head_sha: parsed.pull_request.head.sha,
    };
    let done = match super::deployment::within_deadline(
        crate::admission::teardown::pull_request_closed(&app.store, &config, &repository, &cause),
    )
    .await
    {
        Ok(done) => done,
        Err(e) => {
            tracing::error!(error = %e, "cannot queue the teardowns of pull request #{} of {repository}: {e}", parsed.number);
            return Answer::unavailable(EVENT);
        }
    };
    let queued: Vec<String> = done
        .iter()
        .filter_map(|q| match q {
            TeardownQueued::Queued { teardown, .. } => Some(format!(
                "{} (teardown {})",
                teardown.environment, teardown.id
            )),
            _ => None,
        })
        .collect();
    if queued.is_empty() {
        return Answer::ignored(
            EVENT,
            format!(
                "nothing to tear down for pull request #{}: no live review app of its branch",
                parsed.number
            ),
        );
    }
    app.accepted(EVENT, format!("queued teardown of {}", queued.join(", ")))
}
