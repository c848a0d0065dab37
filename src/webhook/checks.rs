//! `check_run`, `check_suite` and `status` events: a sha's checks changed,
//! so the deployments waiting for them are looked at again now instead of
//! at their next look (docs/configuration.md, "Required checks"). Answered `200`.

use axum::http::StatusCode;

use super::event::ChecksEvent;
use super::{Answer, Intake};

pub async fn changed(app: &Intake, event: &str, checks: ChecksEvent) -> Answer {
    let repository = checks.repository.full_name.as_str();
    let Some(sha) = checks.sha() else {
        return Answer::ignored(event, "ignored: no sha in the event");
    };
    let config = app.config.get();
    let required = config
        .targets
        .iter()
        .any(|t| t.repository == repository && !t.require_checks.is_empty());
    if !required {
        return Answer::ignored(
            event,
            format!("ignored: no target of {repository} requires checks"),
        );
    }
    match super::deployment::within_deadline(app.store.look_again(repository, sha)).await {
        Ok(0) => Answer::ignored(
            event,
            format!("ignored: no deployment waits for the checks of {sha}"),
        ),
        Ok(n) => {
            app.gates.notify_one();
            Answer::new(
                StatusCode::OK,
                event,
                "accepted",
                format!(
                    "looking at the checks of {} again for {}",
                    crate::format::short_sha(sha),
                    crate::format::plural(n as usize, "waiting deployment")
                ),
            )
        }
        Err(e) => {
            tracing::error!(error = %e, repository, "cannot look again at the checks of {sha}: {e}");
            Answer::unavailable(event)
        }
    }
}
