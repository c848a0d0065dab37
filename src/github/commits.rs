//! What the delivery metrics read from GitHub: a commit's time, for the
//! lead time of the deployments that shipped it.

use super::{CallError, GitHub};
use crate::store::Timestamp;

/// A commit's time, as GitHub answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitTime {
    /// `commit.committer.date`.
    At(Timestamp),
    /// `404`/`422`: no such commit (force-pushed away, or a sha GitHub
    /// does not know): asking again will not help.
    Missing,
}

impl GitHub {
    /// `GET /repos/{repository}/commits/{sha}`: its `commit.committer.date`.
    pub async fn commit_time(
        &self,
        repository: &str,
        sha: &str,
        installation: Option<i64>,
    ) -> Result<CommitTime, CallError> {
        // The sha came from a webhook: only a commit id goes into the URL.
        if sha.is_empty() || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(CommitTime::Missing);
        }
        let url = format!("{}/repos/{repository}/commits/{sha}", self.api_url);
        let token = self.token(installation).await?;
        let request = self.http.get(&url).bearer_auth(token.expose_str());
        let response = match self.send(request).await {
            Err(CallError::Permanent { reason })
                if reason.starts_with("404") || reason.starts_with("422") =>
            {
                return Ok(CommitTime::Missing);
            }
            other => other?,
        };
        let commit: serde_json::Value = response.json().await.map_err(|e| CallError::Retry {
            after: None,
            reason: format!("GitHub's commit is not what ferry expects: {e}"),
        })?;
        let date = commit["commit"]["committer"]["date"].as_str();
        match date.and_then(|d| d.parse::<jiff::Timestamp>().ok()) {
            Some(at) => Ok(CommitTime::At(Timestamp::from_jiff(at))),
            None => Err(CallError::Permanent {
                reason: format!(
                    "GitHub's commit {sha} has no commit.committer.date: {}",
                    super::truncate_chars(&commit["commit"].to_string(), 200)
                ),
            }),
        }
    }
}
