//! `ferry cancel ID`: ends a queued or running deployment, killing its processes on every host.

use super::steering::{audit, open_store, operator, where_stored};
use super::{ConfigArg, Failed};
use crate::config::Steering;
use crate::store::{CancelOutcome, Cancellation, DeploymentId, NewStatus, StatusState};

/// End a queued or running deployment (its final status is `error`).
#[derive(clap::Args)]
pub struct Cancel {
    /// Deployment id (a teardown's is negative).
    #[arg(allow_negative_numbers = true)]
    id: i64,
    /// Why; shown on GitHub and in the log.
    #[arg(long, value_name = "TEXT", default_value = "")]
    reason: String,
    /// Then put back the hosts it changed, with the environment's last
    /// good version (as `rollback = true` does for a failed one).
    #[arg(long)]
    rollback: bool,
    #[command(flatten)]
    config: ConfigArg,
}

impl Cancel {
    pub async fn run(self) -> anyhow::Result<()> {
        cancel(
            &self.config.load_for_store()?,
            self.id,
            &self.reason,
            self.rollback,
        )
        .await
    }
}

pub async fn cancel(c: &Steering, id: i64, reason: &str, rollback: bool) -> anyhow::Result<()> {
    let id = DeploymentId(id);
    let opened = open_store(c).await?;
    let store = opened.store;
    let cancellation = Cancellation {
        by: operator(),
        reason: reason.to_string(),
        rollback,
    };
    // No log_url: the command does not read server.public_url, and the
    // outbox adds the link as it posts (GitHub's deployment page shows it).
    let status = NewStatus::new(StatusState::Error, cancellation.describe());
    let outcome = store.cancel(id, &cancellation, &status).await?;
    let d = match outcome {
        CancelOutcome::Unknown => {
            eprintln!(
                "error: {}",
                crate::wording::no_deployment(id, &where_stored(c))
            );
            return Err(Failed.into());
        }
        CancelOutcome::Finished(state) => {
            eprintln!("error: deployment {id} has ended already ({state})");
            return Err(Failed.into());
        }
        _ => store.get(id).await?,
    };
    let env = d
        .as_ref()
        .map(|d| (d.repository.clone(), d.environment.clone()))
        .unwrap_or_default();
    let why = if reason.is_empty() {
        String::new()
    } else {
        format!(": {reason}")
    };
    let was = match outcome {
        CancelOutcome::Ended => {
            let logs = crate::logs::Logs::open(&c.storage.dir, "", opened.database.clone()).await?;
            let log = logs.writer(id).await?;
            log.ferry(
                None,
                None,
                &format!("error: {}; it never ran", cancellation.describe()),
            );
            log.flush().await?;
            println!("cancelled deployment {id}: it was waiting and will not run");
            "waiting"
        }
        _ => {
            println!(
                "cancelling deployment {id}: the ferry running it stops its steps on every host"
            );
            "running"
        }
    };
    audit(
        &store,
        "cancel",
        (&env.0, &env.1),
        Some(id),
        format!(
            "cancelled deployment {id} of {}:{} (it was {was}{}){why}",
            env.0,
            env.1,
            if rollback && was == "running" {
                "; putting back its hosts"
            } else {
                ""
            }
        ),
    )
    .await;
    Ok(())
}
