//! `ferry teardown REPO:ENV`: tears an environment down now, in its turn.

use super::output::clock;
use super::steering::{EnvName, audit, open_store, operator, owned};
use super::{ConfigArg, Failed};
use crate::config::Steering;
use crate::store::{State, TeardownCause, TeardownQueued};

/// Tear an environment down now, in its turn: its teardown steps, then
/// `inactive` on GitHub for its deployments.
#[derive(clap::Args)]
pub struct Teardown {
    /// The environment, as owner/repo:environment.
    #[arg(value_name = "REPO:ENV")]
    env: EnvName,
    /// Also when its latest deployment is not transient (production):
    /// GitHub then shows the environment as destroyed.
    #[arg(long)]
    yes: bool,
    #[command(flatten)]
    config: ConfigArg,
}

impl Teardown {
    pub async fn run(self) -> anyhow::Result<()> {
        teardown(&self.config.load_for_store()?, &self.env, self.yes).await
    }
}

pub async fn teardown(c: &Steering, env: &EnvName, yes: bool) -> anyhow::Result<()> {
    let env = &owned(c, env)?;
    let store = open_store(c).await?.store;
    // A review app is torn down on request; anything else (production)
    // only when the operator says so twice: GitHub then shows it destroyed.
    let latest = store.latest_deployments(&env.repository).await?;
    if let Some(d) = latest.iter().find(|d| d.environment == env.environment)
        && !d.transient
        && !yes
    {
        eprintln!(
            "error: {}",
            crate::wording::teardown_needs_yes(&env.to_string(), d.id)
        );
        return Err(Failed.into());
    }
    let cause = TeardownCause::Operator(operator());
    match crate::admission::teardown::queue(&store, &env.repository, &env.environment, &cause)
        .await?
    {
        TeardownQueued::Queued {
            teardown,
            superseded,
        } => {
            audit(
                &store,
                "teardown",
                (&env.repository, &env.environment),
                Some(teardown.id),
                format!("queued teardown {} of {env}", teardown.id),
            )
            .await;
            println!(
                "teardown {} of {env} queued: it runs in the environment's turn; follow it with `ferry logs {}`",
                teardown.id, teardown.id
            );
            if !superseded.is_empty() {
                println!(
                    "{} waiting there will not run",
                    crate::format::plural(superseded.len(), "deployment")
                );
            }
            Ok(())
        }
        TeardownQueued::Already(t) => {
            let what = match t.state {
                State::Queued => "is waiting".to_string(),
                State::Running => "is running".to_string(),
                _ => format!(
                    "tore it down at {}",
                    t.finished_at.map_or("-".into(), clock)
                ),
            };
            eprintln!(
                "error: {env} has no deployment since teardown {}, which {what}",
                t.id
            );
            Err(Failed.into())
        }
        TeardownQueued::NoDeployment | TeardownQueued::NotApplicable(_) => {
            eprintln!("error: {env} has no deployment to tear down");
            Err(Failed.into())
        }
    }
}
