//! `ferry rollback REPO:ENV`: asks GitHub, through the running ferry, for a deployment of the environment's last good version.

use anyhow::bail;

use super::output::clock;
use super::request::{after_created, ask};
use super::steering::{EnvName, open_store, operator, owned};
use super::{ConfigArg, Failed};
use crate::config::Steering;
use crate::format::short_sha;
use crate::store::{DeployRequest, Deployment, DeploymentId, SharedStore, last_good};

/// Ask GitHub (through the running ferry) for a new deployment of the
/// environment's last good version.
#[derive(clap::Args)]
pub struct Rollback {
    /// The environment, as owner/repo:environment.
    #[arg(value_name = "REPO:ENV")]
    env: EnvName,
    /// The deployment whose version to put back, instead of the last good one.
    #[arg(long, value_name = "ID")]
    to: Option<i64>,
    /// Then print its log until it ends; exit 0 only for a success.
    #[arg(long)]
    follow: bool,
    #[command(flatten)]
    config: ConfigArg,
}

impl Rollback {
    pub async fn run(self) -> anyhow::Result<()> {
        rollback(
            &self.config.load_for_store()?,
            &self.env,
            self.to,
            self.follow,
        )
        .await
    }
}

/// The environment's deployments read to find the last good version.
const HISTORY: i64 = 1000;

pub async fn rollback(
    c: &Steering,
    env: &EnvName,
    to: Option<i64>,
    follow: bool,
) -> anyhow::Result<()> {
    let env = &owned(c, env)?;
    let store = open_store(c).await?.store;
    let history = store
        .history(&env.repository, &env.environment, HISTORY)
        .await?;
    let good = match to {
        Some(id) => named(&store, env, DeploymentId(id)).await?,
        None => match (history.first(), last_good(&history)) {
            (_, Some(good)) => good.clone(),
            (None, None) => {
                eprintln!("error: {env} has no deployments: nothing to roll back to");
                return Err(Failed.into());
            }
            (Some(newest), None) => {
                eprintln!(
                    "error: nothing to roll back to: no deployment of {env} succeeded with a sha other than {}, its newest ({})",
                    short_sha(&newest.sha),
                    newest.id
                );
                return Err(Failed.into());
            }
        },
    };
    let actor = operator();
    let request = DeployRequest {
        description: crate::wording::rollback_by(&good.sha, good.id, &actor),
        actor,
        repository: env.repository.clone(),
        environment: env.environment.clone(),
        git_ref: good.sha.clone(),
        task: good.task.clone(),
        payload: good.payload.clone(),
        skip_contexts: true,
        production: Some(good.production),
        transient: Some(good.transient),
        rollback_of: Some(good.id),
    };
    eprintln!(
        "asking GitHub for a rollback of {env} to {} (deployment {}, {}{})",
        short_sha(&good.sha),
        good.id,
        good.git_ref,
        good.finished_at
            .map_or(String::new(), |t| format!(", deployed {}", clock(t)))
    );
    let id = ask(&store, &request).await?;
    // `ferry show` of the deployment rolled back from says who did it.
    if let Some(newest) = history.first().filter(|n| n.id != good.id) {
        super::steering::audit(
            &store,
            "rollback",
            (&env.repository, &env.environment),
            Some(newest.id),
            format!(
                "rolled {env} back from deployment {} to {} (deployment {}): deployment {id}",
                newest.id,
                short_sha(&good.sha),
                good.id
            ),
        )
        .await;
    }
    after_created(c, &store, id, follow).await
}

/// The deployment `--to ID` names, if it is one of the environment's.
async fn named(store: &SharedStore, env: &EnvName, id: DeploymentId) -> anyhow::Result<Deployment> {
    match store.get(id).await? {
        Some(d)
            if d.repository == env.repository
                && d.environment == env.environment
                && !d.id.is_teardown()
                && crate::store::LockTask::of(&d.task).is_none() =>
        {
            Ok(d)
        }
        Some(d) => bail!(
            "deployment {id} is not one of {env}'s (it is {} to {}, task {})",
            d.repository,
            d.environment,
            d.task
        ),
        None => bail!("{}", crate::wording::no_deployment(id, "the store")),
    }
}
