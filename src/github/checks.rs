//! A sha's check runs and commit statuses, for `require_checks`: both
//! endpoints, every page.

use serde::Deserialize;

use super::{CallError, GitHub};

/// Pages read at most per endpoint (100 each): a sha with more than a
/// thousand checks is read in part, and what is missing waits.
const MAX_PAGES: u32 = 10;

/// Where one reported check stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckState {
    Passed,
    Failed,
    Pending,
}

impl CheckState {
    /// A check run: `completed` with `success`, `neutral` or `skipped`
    /// passed; completed otherwise failed; anything else is pending.
    pub fn of_run(status: &str, conclusion: Option<&str>) -> CheckState {
        match (status, conclusion) {
            ("completed", Some("success" | "neutral" | "skipped")) => CheckState::Passed,
            ("completed", _) => CheckState::Failed,
            _ => CheckState::Pending,
        }
    }

    /// A commit status: `success` passed, `failure` and `error` failed.
    pub fn of_status(state: &str) -> CheckState {
        match state {
            "success" => CheckState::Passed,
            "failure" | "error" => CheckState::Failed,
            _ => CheckState::Pending,
        }
    }
}

#[derive(Deserialize)]
struct RunsPage {
    total_count: usize,
    check_runs: Vec<Run>,
}

#[derive(Deserialize)]
struct Run {
    name: String,
    status: String,
    conclusion: Option<String>,
}

#[derive(Deserialize)]
struct StatusPage {
    #[serde(default)]
    total_count: usize,
    statuses: Vec<Status>,
}

#[derive(Deserialize)]
struct Status {
    context: String,
    state: String,
}

impl GitHub {
    /// Every check run (GitHub lists each name's latest) and commit status
    /// context reported for `sha`, with where it stands.
    pub async fn commit_checks(
        &self,
        repository: &str,
        sha: &str,
        installation: Option<i64>,
    ) -> Result<Vec<(String, CheckState)>, CallError> {
        let mut found = Vec::new();
        let unreadable = |what: &str, e: reqwest::Error| CallError::Retry {
            after: None,
            reason: format!("GitHub's {what} are not what ferry expects: {e}"),
        };
        for page in 1..=MAX_PAGES {
            let url = format!(
                "{}/repos/{repository}/commits/{sha}/check-runs?per_page=100&page={page}",
                self.api_url
            );
            let token = self.token(installation).await?;
            let response = self
                .send(self.http.get(&url).bearer_auth(token.expose_str()))
                .await?;
            let runs: RunsPage = response
                .json()
                .await
                .map_err(|e| unreadable("check runs", e))?;
            let last = runs.check_runs.is_empty();
            for r in runs.check_runs {
                if !found.iter().any(|(n, _)| *n == r.name) {
                    let outcome = CheckState::of_run(&r.status, r.conclusion.as_deref());
                    found.push((r.name, outcome));
                }
            }
            if last || found.len() >= runs.total_count {
                break;
            }
        }
        let runs = found.len();
        for page in 1..=MAX_PAGES {
            let url = format!(
                "{}/repos/{repository}/commits/{sha}/status?per_page=100&page={page}",
                self.api_url
            );
            let token = self.token(installation).await?;
            let response = self
                .send(self.http.get(&url).bearer_auth(token.expose_str()))
                .await?;
            let statuses: StatusPage = response
                .json()
                .await
                .map_err(|e| unreadable("commit statuses", e))?;
            let last = statuses.statuses.is_empty();
            for s in statuses.statuses {
                if !found.iter().any(|(n, _)| *n == s.context) {
                    found.push((s.context, CheckState::of_status(&s.state)));
                }
            }
            if last || found.len() - runs >= statuses.total_count {
                break;
            }
        }
        Ok(found)
    }

    /// The App installation for `repository`, from the deployment when it
    /// came with one.
    pub async fn installation_of_deployment(
        &self,
        repository: &str,
        known: Option<i64>,
    ) -> Result<Option<i64>, CallError> {
        match known {
            Some(id) => Ok(Some(id)),
            None => self.installation_for(repository).await,
        }
    }
}
