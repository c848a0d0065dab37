//! `ferry unlock REPO:ENV`: lifts a lock, a freeze window in force, or a hold.

use super::steering::warn_freeze_problems;
use super::steering::{EnvName, audit, open_store, operator, owned};
use super::{ConfigArg, Failed};
use crate::config::Steering;
use crate::store::SharedStore;

/// Lift an environment's lock; its waiting deployment starts.
#[derive(clap::Args)]
pub struct Unlock {
    /// The environment, as owner/repo:environment.
    #[arg(value_name = "REPO:ENV")]
    env: EnvName,
    #[command(flatten)]
    config: ConfigArg,
}

impl Unlock {
    pub async fn run(self) -> anyhow::Result<()> {
        unlock(&self.config.load_for_store()?, &self.env).await
    }
}

/// Lifts every freeze window holding the environment now, until each ends;
/// what it lifted (windows lifted before are not lifted again).
async fn lift_freezes(
    c: &Steering,
    store: &SharedStore,
    env: &EnvName,
) -> anyhow::Result<Vec<String>> {
    let all = crate::admission::freeze::lift(
        store,
        &c.freezes,
        &env.repository,
        &env.environment,
        &operator(),
    )
    .await?;
    let mut lifted = Vec::new();
    for crate::admission::freeze::Lifted { freeze, until, new } in all {
        if new {
            println!(
                "lifted freeze {freeze} for {env} until {until}; its next window holds it again"
            );
            lifted.push(format!("freeze {freeze} until {until}"));
        }
    }
    Ok(lifted)
}

pub async fn unlock(c: &Steering, env: &EnvName) -> anyhow::Result<()> {
    let env = &owned(c, env)?;
    warn_freeze_problems(c);
    let store = open_store(c).await?.store;
    let lock = store
        .unlock(&env.repository, &env.environment, &operator())
        .await?;
    let holds = store
        .release_holds(&env.repository, &env.environment)
        .await?;
    let freezes = lift_freezes(c, &store, env).await?;
    if lock.is_none() && holds.is_empty() && freezes.is_empty() {
        eprintln!("error: {env} is not locked");
        return Err(Failed.into());
    }
    let mut lifted = freezes;
    if let Some(was) = &lock {
        println!("unlocked {env} (locked by {})", was.describe());
        lifted.push(format!("lock of {}", was.holder));
    }
    for h in &holds {
        println!(
            "released {env}: the step of deployment {} on {} may still run there (ferry {})",
            h.deployment,
            h.host(),
            h.describe()
        );
        lifted.push(format!(
            "hold on the step of deployment {} on {}",
            h.deployment,
            h.host()
        ));
    }
    audit(
        &store,
        "unlock",
        (&env.repository, &env.environment),
        None,
        format!("unlocked {env} ({})", lifted.join(", ")),
    )
    .await;
    Ok(())
}
