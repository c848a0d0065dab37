//! The fake GitHub's App side: installation tokens for a JWT it checks
//! against the App's public key, and a repository's installation.

use std::time::Instant;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::FakeGitHub;

/// `GET /repos/{owner}/{repo}/installation`, for an App.
pub(super) async fn repo_installation(
    State(fake): State<FakeGitHub>,
    Path((owner, repo)): Path<(String, String)>,
) -> Response {
    let inner = fake.inner.lock().unwrap();
    let repository = format!("{owner}/{repo}");
    let found = inner.app.as_ref().and_then(|a| {
        a.installations
            .iter()
            .find(|(r, _)| *r == repository)
            .map(|(_, id)| *id)
    });
    match found {
        Some(id) => axum::Json(serde_json::json!({ "id": id })).into_response(),
        None => (StatusCode::NOT_FOUND, "{\"message\":\"Not Found\"}").into_response(),
    }
}

#[derive(serde::Deserialize)]
struct Claims {
    iss: String,
    iat: u64,
    exp: u64,
}

pub(super) async fn access_token(
    State(fake): State<FakeGitHub>,
    Path(installation): Path<i64>,
    headers: HeaderMap,
) -> Response {
    let mut inner = fake.inner.lock().unwrap();
    let Some(app) = &inner.app else {
        return (StatusCode::NOT_FOUND, "{}").into_response();
    };
    let jwt = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(&app.public_key_pem).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_issuer(&[app.id.to_string()]);
    validation.leeway = 0;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let problem = match jsonwebtoken::decode::<Claims>(jwt, &key, &validation) {
        Err(e) => Some(format!("JWT rejected: {e}")),
        Ok(t) if t.claims.iss != app.id.to_string() => Some("wrong iss".to_string()),
        Ok(t) if t.claims.iat > now => Some(format!("iat {} is in the future", t.claims.iat)),
        Ok(t) if t.claims.exp > now + 600 => Some(format!(
            "exp {} is more than 10 minutes ahead",
            t.claims.exp
        )),
        Ok(_) => None,
    };
    if let Some(p) = problem {
        inner.violations.push(p);
        return (
            StatusCode::UNAUTHORIZED,
            "{\"message\":\"A JSON web token could not be decoded\"}",
        )
            .into_response();
    }
    let ttl = app.token_ttl;
    let n = inner.tokens_issued.len();
    let token = format!("ghs_inst{installation}_{n}");
    inner
        .tokens
        .insert(token.clone(), (installation, Instant::now() + ttl));
    inner.tokens_issued.push(installation);
    let expires = std::time::SystemTime::now() + ttl;
    (
        StatusCode::CREATED,
        axum::Json(serde_json::json!({
            "token": token,
            "expires_at": humantime::format_rfc3339_seconds(expires).to_string(),
        })),
    )
        .into_response()
}
