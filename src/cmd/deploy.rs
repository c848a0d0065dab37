//! `ferry deploy REPO:ENV REF`: asks GitHub, through the running ferry, for a deployment of REF.

use anyhow::bail;

use super::ConfigArg;
use super::request::{after_created, ask};
use super::steering::{EnvName, open_store, operator};
use crate::config::Steering;
use crate::store::DeployRequest;

/// Ask GitHub (through the running ferry) for a deployment of REF.
#[derive(clap::Args)]
pub struct Deploy {
    /// The environment, as owner/repo:environment.
    #[arg(value_name = "REPO:ENV")]
    env: EnvName,
    /// A branch, tag or sha.
    #[arg(value_name = "REF")]
    git_ref: String,
    /// The deployment's task.
    #[arg(long, value_name = "TASK", default_value = "deploy")]
    task: String,
    /// The deployment's payload, a JSON object [default: {}].
    #[arg(long, value_name = "JSON")]
    payload: Option<String>,
    /// Skip GitHub's required status contexts (required_contexts: []).
    #[arg(long)]
    force: bool,
    /// Then print its log until it ends; exit 0 only for a success.
    #[arg(long)]
    follow: bool,
    #[command(flatten)]
    config: ConfigArg,
}

impl Deploy {
    pub async fn run(self) -> anyhow::Result<()> {
        let c = self.config.load_for_store()?;
        deploy(&c, self).await
    }
}

async fn deploy(c: &Steering, d: Deploy) -> anyhow::Result<()> {
    if !c.owns(&d.env.repository, &d.env.environment, &d.task) {
        bail!(
            "no target runs task {} in {}; the targets are: {}",
            d.task,
            d.env,
            c.names()
        );
    }
    if d.git_ref.trim().is_empty() {
        bail!("REF is empty: name a branch, tag or sha");
    }
    let payload = match &d.payload {
        None => "{}".to_string(),
        Some(text) => match serde_json::from_str::<serde_json::Value>(text) {
            Ok(v) if v.is_object() => v.to_string(),
            Ok(_) => bail!("--payload must be a JSON object, such as '{{\"migrate\": true}}'"),
            Err(e) => bail!("--payload is not JSON: {e}"),
        },
    };
    let actor = operator();
    let request = DeployRequest {
        description: crate::wording::deploy_by(&actor),
        actor,
        repository: d.env.repository.clone(),
        environment: d.env.environment.clone(),
        git_ref: d.git_ref.clone(),
        task: d.task.clone(),
        payload,
        skip_contexts: d.force,
        production: None,
        transient: None,
        rollback_of: None,
    };
    let store = open_store(c).await?.store;
    eprintln!(
        "asking GitHub for a deployment of {} to {}",
        d.git_ref, d.env
    );
    let id = ask(&store, &request).await?;
    after_created(c, &store, id, d.follow).await
}
