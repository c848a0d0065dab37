//! What started a deployment (`ferry show`, `ferry deployments --json`):
//! read from where each way of starting one records it — a request from
//! the command line, an auto-deploy candidate — so nothing on the
//! deployment's own row has to be kept in step. Each backend implements
//! it in its `origins.rs`.

use std::collections::HashMap;

use async_trait::async_trait;

use super::{CandidateSource, DeploymentId, Result};

/// What started a deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Created on GitHub by someone or something else; its webhook (or
    /// the reconciler) brought it.
    Webhook,
    /// `ferry deploy` (or `ferry rollback`, with the deployment it put
    /// back) by `actor`.
    Command {
        actor: String,
        rollback_of: Option<DeploymentId>,
    },
    /// `[target.auto_deploy]`: a branch's head, or a promotion.
    Auto(CandidateSource),
    /// A command in a comment on pull request `number`, by `login`.
    PullRequest { number: i64, login: String },
}

impl Origin {
    /// The word `--json` and scripts use: `webhook`, `deploy`, `rollback`,
    /// `auto-deploy`, `promotion`, `pull-request`.
    pub fn kind(&self) -> &'static str {
        match self {
            Origin::Webhook => "webhook",
            Origin::Command {
                rollback_of: None, ..
            } => "deploy",
            Origin::Command { .. } => "rollback",
            Origin::Auto(CandidateSource::Branch(_)) => "auto-deploy",
            Origin::Auto(CandidateSource::Promotion { .. }) => "promotion",
            Origin::PullRequest { .. } => "pull-request",
        }
    }

    /// In words: "ferry deploy by alice", "auto-deploy of main",
    /// "promotion from staging (deployment 41)".
    pub fn describe(&self) -> String {
        match self {
            Origin::Webhook => "a deployment created on GitHub (its webhook)".into(),
            Origin::Command {
                actor,
                rollback_of: None,
            } => format!("ferry deploy by {actor}"),
            Origin::Command {
                actor,
                rollback_of: Some(of),
            } => format!("ferry rollback by {actor} (to deployment {of})"),
            Origin::Auto(CandidateSource::Branch(b)) => format!("auto-deploy of {b}"),
            Origin::Auto(CandidateSource::Promotion {
                environment,
                deployment,
            }) => format!("promotion from {environment} (deployment {deployment})"),
            Origin::PullRequest { number, login } => {
                format!("a comment by @{login} on pull request #{number}")
            }
        }
    }
}

#[async_trait]
pub trait Origins: Send + Sync {
    /// What started each of `ids` that ferry started itself (a request or
    /// a candidate); the others came by webhook.
    async fn origins(&self, ids: &[DeploymentId]) -> Result<HashMap<DeploymentId, Origin>>;

    /// What started one deployment.
    async fn origin(&self, id: DeploymentId) -> Result<Origin> {
        Ok(self
            .origins(&[id])
            .await?
            .remove(&id)
            .unwrap_or(Origin::Webhook))
    }
}
