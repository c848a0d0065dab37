//! The parts of GitHub's webhook payloads ferry reads.

use serde::Deserialize;
use serde::de::{DeserializeOwned, IgnoredAny};

use crate::store::{DeploymentId, NewDeployment};

/// The JSON document of a delivery: the body itself, or the `payload` field
/// of a form-encoded body. An error names the field at fault
/// (`deployment.id: invalid type: ...`) where there is one.
pub fn decode<T: DeserializeOwned>(content_type: Option<&str>, body: &[u8]) -> Result<T, String> {
    let form = content_type.is_some_and(|ct| {
        ct.trim_start()
            .to_ascii_lowercase()
            .starts_with("application/x-www-form-urlencoded")
    });
    if form {
        let payload = form_urlencoded::parse(body)
            .find(|(k, _)| k == "payload")
            .map(|(_, v)| v.into_owned())
            .ok_or("form-encoded body without a payload field")?;
        from_json(payload.as_bytes()).map_err(|e| format!("payload field: {e}"))
    } else {
        from_json(body).map_err(|e| format!("body: {e}"))
    }
}

/// `serde_json` with the path to the field at fault.
fn from_json<T: DeserializeOwned>(json: &[u8]) -> Result<T, String> {
    let mut de = serde_json::Deserializer::from_slice(json);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        // The position is noise once the field is named; where the text is
        // no JSON at all there is no field to name.
        if inner.classify() != serde_json::error::Category::Data {
            return format!("not JSON: {inner}");
        }
        let text = inner.to_string();
        let what = match text.rfind(" at line ") {
            Some(at) => text[..at].to_string(),
            None => text,
        };
        if path == "." || path == "?" || path.is_empty() {
            what
        } else {
            format!("{path}: {what}")
        }
    })?;
    de.end().map_err(|e| format!("not JSON: {e}"))?;
    Ok(value)
}

/// Checks that a body is JSON without keeping any of it.
pub fn check_json(content_type: Option<&str>, body: &[u8]) -> Result<(), String> {
    decode::<IgnoredAny>(content_type, body).map(drop)
}

#[derive(Deserialize)]
pub struct DeploymentEvent {
    pub action: Option<String>,
    pub deployment: RawDeployment,
    pub repository: Repository,
    pub installation: Option<Installation>,
}

#[derive(Deserialize)]
pub struct RawDeployment {
    pub id: i64,
    pub sha: String,
    #[serde(rename = "ref")]
    pub git_ref: String,
    #[serde(default = "default_task")]
    pub task: String,
    #[serde(default)]
    pub payload: serde_json::Value,
    pub environment: String,
    pub creator: Option<User>,
    pub production_environment: Option<bool>,
    pub transient_environment: Option<bool>,
    /// Free text; a `deploy:lock` gives its reason here.
    pub description: Option<String>,
    /// RFC 3339, as GitHub writes it; the reconciler reads it.
    #[serde(default)]
    pub created_at: Option<String>,
}

/// A `check_run`, `check_suite` or `status` event: which sha of which
/// repository it is about (`check_run.head_sha`, `check_suite.head_sha`,
/// or the status's `sha`).
#[derive(Deserialize)]
pub struct ChecksEvent {
    pub repository: Repository,
    #[serde(default)]
    pub check_run: Option<HeadSha>,
    #[serde(default)]
    pub check_suite: Option<HeadSha>,
    #[serde(default)]
    pub sha: Option<String>,
}

#[derive(Deserialize)]
pub struct HeadSha {
    pub head_sha: String,
}

impl ChecksEvent {
    pub fn sha(&self) -> Option<&str> {
        self.check_run
            .as_ref()
            .or(self.check_suite.as_ref())
            .map(|h| h.head_sha.as_str())
            .or(self.sha.as_deref())
    }
}

/// A `push` event: a branch's new head, for `[target.auto_deploy] branch`.
#[derive(Deserialize)]
pub struct PushEvent {
    /// `refs/heads/main`, or `refs/tags/v1` for a tag.
    #[serde(rename = "ref")]
    pub git_ref: String,
    /// The new head; all zeros when the push deleted the ref.
    pub after: String,
    #[serde(default)]
    pub deleted: bool,
    pub repository: Repository,
    pub installation: Option<Installation>,
}

impl PushEvent {
    /// The branch pushed to, unless the push deleted it or is a tag's.
    pub fn branch(&self) -> Option<&str> {
        let branch = self.git_ref.strip_prefix("refs/heads/")?;
        let gone = self.deleted || self.after.bytes().all(|b| b == b'0');
        (!gone).then_some(branch)
    }
}

/// An `issue_comment` event: a command in a pull request's comment.
#[derive(Deserialize)]
pub struct IssueCommentEvent {
    pub action: String,
    pub issue: Issue,
    pub comment: Comment,
    pub repository: Repository,
    pub installation: Option<Installation>,
}

#[derive(Deserialize)]
pub struct Issue {
    pub number: i64,
    /// Present on a pull request's comments, absent on an issue's.
    #[serde(default)]
    pub pull_request: Option<IgnoredAny>,
}

#[derive(Deserialize)]
pub struct Comment {
    pub id: i64,
    #[serde(default)]
    pub body: Option<String>,
    pub user: CommentUser,
}

#[derive(Deserialize)]
pub struct CommentUser {
    pub login: String,
    /// `User` or `Bot`.
    #[serde(rename = "type", default)]
    pub kind: String,
}

/// A `deployment_protection_rule` event: a GitHub Actions run waits for
/// ferry's answer before it deploys to `environment`.
#[derive(Deserialize)]
pub struct ProtectionRuleEvent {
    pub action: String,
    pub environment: Option<String>,
    pub deployment_callback_url: Option<String>,
    pub repository: Repository,
    pub installation: Option<Installation>,
}

/// A `pull_request` event: a closed one tears its review apps down.
#[derive(Deserialize)]
pub struct PullRequestEvent {
    pub action: String,
    pub number: i64,
    pub pull_request: PullRequest,
    pub repository: Repository,
}

#[derive(Deserialize)]
pub struct PullRequest {
    pub head: Head,
}

#[derive(Deserialize)]
pub struct Head {
    #[serde(rename = "ref")]
    pub git_ref: String,
    pub sha: String,
}

fn default_task() -> String {
    "deploy".into()
}

#[derive(Deserialize)]
pub struct Repository {
    pub full_name: String,
}

#[derive(Deserialize)]
pub struct Installation {
    pub id: i64,
}

#[derive(Deserialize)]
pub struct User {
    pub login: String,
}

impl DeploymentEvent {
    /// Old GitHub Enterprise servers send deployments without an action.
    pub fn is_created(&self) -> bool {
        self.action.as_deref().is_none_or(|a| a == "created")
    }

    pub fn description(&self) -> &str {
        self.deployment.description.as_deref().unwrap_or_default()
    }

    pub fn into_new(self) -> NewDeployment {
        self.deployment
            .into_new(self.repository.full_name, self.installation.map(|i| i.id))
    }
}

impl RawDeployment {
    pub fn description(&self) -> &str {
        self.description.as_deref().unwrap_or_default()
    }

    /// The deployment as ferry stores it, of `repository` (GitHub's list of
    /// a repository's deployments does not repeat it in each).
    pub fn into_new(self, repository: String, installation_id: Option<i64>) -> NewDeployment {
        let d = self;
        NewDeployment {
            id: DeploymentId(d.id),
            production: d
                .production_environment
                .unwrap_or(d.environment == "production"),
            transient: d.transient_environment.unwrap_or(false),
            repository,
            environment: d.environment,
            task: d.task,
            git_ref: d.git_ref,
            sha: d.sha,
            payload: d.payload.to_string(),
            creator: d.creator.map(|u| u.login).unwrap_or_default(),
            installation_id,
            gated: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/tests/data/github/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn reads_octokit_push_examples() {
        let branch: PushEvent =
            decode(None, &fixture("push/with-new-branch.payload.json")).unwrap();
        assert_eq!(branch.branch(), Some("master"));
        assert_eq!(branch.after, "6113728f27ae82c7b1a177c8d03f9e96e0adf246");
        assert_eq!(branch.repository.full_name, "Codertocat/Hello-World");
        assert_eq!(branch.installation.map(|i| i.id), Some(1));
        // A tag's deletion: no branch's head.
        let tag: PushEvent = decode(None, &fixture("push/payload.json")).unwrap();
        assert!(tag.deleted);
        assert_eq!(tag.branch(), None);
        let deleted = PushEvent {
            git_ref: "refs/heads/main".into(),
            after: "0".repeat(40),
            deleted: false,
            repository: Repository {
                full_name: "o/r".into(),
            },
            installation: None,
        };
        assert_eq!(deleted.branch(), None);
    }

    #[test]
    fn reads_octokit_deployment_examples() {
        let e: DeploymentEvent = decode(None, &fixture("deployment/payload.json")).unwrap();
        assert!(e.is_created());
        let d = e.into_new();
        assert_eq!(d.id, DeploymentId(145988746));
        assert_eq!(d.repository, "Codertocat/Hello-World");
        assert_eq!(d.environment, "production");
        assert_eq!(d.task, "deploy");
        assert_eq!(d.git_ref, "master");
        assert_eq!(d.sha, "f95f852bd8fca8fcc58a9a2d6c842781e32a215e");
        assert_eq!(d.payload, "{}");
        assert_eq!(d.creator, "Codertocat");
        assert!(d.production);
        assert!(!d.transient);
        assert_eq!(d.installation_id, None);

        let e: DeploymentEvent =
            decode(None, &fixture("deployment/with-installation.payload.json")).unwrap();
        assert!(e.into_new().installation_id.is_some());
        let _: DeploymentEvent =
            decode(None, &fixture("deployment/gh-pages.payload.json")).unwrap();
    }

    #[test]
    fn reads_octokit_pull_request_examples() {
        for name in ["closed", "closed.with-organization"] {
            let e: PullRequestEvent =
                decode(None, &fixture(&format!("pull_request/{name}.payload.json"))).unwrap();
            assert_eq!(e.action, "closed");
            assert_eq!(e.number, 2);
            assert_eq!(e.pull_request.head.git_ref, "changes");
            assert_eq!(
                e.pull_request.head.sha,
                "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
            );
            assert!(e.repository.full_name.ends_with("/Hello-World"));
        }
    }

    #[test]
    fn reads_form_encoded_deliveries() {
        let json = fixture("deployment/payload.json");
        let body: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("payload", std::str::from_utf8(&json).unwrap())
            .finish();
        let e: DeploymentEvent =
            decode(Some("application/x-www-form-urlencoded"), body.as_bytes()).unwrap();
        assert_eq!(e.into_new().id, DeploymentId(145988746));
        assert!(check_json(Some("application/x-www-form-urlencoded"), b"other=1").is_err());
        assert!(check_json(Some("application/json"), b"not json").is_err());
        assert!(check_json(None, &fixture("ping/payload.json")).is_ok());
    }

    #[test]
    fn a_refusal_names_the_field_at_fault() {
        let mut v: serde_json::Value =
            serde_json::from_slice(&fixture("deployment/payload.json")).unwrap();
        v["deployment"]["id"] = "seven".into();
        let err = decode::<DeploymentEvent>(None, &serde_json::to_vec(&v).unwrap())
            .err()
            .unwrap();
        assert!(
            err.starts_with("body: deployment.id: invalid type: string"),
            "{err}"
        );
        assert!(!err.contains("column"), "{err}");
        v["deployment"].as_object_mut().unwrap().remove("id");
        let err = decode::<DeploymentEvent>(None, &serde_json::to_vec(&v).unwrap())
            .err()
            .unwrap();
        assert!(err.contains("deployment: missing field `id`"), "{err}");
        let err = decode::<DeploymentEvent>(None, b"{oops").err().unwrap();
        assert!(err.starts_with("body: not JSON"), "{err}");
    }
}
