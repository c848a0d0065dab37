//! What auto-deploy reads from GitHub: a branch's head (the reconciler's
//! look for pushes that never came), and the deployment GitHub may have
//! created for a candidate whose answer was lost.

use super::{CallError, GitHub};

/// A branch's head, as GitHub answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BranchHead {
    /// `304`: unchanged since the read with this ETag.
    Unchanged,
    Head {
        sha: String,
        etag: Option<String>,
    },
    /// `404`: no such branch (deleted, or not visible to the token).
    Missing,
}

/// A branch name as one path segment of a URL: slashes kept (GitHub
/// takes `feature/x` as it is), anything else unusual escaped.
fn path_of(branch: &str) -> String {
    let mut out = String::new();
    for b in branch.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl GitHub {
    /// `GET /repos/{repository}/branches/{branch}`, conditional on `etag`.
    pub async fn branch_head(
        &self,
        repository: &str,
        branch: &str,
        installation: Option<i64>,
        etag: Option<&str>,
    ) -> Result<BranchHead, CallError> {
        let url = format!(
            "{}/repos/{repository}/branches/{}",
            self.api_url,
            path_of(branch)
        );
        let token = self.token(installation).await?;
        let mut request = self.http.get(&url).bearer_auth(token.expose_str());
        if let Some(etag) = etag {
            request = request.header("If-None-Match", etag);
        }
        let response = match self.send(request).await {
            Err(CallError::Permanent { reason }) if reason.starts_with("404") => {
                return Ok(BranchHead::Missing);
            }
            other => other?,
        };
        if response.status() == reqwest::StatusCode::NOT_MODIFIED {
            return Ok(BranchHead::Unchanged);
        }
        let etag = response
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let branch: serde_json::Value = response.json().await.map_err(|e| CallError::Retry {
            after: None,
            reason: format!("GitHub's branch is not what ferry expects: {e}"),
        })?;
        match branch["commit"]["sha"].as_str() {
            Some(sha) => Ok(BranchHead::Head {
                sha: sha.to_string(),
                etag,
            }),
            None => Err(CallError::Retry {
                after: None,
                reason: "GitHub's branch has no commit.sha".into(),
            }),
        }
    }

    /// The newest deployment of `sha` to `environment`
    /// (`GET /repos/{repository}/deployments?sha=…&environment=…`), as
    /// GitHub's deployment object.
    pub async fn find_deployment(
        &self,
        repository: &str,
        sha: &str,
        environment: &str,
        installation: Option<i64>,
    ) -> Result<Option<serde_json::Value>, CallError> {
        let query: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("sha", sha)
            .append_pair("environment", environment)
            .append_pair("per_page", "100")
            .finish();
        let url = format!("{}/repos/{repository}/deployments?{query}", self.api_url);
        let token = self.token(installation).await?;
        let request = self.http.get(&url).bearer_auth(token.expose_str());
        let response = self.send(request).await?;
        let listed: Vec<serde_json::Value> =
            response.json().await.map_err(|e| CallError::Retry {
                after: None,
                reason: format!("GitHub's list of deployments is not what ferry expects: {e}"),
            })?;
        // Filtered here too: a GitHub (or a proxy) that ignores the query
        // must not make another deployment look like this one.
        Ok(listed.into_iter().find(|d| {
            d["sha"].as_str() == Some(sha) && d["environment"].as_str() == Some(environment)
        }))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn branch_names_keep_their_slashes() {
        assert_eq!(super::path_of("release/1.2"), "release/1.2");
        assert_eq!(super::path_of("a b#c"), "a%20b%23c");
    }
}
