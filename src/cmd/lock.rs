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
    /// Lift the lock by itself after this long ("90m", "2h", "1d").
    #[arg(long = "for", value_name = "DURATION", value_parser = lock_for)]
    for_: Option<std::time::Duration>,
    #[command(flatten)]
    config: ConfigArg,
}

impl Lock {
    pub async fn run(self) -> anyhow::Result<()> {
        lock(
            &self.config.load_for_store()?,
            &self.env,
            &self.reason,
            self.for_,
        )
        .await
    }
}

/// `--for`: a duration as the config writes them, longer than zero.
fn lock_for(s: &str) -> Result<std::time::Duration, String> {
    super::positive_duration(s, "\"90m\", \"2h\" or \"1d\"")
}

pub async fn lock(
    c: &Steering,
    env: &EnvName,
    reason: &str,
    for_: Option<std::time::Duration>,
) -> anyhow::Result<()> {
    let env = &owned(c, env)?;
    let store = open_store(c).await?.store;
    let lock = EnvLock {
        repository: env.repository.clone(),
        environment: env.environment.clone(),
        holder: operator(),
        reason: reason.to_string(),
        since: crate::store::Timestamp::now(),
        until: for_.map(|d| crate::store::Timestamp::now() + d),
    };
    match store.lock(&lock).await? {
        None => {
            let mut why = if reason.is_empty() {
                String::new()
            } else {
                format!(": {reason}")
            };
            if let Some(until) = lock.until {
                why.push_str(&format!(" (until {})", super::output::clock(until)));
            }
            audit(
                &store,
                "lock",
                (&env.repository, &env.environment),
                None,
                format!("locked {env}{why}"),
            )
            .await;
            match lock.until {
                None => println!(
                    "locked {env}: its deployments wait until `ferry unlock {env}`; one running now finishes"
                ),
                Some(until) => println!(
                    "locked {env} until {}: its deployments wait until then or `ferry unlock {env}`; one running now finishes",
                    super::output::clock(until)
                ),
            }
            Ok(())
        }
        Some(held) => {
            eprintln!("error: {env} is already locked by {}", held.describe());
            Err(Failed.into())
        }
    }
}
