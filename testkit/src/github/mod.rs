//! A fake GitHub REST API that records deployment statuses and checks every
//! request against the fixtures in `tests/data/github/` (copied from the shared fixtures, see its PROVENANCE.md).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;

use crate::schema::{check_body, create_deployment_schema, request_schema};

mod app;
mod checks;
pub mod comments;
mod commits;
mod create;
pub mod protection;
use app::{access_token, repo_installation};
pub use create::Created;

pub const TOKEN: &str = "ghs_test_token";

#[derive(Debug, Clone)]
pub struct Posted {
    pub repo: String,
    pub deployment: i64,
    pub body: Value,
    /// When the fake received it.
    pub at: Instant,
}

impl Posted {
    pub fn state(&self) -> &str {
        self.body["state"].as_str().unwrap_or_default()
    }
    pub fn description(&self) -> &str {
        self.body["description"].as_str().unwrap_or_default()
    }
    pub fn log_url(&self) -> Option<&str> {
        self.body["log_url"].as_str()
    }
}

/// An answer the fake gives instead of accepting.
#[derive(Debug, Clone)]
pub struct Fault {
    pub code: u16,
    pub headers: Vec<(String, String)>,
    pub message: String,
}

impl Fault {
    pub fn new(code: u16) -> Fault {
        Fault {
            code,
            headers: Vec::new(),
            message: "injected fault".into(),
        }
    }
    pub fn header(mut self, k: &str, v: &str) -> Fault {
        self.headers.push((k.into(), v.into()));
        self
    }
    pub fn message(mut self, m: &str) -> Fault {
        self.message = m.into();
        self
    }
}

/// A GitHub App as the fake knows it.
pub struct App {
    pub id: u64,
    pub public_key_pem: Vec<u8>,
    /// How long installation tokens live.
    pub token_ttl: Duration,
    /// repository → installation id the statuses must be posted with.
    pub installations: Vec<(String, i64)>,
}

#[derive(Default)]
struct Inner {
    statuses: Vec<Posted>,
    violations: Vec<String>,
    /// deployment id → answers to give, in order, before accepting.
    faults: std::collections::HashMap<i64, VecDeque<Fault>>,
    /// deployment id → answer given to every status, forever.
    refuse: std::collections::HashMap<i64, Fault>,
    /// Every status request gets a 500 while set.
    down: bool,
    /// Status requests seen, answered or not.
    attempts: Vec<(i64, Instant)>,
    app: Option<App>,
    /// token → (installation, expires)
    tokens: std::collections::HashMap<String, (i64, Instant)>,
    tokens_issued: Vec<i64>,
    /// deployment id → state whose post is taken but never answered.
    hold: std::collections::HashMap<i64, String>,
    /// Deployments whose statuses were listed (GET), in order.
    reads: Vec<i64>,
    /// Each status post takes this long, one at a time: a GitHub that
    /// takes 1/pace posts a second.
    pace: Option<Duration>,
    /// Deployments GitHub lists (`GET /repos/{r}/deployments`), newest
    /// first per repository, as (repository, deployment object).
    deployments: Vec<(String, Value)>,
    /// Lists asked for, and how many of those were answered `304`.
    lists: usize,
    not_modified: usize,
    /// Create-deployment requests, in order.
    creates: Vec<Created>,
    /// The answer every create request gets instead of a deployment.
    create_fault: Option<Fault>,
    /// Branch or tag → sha, for create requests and branch reads.
    refs: std::collections::HashMap<String, String>,
    /// Branch reads (`GET .../branches/{b}`), and how many were `304`.
    branch_reads: usize,
    branch_not_modified: usize,
    /// Create requests are taken (the deployment exists) but never
    /// answered while set.
    hold_creates: bool,
    /// Pull requests, roles, reactions and comments.
    comments: comments::Comments,
    /// Answers to deployment protection rules.
    rules: protection::Rules,
    /// Where the `deployment` webhooks of created deployments go.
    hook: Option<create::Hook>,
    /// Those webhooks: (deployment id, ferry's answer; 0 for none).
    hooks_sent: Vec<(i64, u16)>,
    /// (repository, sha) → check runs and commit statuses GitHub reports.
    checks: std::collections::HashMap<(String, String), checks::Reported>,
    /// The answer every checks read gets instead, while set.
    checks_fault: Option<Fault>,
    /// Checks reads (both endpoints, every page).
    check_reads: usize,
    /// (repository, sha) → committer date, for commit reads.
    commit_dates: std::collections::HashMap<(String, String), String>,
    /// The answer every commit read gets instead, while set.
    commits_fault: Option<Fault>,
    commit_reads: Vec<(String, String)>,
}

#[derive(Clone)]
pub struct FakeGitHub {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
    schema: Arc<Value>,
    create_schema: Arc<Value>,
    /// Held by the post being answered when a pace is set.
    one_at_a_time: Arc<tokio::sync::Mutex<()>>,
}

/// `GET .../deployments/{id}/statuses`: what was taken, newest first, as
/// GitHub lists it.
async fn list_statuses(
    State(fake): State<FakeGitHub>,
    Path((owner, repo, id)): Path<(String, String, i64)>,
    headers: HeaderMap,
) -> Response {
    let mut inner = fake.inner.lock().unwrap();
    inner.reads.push(id);
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if inner.app.is_none() && auth != format!("Bearer {TOKEN}") {
        inner
            .violations
            .push(format!("deployment {id}: list with Authorization {auth:?}"));
    }
    let repository = format!("{owner}/{repo}");
    let listed: Vec<Value> = inner
        .statuses
        .iter()
        .rev()
        .filter(|p| p.deployment == id && p.repo == repository)
        .map(|p| {
            serde_json::json!({
                "state": p.body["state"],
                "description": p.body.get("description").cloned().unwrap_or(Value::Null),
            })
        })
        .collect();
    axum::Json(listed).into_response()
}

/// `GET /repos/{owner}/{repo}/deployments`: the deployments the test gave
/// the fake, newest first, with an ETag; `304` when `If-None-Match` names
/// the list as it is.
async fn list_deployments(
    State(fake): State<FakeGitHub>,
    Path((owner, repo)): Path<(String, String)>,
    axum::extract::Query(query): axum::extract::Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut inner = fake.inner.lock().unwrap();
    inner.lists += 1;
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    if inner.app.is_none() && auth != format!("Bearer {TOKEN}") {
        inner
            .violations
            .push(format!("deployments list with Authorization {auth:?}"));
    }
    for (h, want) in [
        ("accept", "application/vnd.github+json"),
        ("x-github-api-version", "2022-11-28"),
    ] {
        if headers.get(h).and_then(|v| v.to_str().ok()) != Some(want) {
            inner
                .violations
                .push(format!("deployments list without {h}: {want}"));
        }
    }
    let repository = format!("{owner}/{repo}");
    // GitHub's filters (`sha`, `ref`, `task`, `environment`) and page size.
    let field = |d: &Value, k: &str| d[k].as_str().map(str::to_string);
    let per_page = query
        .get("per_page")
        .and_then(|n| n.parse().ok())
        .unwrap_or(30usize);
    let listed: Vec<Value> = inner
        .deployments
        .iter()
        .filter(|(r, _)| *r == repository)
        .map(|(_, d)| d)
        .filter(|d| {
            ["sha", "ref", "task", "environment"].iter().all(|k| {
                query
                    .get(*k)
                    .is_none_or(|want| field(d, k).as_ref() == Some(want))
            })
        })
        .take(per_page)
        .cloned()
        .collect();
    let body = serde_json::to_vec(&listed).unwrap();
    let (answer, unchanged) = conditional(&headers, body);
    inner.not_modified += usize::from(unchanged);
    answer
}

/// GitHub's answer to a conditional read of `body`: `304` when the
/// request's `If-None-Match` is the body's ETag (and true), else `200`
/// with the body and its ETag.
pub(super) fn conditional(headers: &HeaderMap, body: Vec<u8>) -> (Response, bool) {
    let etag = format!(
        "W/\"{}\"",
        hex::encode(&ferry::sign::sign(b"etag", &body)[..8])
    );
    if headers.get("if-none-match").and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
        return (
            (StatusCode::NOT_MODIFIED, [("etag", etag)]).into_response(),
            true,
        );
    }
    let answer = (
        StatusCode::OK,
        [
            ("etag", etag),
            ("content-type", "application/json".to_string()),
        ],
        body,
    )
        .into_response();
    (answer, false)
}

/// What GitHub would refuse in any API request's headers and credentials:
/// problems to record, or the answer GitHub gives at once (an expired
/// token's `401`).
fn common_problems(
    fake: &FakeGitHub,
    headers: &HeaderMap,
    repository: &str,
) -> Result<Vec<String>, Box<Response>> {
    let mut problems = read_problems(fake, headers, repository)?;
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !content_type.starts_with("application/json") {
        problems.push(format!("Content-Type is {content_type:?}"));
    }
    Ok(problems)
}

/// A JSON request's body, with what GitHub would refuse in it (its
/// headers, credentials, and the body against `schema`), or the answer
/// GitHub gives at once.
fn checked_body(
    fake: &FakeGitHub,
    headers: &HeaderMap,
    repository: &str,
    body: &[u8],
    schema: &Value,
) -> Result<(Value, Vec<String>), Box<Response>> {
    let mut problems = common_problems(fake, headers, repository)?;
    let value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            problems.push(format!("body is not JSON: {e}"));
            Value::Null
        }
    };
    problems.extend(check_body(schema, &value));
    Ok((value, problems))
}

/// As [`common_problems`], for a request without a body (a GET).
fn read_problems(
    fake: &FakeGitHub,
    headers: &HeaderMap,
    repository: &str,
) -> Result<Vec<String>, Box<Response>> {
    let mut problems = Vec::new();
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    if header("accept") != "application/vnd.github+json" {
        problems.push(format!("Accept is {:?}", header("accept")));
    }
    if header("x-github-api-version") != "2022-11-28" {
        problems.push(format!(
            "X-GitHub-Api-Version is {:?}",
            header("x-github-api-version")
        ));
    }
    if header("user-agent").is_empty() {
        problems.push("no User-Agent".into());
    }
    let auth = header("authorization");
    let inner = fake.inner.lock().unwrap();
    match &inner.app {
        None if auth != format!("Bearer {TOKEN}") => {
            problems.push(format!("Authorization is {auth:?}"))
        }
        None => {}
        Some(app) => {
            let expected = app
                .installations
                .iter()
                .find(|(r, _)| r == repository)
                .map(|(_, i)| *i);
            match inner
                .tokens
                .get(auth.strip_prefix("Bearer ").unwrap_or_default())
            {
                None => problems.push(format!("unknown token {auth:?}")),
                Some((installation, _)) if Some(*installation) != expected => problems.push(
                    format!("token of installation {installation} used for {repository}"),
                ),
                Some((_, expires)) if *expires <= Instant::now() => {
                    // GitHub answers 401 for an expired token; so do we.
                    return Err(Box::new(
                        (
                            StatusCode::UNAUTHORIZED,
                            "{\"message\":\"Bad credentials\"}",
                        )
                            .into_response(),
                    ));
                }
                Some(_) => {}
            }
        }
    }
    Ok(problems)
}

async fn create_status(
    State(fake): State<FakeGitHub>,
    Path((owner, repo, id)): Path<(String, String, i64)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let repository = format!("{owner}/{repo}");
    let (value, problems) = match checked_body(&fake, &headers, &repository, &body, &fake.schema) {
        Ok(checked) => checked,
        Err(answer) => return *answer,
    };
    let pace = fake.inner.lock().unwrap().pace;
    let _turn = match pace {
        Some(pace) => {
            let turn = fake.one_at_a_time.clone().lock_owned().await;
            tokio::time::sleep(pace).await;
            Some(turn)
        }
        None => None,
    };
    // The lock is not held across an await: the handler must be Send.
    let recorded = (|| -> Result<(usize, bool), Box<Response>> {
        let mut inner = fake.inner.lock().unwrap();
        inner.attempts.push((id, Instant::now()));
        if !problems.is_empty() {
            inner
                .violations
                .extend(problems.iter().map(|p| format!("deployment {id}: {p}")));
            return Err(Box::new(
                (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "{\"message\":\"Validation Failed\"}",
                )
                    .into_response(),
            ));
        }
        let fault = if inner.down {
            Some(Fault::new(500))
        } else if let Some(f) = inner.refuse.get(&id) {
            Some(f.clone())
        } else {
            inner.faults.get_mut(&id).and_then(VecDeque::pop_front)
        };
        if let Some(f) = fault {
            let body = serde_json::json!({"message": f.message}).to_string();
            let mut r = (StatusCode::from_u16(f.code).unwrap(), body).into_response();
            for (k, v) in f.headers {
                r.headers_mut().insert(
                    axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    v.parse().unwrap(),
                );
            }
            return Err(Box::new(r));
        }
        inner.statuses.push(Posted {
            repo: format!("{owner}/{repo}"),
            deployment: id,
            body: value.clone(),
            at: Instant::now(),
        });
        let held = inner
            .hold
            .get(&id)
            .is_some_and(|s| value["state"] == s.as_str());
        Ok((inner.statuses.len(), held))
    })();
    let (taken, held) = match recorded {
        Ok(r) => r,
        Err(answer) => return *answer,
    };
    if held {
        // Taken, and the answer never comes: the sender cannot know.
        std::future::pending::<()>().await;
    }
    (
        StatusCode::CREATED,
        axum::Json(serde_json::json!({"id": taken, "state": value["state"]})),
    )
        .into_response()
}

impl FakeGitHub {
    /// Serves on a random loopback port; `prefix` is a GHES-style path such as `/api/v3`.
    pub async fn start(prefix: &str) -> FakeGitHub {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let fake = FakeGitHub {
            url: format!("http://{addr}{prefix}"),
            inner: Arc::default(),
            schema: Arc::new(request_schema()),
            create_schema: Arc::new(create_deployment_schema()),
            one_at_a_time: Arc::default(),
        };
        let route = format!("{prefix}/repos/{{owner}}/{{repo}}/deployments/{{id}}/statuses");
        let app = Router::new()
            .route(&route, post(create_status).get(list_statuses))
            .route(
                &format!("{prefix}/repos/{{owner}}/{{repo}}/deployments"),
                get(list_deployments).post(create::create_deployment),
            )
            .route(
                &format!("{prefix}/repos/{{owner}}/{{repo}}/commits/{{sha}}/check-runs"),
                get(checks::check_runs),
            )
            .route(
                &format!("{prefix}/repos/{{owner}}/{{repo}}/commits/{{sha}}"),
                get(commits::commit),
            )
            .route(
                &format!("{prefix}/repos/{{owner}}/{{repo}}/commits/{{sha}}/status"),
                get(checks::combined_status),
            )
            .route(
                &format!("{prefix}/repos/{{owner}}/{{repo}}/branches/{{*branch}}"),
                get(create::branch),
            )
            .route(
                &format!("{prefix}/repos/{{owner}}/{{repo}}/issues/comments/{{id}}/reactions"),
                post(comments::react),
            )
            .route(
                &format!("{prefix}/repos/{{owner}}/{{repo}}/issues/comments/{{id}}"),
                axum::routing::patch(comments::edit_comment),
            )
            .route(
                &format!("{prefix}/repos/{{owner}}/{{repo}}/issues/{{number}}/comments"),
                post(comments::post_comment).get(comments::list_comments),
            )
            .route(
                &format!("{prefix}/repos/{{owner}}/{{repo}}/collaborators/{{login}}/permission"),
                get(comments::permission),
            )
            .route(
                &format!("{prefix}/repos/{{owner}}/{{repo}}/pulls/{{number}}"),
                get(comments::pull),
            )
            .route(
                &format!(
                    "{prefix}/repos/{{owner}}/{{repo}}/actions/runs/{{run}}/deployment_protection_rule"
                ),
                post(protection::answer),
            )
            .route(
                &format!("{prefix}/repos/{{owner}}/{{repo}}/installation"),
                get(repo_installation),
            )
            .route(
                &format!("{prefix}/app/installations/{{id}}/access_tokens"),
                post(access_token),
            )
            .with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        fake
    }

    /// GitHub lists `deployment` (an octokit deployment object) first
    /// among `repository`'s deployments from now on.
    pub fn add_deployment(&self, repository: &str, deployment: Value) {
        self.inner
            .lock()
            .unwrap()
            .deployments
            .insert(0, (repository.to_string(), deployment));
    }

    /// Created deployments' `deployment` webhooks go to `url`, signed
    /// with `secret`, as GitHub's do.
    pub fn set_webhook(&self, url: &str, secret: &str) {
        self.inner.lock().unwrap().hook = Some(create::Hook {
            url: url.into(),
            secret: secret.into(),
        });
    }

    /// Every create-deployment request gets this answer (None: created).
    pub fn refuse_creates(&self, fault: Option<Fault>) {
        self.inner.lock().unwrap().create_fault = fault;
    }

    /// A branch or tag create requests may name.
    pub fn set_ref(&self, name: &str, sha: &str) {
        self.inner
            .lock()
            .unwrap()
            .refs
            .insert(name.into(), sha.into());
    }

    /// Create requests are taken (GitHub has the deployment, and sends its
    /// webhook) but never answered while `held`.
    pub fn hold_creates(&self, held: bool) {
        self.inner.lock().unwrap().hold_creates = held;
    }

    /// Branch reads so far, and how many of them were answered `304`.
    pub fn branch_reads(&self) -> (usize, usize) {
        let inner = self.inner.lock().unwrap();
        (inner.branch_reads, inner.branch_not_modified)
    }

    /// Create-deployment requests so far, in order.
    pub fn creates(&self) -> Vec<Created> {
        self.inner.lock().unwrap().creates.clone()
    }

    /// The webhooks of created deployments: (id, ferry's answer).
    pub fn hooks_sent(&self) -> Vec<(i64, u16)> {
        self.inner.lock().unwrap().hooks_sent.clone()
    }

    /// A status someone else posted (another agent, a person with `gh`).
    pub fn add_foreign_status(&self, repository: &str, id: i64, state: &str) {
        self.inner.lock().unwrap().statuses.push(Posted {
            repo: repository.to_string(),
            deployment: id,
            body: serde_json::json!({"state": state, "description": "by someone else"}),
            at: Instant::now(),
        });
    }

    /// Deployment lists asked for, and how many were answered `304`.
    pub fn lists(&self) -> (usize, usize) {
        let inner = self.inner.lock().unwrap();
        (inner.lists, inner.not_modified)
    }

    /// Takes deployment `id`'s `state` status but never answers it.
    pub fn hold_answer(&self, id: i64, state: &str) {
        self.inner.lock().unwrap().hold.insert(id, state.into());
    }

    pub fn release_answers(&self) {
        self.inner.lock().unwrap().hold.clear();
    }

    /// Deployments whose statuses ferry listed.
    pub fn reads(&self) -> Vec<i64> {
        self.inner.lock().unwrap().reads.clone()
    }

    /// One post at a time, each taking `pace`.
    pub fn set_pace(&self, pace: Duration) {
        self.inner.lock().unwrap().pace = Some(pace);
    }

    /// The next answers to statuses of deployment `id`.
    pub fn fail(&self, id: i64, faults: Vec<Fault>) {
        self.inner
            .lock()
            .unwrap()
            .faults
            .entry(id)
            .or_default()
            .extend(faults);
    }

    /// Every status of deployment `id` gets this answer.
    pub fn refuse(&self, id: i64, fault: Fault) {
        self.inner.lock().unwrap().refuse.insert(id, fault);
    }

    pub fn set_down(&self, down: bool) {
        self.inner.lock().unwrap().down = down;
    }

    /// Status requests for deployment `id`, answered or not, with their times.
    pub fn attempts(&self, id: i64) -> Vec<Instant> {
        self.inner
            .lock()
            .unwrap()
            .attempts
            .iter()
            .filter(|(d, _)| *d == id)
            .map(|(_, t)| *t)
            .collect()
    }

    pub fn set_app(&self, app: App) {
        self.inner.lock().unwrap().app = Some(app);
    }

    /// Installations tokens were issued for, in order.
    pub fn tokens_issued(&self) -> Vec<i64> {
        self.inner.lock().unwrap().tokens_issued.clone()
    }

    /// Makes every token issued so far expired, as if time passed.
    pub fn expire_tokens(&self) {
        for (_, expires) in self.inner.lock().unwrap().tokens.values_mut() {
            *expires = Instant::now();
        }
    }

    pub fn statuses(&self) -> Vec<Posted> {
        self.inner.lock().unwrap().statuses.clone()
    }

    pub fn statuses_of(&self, id: i64) -> Vec<Posted> {
        self.statuses()
            .into_iter()
            .filter(|p| p.deployment == id)
            .collect()
    }

    pub fn violations(&self) -> Vec<String> {
        self.inner.lock().unwrap().violations.clone()
    }

    /// Waits until deployment `id` has had status `state`.
    pub async fn wait_state(&self, id: i64, state: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.statuses_of(id).iter().any(|p| p.state() == state) {
            assert!(
                Instant::now() < deadline,
                "deployment {id} never got {state}: {:?}",
                self.statuses_of(id)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until deployment `id` has a final status; returns all of its statuses.
    pub async fn wait_final(&self, id: i64, within: Duration) -> Vec<Posted> {
        let deadline = Instant::now() + within;
        loop {
            let got = self.statuses_of(id);
            if got
                .iter()
                .any(|p| matches!(p.state(), "success" | "failure" | "error" | "inactive"))
            {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "deployment {id} got no final status within {within:?}; statuses: {:?}; violations: {:?}",
                got.iter()
                    .map(|p| p.state().to_string())
                    .collect::<Vec<_>>(),
                self.violations()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
