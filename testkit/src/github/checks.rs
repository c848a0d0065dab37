//! A sha's check runs (`GET .../commits/{sha}/check-runs`) and combined
//! status (`GET .../commits/{sha}/status`), as the test sets them, paged
//! as GitHub pages them (`per_page`, `page`, `total_count`).

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{FakeGitHub, Fault, read_problems};

/// What GitHub reports for one sha.
#[derive(Default, Clone)]
pub(super) struct Reported {
    runs: Vec<Value>,
    statuses: Vec<Value>,
}

type Params = Query<HashMap<String, String>>;

/// The page of `items` the query asks for, GitHub's way.
fn page(items: &[Value], q: &HashMap<String, String>) -> Vec<Value> {
    let per = q
        .get("per_page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(30usize)
        .clamp(1, 100);
    let n = q
        .get("page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1usize)
        .max(1);
    items
        .iter()
        .skip((n - 1) * per)
        .take(per)
        .cloned()
        .collect()
}

/// The fault to answer with, or the problems recorded; None: go on.
fn refused(fake: &FakeGitHub, headers: &HeaderMap, repository: &str) -> Option<Response> {
    let problems = match read_problems(fake, headers, repository) {
        Ok(p) => p,
        Err(answer) => return Some(*answer),
    };
    let mut inner = fake.inner.lock().unwrap();
    inner.check_reads += 1;
    inner
        .violations
        .extend(problems.into_iter().map(|p| format!("checks read: {p}")));
    inner.checks_fault.clone().map(|f: Fault| {
        (
            StatusCode::from_u16(f.code).unwrap(),
            json!({"message": f.message}).to_string(),
        )
            .into_response()
    })
}

/// What GitHub reports for `sha`, once the request is checked; or the
/// answer to give instead.
fn reported(
    fake: &FakeGitHub,
    headers: &HeaderMap,
    repository: String,
    sha: &str,
) -> Result<Reported, Box<Response>> {
    if let Some(answer) = refused(fake, headers, &repository) {
        return Err(Box::new(answer));
    }
    let inner = fake.inner.lock().unwrap();
    Ok(inner
        .checks
        .get(&(repository, sha.to_string()))
        .cloned()
        .unwrap_or_default())
}

pub(super) async fn check_runs(
    State(fake): State<FakeGitHub>,
    Path((owner, repo, sha)): Path<(String, String, String)>,
    Query(q): Params,
    headers: HeaderMap,
) -> Response {
    let runs = match reported(&fake, &headers, format!("{owner}/{repo}"), &sha) {
        Ok(r) => r.runs,
        Err(answer) => return *answer,
    };
    axum::Json(json!({"total_count": runs.len(), "check_runs": page(&runs, &q)})).into_response()
}

pub(super) async fn combined_status(
    State(fake): State<FakeGitHub>,
    Path((owner, repo, sha)): Path<(String, String, String)>,
    Query(q): Params,
    headers: HeaderMap,
) -> Response {
    let statuses = match reported(&fake, &headers, format!("{owner}/{repo}"), &sha) {
        Ok(r) => r.statuses,
        Err(answer) => return *answer,
    };
    let state = if statuses.iter().any(|s| s["state"] != "success") || statuses.is_empty() {
        "pending"
    } else {
        "success"
    };
    axum::Json(json!({
        "state": state,
        "sha": sha,
        "total_count": statuses.len(),
        "statuses": page(&statuses, &q),
    }))
    .into_response()
}

impl FakeGitHub {
    /// GitHub reports check run `name` on `sha` so (replacing one of that
    /// name): `status` queued / in_progress / completed, and a conclusion
    /// once completed.
    pub fn set_check_run(
        &self,
        repository: &str,
        sha: &str,
        name: &str,
        status: &str,
        conclusion: Option<&str>,
    ) {
        let mut inner = self.inner.lock().unwrap();
        let reported = inner
            .checks
            .entry((repository.to_string(), sha.to_string()))
            .or_default();
        reported.runs.retain(|r| r["name"] != name);
        let id = reported.runs.len() as i64 + 1;
        reported.runs.insert(
            0,
            json!({"id": id, "name": name, "head_sha": sha, "status": status, "conclusion": conclusion}),
        );
    }

    /// GitHub reports commit status `context` on `sha` with `state`.
    pub fn set_commit_status(&self, repository: &str, sha: &str, context: &str, state: &str) {
        let mut inner = self.inner.lock().unwrap();
        let reported = inner
            .checks
            .entry((repository.to_string(), sha.to_string()))
            .or_default();
        reported.statuses.retain(|s| s["context"] != context);
        reported
            .statuses
            .push(json!({"context": context, "state": state}));
    }

    /// Every checks read gets this answer (None: the reported checks).
    pub fn refuse_checks(&self, fault: Option<Fault>) {
        self.inner.lock().unwrap().checks_fault = fault;
    }

    /// Checks reads so far (both endpoints, every page).
    pub fn check_reads(&self) -> usize {
        self.inner.lock().unwrap().check_reads
    }
}
