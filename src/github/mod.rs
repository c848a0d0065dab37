//! Talking to GitHub: deployment statuses, authenticated by a token or as a
//! GitHub App installation. Every call goes through [`GitHub::send`], which
//! sorts GitHub's answers into "done", "try again later" and "never".

pub mod app;
pub mod branches;
pub mod checks;
pub mod comments;
pub mod commits;
pub mod create;
pub mod outbox;
pub mod reach;
pub mod reconcile;

use std::time::Duration;

use reqwest::{Response, StatusCode};
use serde::Serialize;

use crate::config::{self, GitHubAuth, Secret};
use crate::error::error_chain;
use crate::store::OutboxItem;

pub const USER_AGENT: &str = concat!("ferry/", env!("CARGO_PKG_VERSION"));
pub const API_VERSION: &str = "2022-11-28";
/// GitHub's limit on a status description, in characters.
pub const DESCRIPTION_MAX: usize = 140;

/// Why a call to GitHub did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// The request never left: GitHub could not be reached (a refused
    /// connection, DNS, TLS). Worth retrying, and nothing is in doubt.
    Unreached { reason: String },
    /// Worth retrying: 5xx, 429, a rate-limit 403.
    Retry {
        after: Option<Duration>,
        reason: String,
    },
    /// GitHub will not accept this, however often we ask.
    Permanent { reason: String },
    /// The request may have reached GitHub, but no answer came back (a
    /// timeout, a connection lost midway): whether it took effect is
    /// unknown.
    Unanswered { reason: String },
}

impl std::error::Error for CallError {}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Unreached { reason }
            | CallError::Retry { reason, .. }
            | CallError::Permanent { reason }
            | CallError::Unanswered { reason } => f.write_str(reason),
        }
    }
}

enum Auth {
    Token(Secret),
    App(app::AppAuth),
}

pub struct GitHub {
    http: reqwest::Client,
    api_url: String,
    auth: Auth,
}

#[derive(Serialize, Debug, PartialEq)]
struct StatusBody<'a> {
    state: &'a str,
    description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    log_url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    environment_url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    auto_inactive: Option<bool>,
}

/// The client is built with the system's root certificates (the same store
/// `curl` uses), so a GHES behind a private CA works once that CA is added
/// there; a host without any gets one line with the fix instead of
/// rustls's "builder error: unexpected error".
fn client_error(e: &reqwest::Error) -> anyhow::Error {
    let chain = error_chain(e);
    if chain.contains("CA certificates") {
        anyhow::anyhow!(
            "no root certificates found on this system, so GitHub's TLS \
             certificate cannot be checked: install them (apt-get install \
             ca-certificates); for a private CA, add it with update-ca-certificates \
             or point SSL_CERT_FILE at a PEM bundle"
        )
    } else {
        anyhow::anyhow!("cannot build the HTTP client for GitHub: {chain}")
    }
}

impl GitHub {
    pub fn new(config: &config::GitHubSettings) -> anyhow::Result<GitHub> {
        let http = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(Duration::from_secs(10))
            // Shorter than a replica's claim on a status it sends
            // (store::postgres), so no other replica sends it meanwhile.
            .timeout(Duration::from_secs(15))
            .build()
            .map_err(|e| client_error(&e))?;
        let auth = match &config.auth {
            GitHubAuth::Token(t) => Auth::Token(t.clone()),
            GitHubAuth::App {
                app_id,
                private_key_pem,
            } => Auth::App(app::AppAuth::new(*app_id, private_key_pem)?),
        };
        Ok(GitHub {
            http,
            api_url: config.api_url.clone(),
            auth,
        })
    }

    /// Posts one deployment status.
    pub async fn post_status(&self, item: &OutboxItem) -> Result<(), CallError> {
        let s = &item.status;
        let body = StatusBody {
            state: s.state.as_str(),
            description: fit_description(&s.description),
            log_url: s.log_url.as_deref(),
            environment_url: s.environment_url.as_deref(),
            auto_inactive: s.auto_inactive,
        };
        let url = format!(
            "{}/repos/{}/deployments/{}/statuses",
            self.api_url, item.repository, item.deployment_id
        );
        // An installation token GitHub no longer accepts is dropped and
        // fetched anew once; a second 401 is GitHub's final word.
        for attempt in 0..2 {
            let token = self.token(item.installation_id).await?;
            let request = self
                .http
                .post(&url)
                .bearer_auth(token.expose_str())
                .json(&body);
            match self.send(request).await {
                Err(CallError::Permanent { reason })
                    if attempt == 0
                        && reason.starts_with("401")
                        && self.forget(item.installation_id) => {}
                other => return other.map(drop),
            }
        }
        unreachable!("the second attempt always returns")
    }

    /// Whether GitHub already has this status (same state and
    /// description) among the deployment's latest hundred: asked only of
    /// a status whose post had no recorded answer.
    pub async fn has_status(&self, item: &OutboxItem) -> Result<bool, CallError> {
        #[derive(serde::Deserialize)]
        struct Listed {
            state: String,
            #[serde(default)]
            description: Option<String>,
        }
        let url = format!(
            "{}/repos/{}/deployments/{}/statuses?per_page=100",
            self.api_url, item.repository, item.deployment_id
        );
        let token = self.token(item.installation_id).await?;
        let response = self
            .send(self.http.get(&url).bearer_auth(token.expose_str()))
            .await?;
        let listed: Vec<Listed> = response.json().await.map_err(|e| CallError::Retry {
            after: None,
            reason: format!("GitHub's list of statuses is not what ferry expects: {e}"),
        })?;
        let description = fit_description(&item.status.description);
        Ok(listed.iter().any(|s| {
            s.state == item.status.state.as_str()
                && s.description.as_deref().unwrap_or_default() == description
        }))
    }

    async fn token(&self, installation: Option<i64>) -> Result<Secret, CallError> {
        match &self.auth {
            Auth::Token(t) => Ok(t.clone()),
            Auth::App(app) => app.installation_token(self, installation).await,
        }
    }

    /// Drops a cached installation token; true if there was one to drop.
    fn forget(&self, installation: Option<i64>) -> bool {
        match (&self.auth, installation) {
            (Auth::App(app), Some(id)) => app.forget(id),
            _ => false,
        }
    }

    /// Sends a request with GitHub's headers and classifies the answer.
    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Response, CallError> {
        let response = request
            .header("Accept", "application/vnd.github+json")
            .header("X-GitHub-Api-Version", API_VERSION)
            .send()
            .await
            .map_err(|e| {
                // Refused connections never carried the request; anything
                // later (a timeout, a reset) may have.
                if e.is_connect() {
                    CallError::Unreached {
                        reason: format!("{}: {}", crate::wording::UNREACHED, error_chain(&e)),
                    }
                } else {
                    CallError::Unanswered {
                        reason: format!("{}: {}", crate::wording::UNANSWERED, error_chain(&e)),
                    }
                }
            })?;
        let status = response.status();
        // 304: a conditional request's "unchanged", asked for on purpose.
        if status.is_success() || status == StatusCode::NOT_MODIFIED {
            return Ok(response);
        }
        let after = retry_after(&response);
        let rate_limited = response
            .headers()
            .get("x-ratelimit-remaining")
            .is_some_and(|v| v.as_bytes() == b"0");
        let body = response.text().await.unwrap_or_default();
        let reason = format!("{} {}", status.as_u16(), github_message(&body));
        let retry = status.is_server_error()
            || status == StatusCode::TOO_MANY_REQUESTS
            || (status == StatusCode::FORBIDDEN
                && (rate_limited
                    || after.is_some()
                    || body.to_ascii_lowercase().contains("rate limit")));
        Err(if retry {
            CallError::Retry { after, reason }
        } else {
            CallError::Permanent { reason }
        })
    }
}

/// How long GitHub asks us to wait: `Retry-After` seconds, else the
/// rate-limit window's reset time.
fn retry_after(response: &Response) -> Option<Duration> {
    let header = |name| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    if let Some(secs) = header("retry-after") {
        return Some(Duration::from_secs(secs));
    }
    let remaining_zero = response
        .headers()
        .get("x-ratelimit-remaining")
        .is_some_and(|v| v.as_bytes() == b"0");
    let reset = header("x-ratelimit-reset").filter(|_| remaining_zero)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs();
    Some(Duration::from_secs(reset.saturating_sub(now) + 1))
}

/// GitHub's `message` from an error body, else the body itself, shortened.
fn github_message(body: &str) -> String {
    let msg = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.get("message")
                .and_then(|m| m.as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| body.trim().to_string());
    truncate_chars(&msg, 300)
}

fn truncate_chars(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// A description GitHub accepts: one line, at most 140 characters, cut on a
/// character boundary with an ellipsis.
pub fn fit_description(s: &str) -> String {
    let one_line = s.split_whitespace().collect::<Vec<_>>().join(" ");
    truncate_chars(&one_line, DESCRIPTION_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_fit_140_characters_on_char_boundaries() {
        assert_eq!(
            fit_description("Deployed f95f852 to 2 hosts in 14s"),
            "Deployed f95f852 to 2 hosts in 14s"
        );
        let long = "é".repeat(300);
        let fitted = fit_description(&long);
        assert_eq!(fitted.chars().count(), 140);
        assert!(fitted.ends_with('…'));
        assert_eq!(fit_description("a\nb\t c"), "a b c");
        let exact = "x".repeat(140);
        assert_eq!(fit_description(&exact), exact);
    }

    #[test]
    fn github_messages_are_extracted() {
        assert_eq!(
            github_message(r#"{"message":"Not Found","documentation_url":"x"}"#),
            "Not Found"
        );
        assert_eq!(github_message(" oops "), "oops");
    }
}
