//! What commands in pull request comments ask of GitHub, as GitHub
//! answers it: reactions (`POST .../issues/comments/{id}/reactions`), the
//! commenter's role (`GET .../collaborators/{login}/permission`), the pull
//! request (`GET .../pulls/{n}`, `tests/data/github/pull.json`), and issue
//! comments (`POST`/`GET .../issues/{n}/comments`, `PATCH
//! .../issues/comments/{id}`).

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::FakeGitHub;

/// A pull request the fake serves.
#[derive(Debug, Clone)]
pub struct Pull {
    pub state: String,
    pub head_sha: String,
    /// The head's repository: another one's is a fork.
    pub head_repository: String,
}

/// A comment ferry posted, as it stands now.
#[derive(Debug, Clone)]
pub struct Reply {
    pub id: i64,
    pub repo: String,
    pub number: i64,
    pub body: String,
    /// How often it was edited.
    pub edits: usize,
}

#[derive(Default)]
pub(super) struct Comments {
    pub roles: std::collections::HashMap<String, String>,
    pub pulls: std::collections::HashMap<i64, Pull>,
    /// (comment id, content) of each reaction.
    pub reactions: Vec<(i64, String)>,
    pub replies: Vec<Reply>,
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        json!({"message": "Not Found", "documentation_url": "https://docs.github.com/rest"})
            .to_string(),
    )
        .into_response()
}

/// Records what GitHub would refuse in an API request's headers.
fn check(fake: &FakeGitHub, headers: &HeaderMap, what: &str) {
    let mut inner = fake.inner.lock().unwrap();
    for (h, want) in [
        ("accept", "application/vnd.github+json"),
        ("x-github-api-version", "2022-11-28"),
    ] {
        if headers.get(h).and_then(|v| v.to_str().ok()) != Some(want) {
            inner.violations.push(format!("{what} without {h}: {want}"));
        }
    }
    if headers.get("authorization").is_none() {
        inner
            .violations
            .push(format!("{what} without Authorization"));
    }
}

pub(super) async fn react(
    State(fake): State<FakeGitHub>,
    Path((_, _, id)): Path<(String, String, i64)>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    check(&fake, &headers, "reaction");
    let content = body["content"].as_str().unwrap_or_default().to_string();
    let allowed = [
        "+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes",
    ];
    if !allowed.contains(&content.as_str()) {
        let mut inner = fake.inner.lock().unwrap();
        inner.violations.push(format!("reaction {content:?}"));
        return (StatusCode::UNPROCESSABLE_ENTITY, "{}").into_response();
    }
    let mut inner = fake.inner.lock().unwrap();
    inner.comments.reactions.push((id, content.clone()));
    let n = inner.comments.reactions.len();
    (
        StatusCode::CREATED,
        axum::Json(
            json!({"id": n, "node_id": "MDg6UmVhY3Rpb24x", "content": content,
            "user": {"login": "ferry-bot[bot]", "id": 1, "type": "Bot"},
            "created_at": "2016-05-20T20:09:31Z"}),
        ),
    )
        .into_response()
}

pub(super) async fn permission(
    State(fake): State<FakeGitHub>,
    Path((_, _, login)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    check(&fake, &headers, "permission");
    let inner = fake.inner.lock().unwrap();
    let role = inner
        .comments
        .roles
        .get(&login)
        .cloned()
        .unwrap_or_else(|| "read".into());
    // `permission` is the older, coarser word: admin, write, read, none.
    let permission = match role.as_str() {
        "admin" => "admin",
        "maintain" | "write" => "write",
        _ => "read",
    };
    axum::Json(json!({
        "permission": permission,
        "role_name": role,
        "user": {"login": login, "id": 2, "type": "User", "site_admin": false},
    }))
    .into_response()
}

pub(super) async fn pull(
    State(fake): State<FakeGitHub>,
    Path((owner, repo, number)): Path<(String, String, i64)>,
    headers: HeaderMap,
) -> Response {
    check(&fake, &headers, "pull request");
    let inner = fake.inner.lock().unwrap();
    let Some(p) = inner.comments.pulls.get(&number).cloned() else {
        return not_found();
    };
    let mut body = crate::fixture("pull.json");
    let repository = format!("{owner}/{repo}");
    body["number"] = json!(number);
    body["state"] = json!(p.state);
    body["head"]["sha"] = json!(p.head_sha);
    body["head"]["repo"]["full_name"] = json!(p.head_repository);
    body["base"]["repo"]["full_name"] = json!(repository);
    axum::Json(body).into_response()
}

pub(super) async fn post_comment(
    State(fake): State<FakeGitHub>,
    Path((owner, repo, number)): Path<(String, String, i64)>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    check(&fake, &headers, "comment");
    let Some(text) = body["body"].as_str() else {
        let mut inner = fake.inner.lock().unwrap();
        inner
            .violations
            .push(format!("comment without body: {body}"));
        return (StatusCode::UNPROCESSABLE_ENTITY, "{}").into_response();
    };
    let mut inner = fake.inner.lock().unwrap();
    let id = 7_000_000 + inner.comments.replies.len() as i64;
    inner.comments.replies.push(Reply {
        id,
        repo: format!("{owner}/{repo}"),
        number,
        body: text.to_string(),
        edits: 0,
    });
    (StatusCode::CREATED, axum::Json(comment_json(id, text))).into_response()
}

fn comment_json(id: i64, body: &str) -> Value {
    json!({
        "id": id,
        "node_id": "MDEyOklzc3VlQ29tbWVudDE=",
        "body": body,
        "user": {"login": "ferry-bot[bot]", "id": 1, "type": "Bot"},
        "created_at": "2011-04-14T16:00:49Z",
        "updated_at": "2011-04-14T16:00:49Z",
        "author_association": "NONE",
    })
}

pub(super) async fn list_comments(
    State(fake): State<FakeGitHub>,
    Path((owner, repo, number)): Path<(String, String, i64)>,
    Query(_query): Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    check(&fake, &headers, "comments list");
    let inner = fake.inner.lock().unwrap();
    let repository = format!("{owner}/{repo}");
    let listed: Vec<Value> = inner
        .comments
        .replies
        .iter()
        .filter(|r| r.repo == repository && r.number == number)
        .map(|r| comment_json(r.id, &r.body))
        .collect();
    axum::Json(listed).into_response()
}

pub(super) async fn edit_comment(
    State(fake): State<FakeGitHub>,
    Path((_, _, id)): Path<(String, String, i64)>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    check(&fake, &headers, "comment edit");
    let mut inner = fake.inner.lock().unwrap();
    let Some(r) = inner.comments.replies.iter_mut().find(|r| r.id == id) else {
        return not_found();
    };
    r.body = body["body"].as_str().unwrap_or_default().to_string();
    r.edits += 1;
    let text = r.body.clone();
    axum::Json(comment_json(id, &text)).into_response()
}

impl FakeGitHub {
    /// `login`'s role on every repository (`role_name`); default `read`.
    pub fn set_role(&self, login: &str, role: &str) {
        let mut inner = self.inner.lock().unwrap();
        inner.comments.roles.insert(login.into(), role.into());
    }

    /// Pull request `number` of any repository.
    pub fn set_pull(&self, number: i64, pull: Pull) {
        self.inner
            .lock()
            .unwrap()
            .comments
            .pulls
            .insert(number, pull);
    }

    /// The reactions so far: (comment id, content).
    pub fn reactions(&self) -> Vec<(i64, String)> {
        self.inner.lock().unwrap().comments.reactions.clone()
    }

    /// The comments ferry posted, as they stand now.
    pub fn replies(&self) -> Vec<Reply> {
        self.inner.lock().unwrap().comments.replies.clone()
    }
}
