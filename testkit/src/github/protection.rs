//! `POST /repos/{owner}/{repo}/actions/runs/{run_id}/deployment_protection_rule`:
//! a deployment protection rule's answer, as GitHub takes it (`204`), with
//! the installation's token checked; `502` on demand.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::FakeGitHub;

/// An answer ferry gave a run.
#[derive(Debug, Clone)]
pub struct RuleAnswer {
    pub run_id: i64,
    pub environment: String,
    /// `approved`, `rejected`, or None for a status report.
    pub state: Option<String>,
    pub comment: String,
    /// When GitHub took it.
    pub at: std::time::Instant,
}

#[derive(Default)]
pub(super) struct Rules {
    pub answers: Vec<RuleAnswer>,
    /// Answers refused with 502 before one is taken.
    pub fail_next: usize,
}

pub(super) async fn answer(
    State(fake): State<FakeGitHub>,
    Path((owner, repo, run_id)): Path<(String, String, i64)>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let repository = format!("{owner}/{repo}");
    let problems = match super::read_problems(&fake, &headers, &repository) {
        Ok(p) => p,
        Err(answer) => return *answer,
    };
    let mut inner = fake.inner.lock().unwrap();
    inner.violations.extend(
        problems
            .iter()
            .map(|p| format!("protection rule answer: {p}")),
    );
    let state = body["state"].as_str().map(str::to_string);
    if state
        .as_deref()
        .is_some_and(|s| s != "approved" && s != "rejected")
    {
        inner
            .violations
            .push(format!("protection rule state {state:?}"));
    }
    let (Some(environment), Some(comment)) =
        (body["environment_name"].as_str(), body["comment"].as_str())
    else {
        inner.violations.push(format!(
            "protection rule answer without environment_name or comment: {body}"
        ));
        return (StatusCode::UNPROCESSABLE_ENTITY, "{}").into_response();
    };
    if inner.rules.fail_next > 0 {
        inner.rules.fail_next -= 1;
        return (StatusCode::BAD_GATEWAY, "{\"message\":\"Server Error\"}").into_response();
    }
    inner.rules.answers.push(RuleAnswer {
        run_id,
        environment: environment.to_string(),
        state,
        comment: comment.to_string(),
        at: std::time::Instant::now(),
    });
    StatusCode::NO_CONTENT.into_response()
}

impl FakeGitHub {
    /// The answers to protection rules so far, in order.
    pub fn rule_answers(&self) -> Vec<RuleAnswer> {
        self.inner.lock().unwrap().rules.answers.clone()
    }

    /// The next `n` answers get a 502.
    pub fn fail_rule_answers(&self, n: usize) {
        self.inner.lock().unwrap().rules.fail_next = n;
    }
}

/// A `deployment_protection_rule` `requested` event for Actions run `run`
/// of `repository`, calling back to the fake at `api_url`, in the shape of
/// octokit's schema (tests/data/github/schemas/); installation 11.
pub fn rule_event(api_url: &str, repository: &str, run: i64, environment: &str) -> Value {
    serde_json::json!({
        "action": "requested",
        "environment": environment,
        "event": "push",
        "deployment_callback_url": format!(
            "{api_url}/repos/{repository}/actions/runs/{run}/deployment_protection_rule"
        ),
        "repository": {"full_name": repository, "name": "web", "id": 1},
        "sender": {"login": "octocat", "id": 1},
        "installation": {"id": 11},
    })
}
