//! What commands in pull request comments ask of GitHub: a reaction, the
//! commenter's role, the pull request, and ferry's reply (posted, found
//! again after a lost answer, edited).

use std::time::Duration;

use serde_json::json;

use super::{CallError, GitHub};
use crate::config::Role;
use crate::store::Timestamp;

/// Every call here waits this long for GitHub at most.
const TIMEOUT: Duration = Duration::from_secs(10);

/// What a command needs of a pull request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    /// `open` or `closed`.
    pub state: String,
    pub head_sha: String,
    /// The repositories of its head and base: a fork's differ.
    pub head_repository: Option<String>,
    pub base_repository: Option<String>,
}

impl PullRequest {
    pub fn is_fork(&self) -> bool {
        self.head_repository != self.base_repository
    }
}

fn not_what_ferry_expects(what: &str, e: impl std::fmt::Display) -> CallError {
    CallError::Retry {
        after: None,
        reason: format!("GitHub's {what} is not what ferry expects: {e}"),
    }
}

impl GitHub {
    async fn json_call(
        &self,
        request: reqwest::RequestBuilder,
        installation: Option<i64>,
        what: &str,
    ) -> Result<serde_json::Value, CallError> {
        let token = self.token(installation).await?;
        let response = self
            .send(request.timeout(TIMEOUT).bearer_auth(token.expose_str()))
            .await?;
        response
            .json()
            .await
            .map_err(|e| not_what_ferry_expects(what, e))
    }

    /// `POST /repos/{r}/issues/comments/{id}/reactions` with `eyes`: seen.
    pub async fn react_eyes(
        &self,
        repository: &str,
        comment_id: i64,
        installation: Option<i64>,
    ) -> Result<(), CallError> {
        let url = format!(
            "{}/repos/{repository}/issues/comments/{comment_id}/reactions",
            self.api_url
        );
        let request = self.http.post(&url).json(&json!({"content": "eyes"}));
        self.json_call(request, installation, "reaction")
            .await
            .map(drop)
    }

    /// The commenter's role on the repository
    /// (`GET /repos/{r}/collaborators/{login}/permission`, its `role_name`);
    /// None for someone GitHub knows no role of.
    pub async fn role_of(
        &self,
        repository: &str,
        login: &str,
        installation: Option<i64>,
    ) -> Result<Option<Role>, CallError> {
        let url = format!(
            "{}/repos/{repository}/collaborators/{login}/permission",
            self.api_url
        );
        let answer = match self
            .json_call(self.http.get(&url), installation, "permission")
            .await
        {
            Err(CallError::Permanent { reason }) if reason.starts_with("404") => return Ok(None),
            other => other?,
        };
        Ok(answer["role_name"].as_str().and_then(Role::parse))
    }

    /// `GET /repos/{r}/pulls/{number}`.
    pub async fn pull_request(
        &self,
        repository: &str,
        number: i64,
        installation: Option<i64>,
    ) -> Result<PullRequest, CallError> {
        let url = format!("{}/repos/{repository}/pulls/{number}", self.api_url);
        let pr = self
            .json_call(self.http.get(&url), installation, "pull request")
            .await?;
        let text = |v: &serde_json::Value| v.as_str().map(str::to_string);
        Ok(PullRequest {
            state: text(&pr["state"]).unwrap_or_default(),
            head_sha: text(&pr["head"]["sha"])
                .ok_or_else(|| not_what_ferry_expects("pull request", "no head.sha"))?,
            head_repository: text(&pr["head"]["repo"]["full_name"]),
            base_repository: text(&pr["base"]["repo"]["full_name"]),
        })
    }

    /// `POST /repos/{r}/issues/{number}/comments`; the new comment's id.
    pub async fn post_comment(
        &self,
        repository: &str,
        number: i64,
        body: &str,
        installation: Option<i64>,
    ) -> Result<i64, CallError> {
        let url = format!(
            "{}/repos/{repository}/issues/{number}/comments",
            self.api_url
        );
        let request = self.http.post(&url).json(&json!({"body": body}));
        let made = self.json_call(request, installation, "comment").await?;
        made["id"]
            .as_i64()
            .ok_or_else(|| not_what_ferry_expects("comment", "no id"))
    }

    /// The id of a comment on pull request `number` that holds `marker`,
    /// among those since `since_ms` (`GET /repos/{r}/issues/{number}/comments`).
    pub async fn find_comment(
        &self,
        repository: &str,
        number: i64,
        marker: &str,
        since: Timestamp,
        installation: Option<i64>,
    ) -> Result<Option<i64>, CallError> {
        let since = (since - std::time::Duration::from_secs(60)).rfc3339();
        let query: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("since", &since)
            .append_pair("per_page", "100")
            .finish();
        let url = format!(
            "{}/repos/{repository}/issues/{number}/comments?{query}",
            self.api_url
        );
        let listed = self
            .json_call(self.http.get(&url), installation, "list of comments")
            .await?;
        Ok(listed.as_array().and_then(|all| {
            all.iter()
                .find(|c| c["body"].as_str().is_some_and(|b| b.contains(marker)))
                .and_then(|c| c["id"].as_i64())
        }))
    }

    /// `PATCH /repos/{r}/issues/comments/{id}`.
    pub async fn edit_comment(
        &self,
        repository: &str,
        comment_id: i64,
        body: &str,
        installation: Option<i64>,
    ) -> Result<(), CallError> {
        let url = format!(
            "{}/repos/{repository}/issues/comments/{comment_id}",
            self.api_url
        );
        let request = self.http.patch(&url).json(&json!({"body": body}));
        self.json_call(request, installation, "comment")
            .await
            .map(drop)
    }
}

impl GitHub {
    /// Answers a deployment protection rule at its callback URL (checked
    /// by intake to be under `api_url`): `approved`, or with no state a
    /// status report whose comment says why the run waits.
    pub async fn review_protection_rule(
        &self,
        callback_url: &str,
        environment: &str,
        approve: bool,
        comment: &str,
        installation: Option<i64>,
    ) -> Result<(), CallError> {
        let mut body = json!({"environment_name": environment, "comment": comment});
        if approve {
            body["state"] = json!("approved");
        }
        let token = self.token(installation).await?;
        let request = self
            .http
            .post(callback_url)
            .timeout(TIMEOUT)
            .bearer_auth(token.expose_str())
            .json(&body);
        self.send(request).await.map(drop)
    }
}
