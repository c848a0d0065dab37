//! A fake GitHub REST API that records deployment statuses and checks every
//! request against the fixtures in `../shared/fixtures/github/`.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::Value;

pub const TOKEN: &str = "ghs_test_token";

#[derive(Debug, Clone)]
pub struct Posted {
    pub repo: String,
    pub deployment: i64,
    pub body: Value,
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

#[derive(Default)]
struct Inner {
    statuses: Vec<Posted>,
    violations: Vec<String>,
    /// Answers to give before accepting, for fault injection.
    faults: VecDeque<(StatusCode, Vec<(String, String)>)>,
}

#[derive(Clone)]
pub struct FakeGitHub {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
    schema: Arc<Value>,
}

fn request_schema() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/fixtures/github/openapi-create-deployment-status.json"
    );
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).expect(path)).unwrap();
    doc["operation"]["requestBody"]["content"]["application/json"]["schema"].clone()
}

/// Checks a body against the (flat) request schema of create-deployment-status.
fn check_body(schema: &Value, body: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    let Some(obj) = body.as_object() else {
        return vec![format!("body is not an object: {body}")];
    };
    for req in schema["required"].as_array().into_iter().flatten() {
        if !obj.contains_key(req.as_str().unwrap()) {
            errors.push(format!("missing required {req}"));
        }
    }
    for (k, v) in obj {
        let Some(prop) = schema["properties"].get(k) else {
            errors.push(format!("property {k:?} is not in the schema"));
            continue;
        };
        let ok = match prop["type"].as_str() {
            Some("string") => v.is_string(),
            Some("boolean") => v.is_boolean(),
            other => panic!("schema type {other:?} not handled"),
        };
        if !ok {
            errors.push(format!("{k} = {v} is not a {}", prop["type"]));
        }
        if let Some(allowed) = prop["enum"].as_array()
            && !allowed.contains(v)
        {
            errors.push(format!("{k} = {v} is not one of {allowed:?}"));
        }
    }
    if let Some(d) = obj.get("description").and_then(Value::as_str)
        && d.chars().count() > 140
    {
        errors.push(format!("description longer than 140 characters: {d:?}"));
    }
    errors
}

async fn create_status(
    State(fake): State<FakeGitHub>,
    Path((owner, repo, id)): Path<(String, String, i64)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
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
    if header("authorization") != format!("Bearer {TOKEN}") {
        problems.push(format!("Authorization is {:?}", header("authorization")));
    }
    if !header("content-type").starts_with("application/json") {
        problems.push(format!("Content-Type is {:?}", header("content-type")));
    }
    let value: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            problems.push(format!("body is not JSON: {e}"));
            Value::Null
        }
    };
    problems.extend(check_body(&fake.schema, &value));
    let mut inner = fake.inner.lock().unwrap();
    if !problems.is_empty() {
        inner
            .violations
            .extend(problems.iter().map(|p| format!("deployment {id}: {p}")));
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            "{\"message\":\"Validation Failed\"}",
        )
            .into_response();
    }
    if let Some((code, headers)) = inner.faults.pop_front() {
        let mut r = (code, "{\"message\":\"injected fault\"}").into_response();
        for (k, v) in headers {
            r.headers_mut().insert(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        return r;
    }
    inner.statuses.push(Posted {
        repo: format!("{owner}/{repo}"),
        deployment: id,
        body: value.clone(),
    });
    (
        StatusCode::CREATED,
        axum::Json(serde_json::json!({"id": inner.statuses.len(), "state": value["state"]})),
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
        };
        let route = format!("{prefix}/repos/{{owner}}/{{repo}}/deployments/{{id}}/statuses");
        let app = Router::new()
            .route(&route, post(create_status))
            .with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        fake
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
