//! `ferry lock REPO:ENV`: the environment's deployments wait until it is unlocked.

use super::steering::{EnvName, audit, open_store, operator, owned};
use super::{ConfigArg, Failed};
use crate::config::Steering;
use crate::store::EnvLock;

/// Hold an environment: its deployments wait until it is unlocked.
#[derive(clap::Args)]
pub struct Lock {
    /// The environment, as owner/repo:environment.
    #[arg(value_name = "REPO:ENV")]
    env: EnvName,
    /// Why; shown on GitHub and in `ferry locks`.
    #[arg(long, value_name = "TEXT", default_value = "")]
    reason: String,
    #[command(flatten)]
    config: ConfigArg,
}

impl Lock {
    pub async fn run(self) -> anyhow::Result<()> {
        lock(&self.config.load_for_store()?, &self.env, &self.reason).await
    }
}

pub async fn lock(c: &Steering, env: &EnvName, reason: &str) -> anyhow::Result<()> {
    owned(c, env)?;
    let store = open_store(c).await?.store;
    let lock = EnvLock {
        repository: env.repository.clone(),
        environment: env.environment.clone(),
        holder: operator(),
        reason: reason.to_string(),
        since: crate::store::now_ms(),
    };
    match store.lock(&lock).await? {
        None => {
            let why = if reason.is_empty() {
                String::new()
            } else {
                format!(": {reason}")
            };
            audit(
                &store,
                "lock",
                (&env.repository, &env.environment),
                None,
                format!("locked {env}{why}"),
            )
            .await;
            println!(
                "locked {env}: its deployments wait until `ferry unlock {env}`; one running now finishes"
            );
            Ok(())
        }
        Some(held) => {
            eprintln!("error: {env} is already locked by {}", held.describe());
            Err(Failed.into())
        }
    }
}
