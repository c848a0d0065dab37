//! `check_run`, `check_suite` and `status` events: a sha's checks changed,
//! so the deployments waiting for them are looked at again now instead of
//! at their next look (docs/configuration.md, "Required checks"). Answered `200`.

use axum::http::StatusCode;

use super::event::ChecksEvent;
use super::{Answer, Intake};

pub async fn changed(app: &Intake, event: &str, checks: ChecksEvent) -> Answer {
    let config = app.config.get();
    let repository = config.repository_as_configured(&checks.repository.full_name);
    let repository = repository.as_str();
    let Some(sha) = checks.sha() else {
        return Answer::ignored(event, "ignored: no sha in the event");
    };
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
    let looks = async {
        let gates = app.store.look_again(repository, sha).await?;
        let candidates = app.store.candidates_look_again(repository, sha).await?;
        Ok::<_, crate::store::Error>((gates, candidates))
    };
    match super::deployment::within_deadline(looks).await {
        Ok((0, 0)) => Answer::ignored(
            event,
            format!("ignored: no deployment waits for the checks of {sha}"),
        ),
        Ok((n, candidates)) => {
            if candidates > 0 {
                app.auto_deploy.notify_one();
            }
            app.gates.notify_one();
            Answer::new(
                StatusCode::OK,
                event,
                "accepted",
                format!(
                    "looking at the checks of {} again for {}",
                    crate::format::short_sha(sha),
                    [
                        (n, "waiting deployment"),
                        (candidates, "auto-deploy candidate")
                    ]
                    .iter()
                    .filter(|(k, _)| *k > 0)
                    .map(|(k, what)| crate::format::plural(*k as usize, what))
                    .collect::<Vec<_>>()
                    .join(" and ")
                ),
            )
        }
        Err(e) => {
            tracing::error!(error = %e, repository, "cannot look again at the checks of {sha}: {e}");
            Answer::unavailable(event)
        }
    }
}
