//! A commit (`GET .../commits/{sha}`), in the shape of GitHub's "Commit"
//! (`tests/data/github/commit.json`), with the committer date the test
//! set; `404` for a sha it does not know, as GitHub answers.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{FakeGitHub, read_problems};

pub(super) async fn commit(
    State(fake): State<FakeGitHub>,
    Path((owner, repo, sha)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let repository = format!("{owner}/{repo}");
    let problems = match read_problems(&fake, &headers, &repository) {
        Ok(p) => p,
        Err(answer) => return *answer,
    };
    let mut inner = fake.inner.lock().unwrap();
    inner.commit_reads.push((repository.clone(), sha.clone()));
    inner
        .violations
        .extend(problems.into_iter().map(|p| format!("commit read: {p}")));
    if let Some(f) = inner.commits_fault.clone() {
        return (
            StatusCode::from_u16(f.code).unwrap(),
            json!({"message": f.message}).to_string(),
        )
            .into_response();
    }
    let Some(date) = inner.commit_dates.get(&(repository, sha.clone())).cloned() else {
        return (
            StatusCode::NOT_FOUND,
            json!({
                "message": format!("No commit found for SHA: {sha}"),
                "documentation_url": "https://docs.github.com/rest/commits/commits#get-a-commit",
                "status": "404"
            })
            .to_string(),
        )
            .into_response();
    };
    let mut body = crate::fixture("commit.json");
    body["sha"] = json!(sha);
    body["url"] = json!(format!(
        "https://api.github.com/repos/{owner}/{repo}/commits/{sha}"
    ));
    body["commit"]["committer"]["date"] = json!(date);
    body["commit"]["author"]["date"] = json!(date);
    (StatusCode::OK, body.to_string()).into_response()
}

impl FakeGitHub {
    /// GitHub knows `sha` of `repository`, committed at `date` (RFC 3339).
    pub fn set_commit(&self, repository: &str, sha: &str, date: &str) {
        self.inner
            .lock()
            .unwrap()
            .commit_dates
            .insert((repository.to_string(), sha.to_string()), date.to_string());
    }

    /// Every commit read gets `fault` instead while it is set.
    pub fn fail_commits(&self, fault: Option<super::Fault>) {
        self.inner.lock().unwrap().commits_fault = fault;
    }

    /// Commit reads, in order: (repository, sha).
    pub fn commit_reads(&self) -> Vec<(String, String)> {
        self.inner.lock().unwrap().commit_reads.clone()
    }
}
