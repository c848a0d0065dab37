//! `POST /repos/{owner}/{repo}/deployments`, as GitHub answers it: the
//! body checked against the request schema, a `201` with the deployment
//! (the ref resolved to a sha), or a fault the test set (`409`, `422`);
//! then the signed `deployment` webhook to the ferry the test names, as
//! GitHub sends it after creating one.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Instant, SystemTime};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{FakeGitHub, Fault, checked_body};

/// Ids of created deployments, far from the ones tests deliver themselves.
static NEXT_ID: AtomicI64 = AtomicI64::new(900_001);

/// A create request the fake took, answered or refused.
#[derive(Debug, Clone)]
pub struct Created {
    pub repo: String,
    pub body: Value,
    /// The id it was given; None when refused.
    pub id: Option<i64>,
    pub at: Instant,
}

/// Where created deployments' webhooks go.
#[derive(Clone)]
pub(super) struct Hook {
    pub url: String,
    pub secret: String,
}

pub(super) async fn create_deployment(
    State(fake): State<FakeGitHub>,
    Path((owner, repo)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (answer, held) = take_create(&fake, &owner, &repo, &headers, &body);
    if held {
        // Created, and the answer never comes: the sender cannot know.
        std::future::pending::<()>().await;
    }
    answer
}

/// The create request taken, and whether its answer is held.
fn take_create(
    fake: &FakeGitHub,
    owner: &str,
    repo: &str,
    headers: &HeaderMap,
    body: &Bytes,
) -> (Response, bool) {
    let repository = format!("{owner}/{repo}");
    let (value, problems) =
        match checked_body(fake, headers, &repository, body, &fake.create_schema) {
            Ok(checked) => checked,
            Err(answer) => return (*answer, false),
        };
    let mut inner = fake.inner.lock().unwrap();
    let refuse = |inner: &mut super::Inner, f: Fault| {
        inner.creates.push(Created {
            repo: repository.clone(),
            body: value.clone(),
            id: None,
            at: Instant::now(),
        });
        (
            StatusCode::from_u16(f.code).unwrap(),
            json!({"message": f.message}).to_string(),
        )
            .into_response()
    };
    if !problems.is_empty() {
        inner
            .violations
            .extend(problems.iter().map(|p| format!("create deployment: {p}")));
        return (
            refuse(&mut inner, Fault::new(422).message("Validation Failed")),
            false,
        );
    }
    if let Some(f) = inner.create_fault.clone() {
        return (refuse(&mut inner, f), false);
    }
    let git_ref = value["ref"].as_str().unwrap_or_default().to_string();
    let is_sha = git_ref.len() == 40 && git_ref.bytes().all(|b| b.is_ascii_hexdigit());
    let sha = match inner.refs.get(&git_ref) {
        Some(sha) => sha.clone(),
        None if is_sha => git_ref.clone(),
        None => {
            let f = Fault::new(422).message(&format!("No ref found for: {git_ref}"));
            return (refuse(&mut inner, f), false);
        }
    };
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let environment = value["environment"]
        .as_str()
        .unwrap_or("production")
        .to_string();
    let now = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let mut deployment = crate::fixture("deployment/payload.json")["deployment"].clone();
    for (k, v) in [
        ("id", json!(id)),
        ("sha", json!(sha)),
        ("ref", json!(git_ref)),
        (
            "task",
            value.get("task").cloned().unwrap_or(json!("deploy")),
        ),
        (
            "payload",
            value.get("payload").cloned().unwrap_or(json!({})),
        ),
        ("environment", json!(environment)),
        ("original_environment", json!(environment)),
        (
            "description",
            value.get("description").cloned().unwrap_or(Value::Null),
        ),
        (
            "creator",
            json!({"login": "ferry-bot[bot]", "id": 1, "type": "Bot"}),
        ),
        (
            "production_environment",
            value
                .get("production_environment")
                .cloned()
                .unwrap_or(json!(environment == "production")),
        ),
        (
            "transient_environment",
            value
                .get("transient_environment")
                .cloned()
                .unwrap_or(json!(false)),
        ),
        ("created_at", json!(now)),
        ("updated_at", json!(now)),
    ] {
        deployment[k] = v;
    }
    inner.creates.push(Created {
        repo: repository.clone(),
        body: value.clone(),
        id: Some(id),
        at: Instant::now(),
    });
    inner
        .deployments
        .insert(0, (repository.clone(), deployment.clone()));
    if let Some(hook) = inner.hook.clone() {
        let installation = inner.app.as_ref().and_then(|app| {
            app.installations
                .iter()
                .find(|(r, _)| *r == repository)
                .map(|(_, i)| *i)
        });
        let fake = fake.clone();
        let deployment = deployment.clone();
        tokio::spawn(async move {
            send_webhook(&fake, &hook, &repository, deployment, installation).await
        });
    }
    (
        (StatusCode::CREATED, axum::Json(deployment)).into_response(),
        inner.hold_creates,
    )
}

/// `GET /repos/{owner}/{repo}/branches/{branch}`: the branch's head from
/// [`FakeGitHub::set_ref`], in the shape of GitHub's "Branch With
/// Protection" (`tests/data/github/branch.json`), with an ETag; `304` for
/// an unchanged one, `404` for an unknown branch.
pub(super) async fn branch(
    State(fake): State<FakeGitHub>,
    Path((owner, repo, branch)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let mut inner = fake.inner.lock().unwrap();
    inner.branch_reads += 1;
    for (h, want) in [
        ("accept", "application/vnd.github+json"),
        ("x-github-api-version", "2022-11-28"),
    ] {
        if headers.get(h).and_then(|v| v.to_str().ok()) != Some(want) {
            inner
                .violations
                .push(format!("branch read without {h}: {want}"));
        }
    }
    let Some(sha) = inner.refs.get(&branch).cloned() else {
        return (
            StatusCode::NOT_FOUND,
            json!({"message": "Branch not found", "status": "404"}).to_string(),
        )
            .into_response();
    };
    let mut body = crate::fixture("branch.json");
    body["name"] = json!(branch);
    body["commit"]["sha"] = json!(sha);
    body["commit"]["url"] = json!(format!(
        "https://api.github.com/repos/{owner}/{repo}/commits/{sha}"
    ));
    let (answer, unchanged) = super::conditional(&headers, serde_json::to_vec(&body).unwrap());
    inner.branch_not_modified += usize::from(unchanged);
    answer
}

/// The `deployment` webhook GitHub sends once it created one.
async fn send_webhook(
    fake: &FakeGitHub,
    hook: &Hook,
    repository: &str,
    deployment: Value,
    installation: Option<i64>,
) {
    let mut event = crate::fixture("deployment/payload.json");
    let id = deployment["id"].as_i64().unwrap_or_default();
    event["deployment"] = deployment;
    event["repository"]["full_name"] = repository.into();
    if let Some(i) = installation {
        event["installation"] = json!({"id": i});
    }
    let body = serde_json::to_vec(&event).unwrap();
    let answer = reqwest::Client::new()
        .post(&hook.url)
        .header("content-type", "application/json")
        .header("x-github-event", "deployment")
        .header("x-github-delivery", format!("created-{id}"))
        .header("x-github-hook-id", "4242")
        .header("x-hub-signature-256", crate::signature(&hook.secret, &body))
        .body(body)
        .send()
        .await;
    let code = answer.map_or(0, |r| r.status().as_u16());
    fake.inner.lock().unwrap().hooks_sent.push((id, code));
}
