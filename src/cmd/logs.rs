//! `ferry logs ID`: a deployment's log; with `--follow`, until it ends.

use anyhow::bail;

use super::steering::{open_store, where_stored};
use super::{ConfigArg, Failed};
use crate::config::Steering;
use crate::logs;
use crate::store::DeploymentId;
use std::time::Duration;

/// Print a deployment's log; with --follow, exit 0 only for a success.
#[derive(clap::Args)]
pub struct Logs {
    /// Deployment id (a teardown's is negative).
    #[arg(allow_negative_numbers = true)]
    id: i64,
    #[command(flatten)]
    config: ConfigArg,
    /// Keep printing until the deployment ends.
    #[arg(long)]
    follow: bool,
}

impl Logs {
    pub async fn run(self) -> anyhow::Result<()> {
        logs(&self.config.load_for_store()?, self.id, self.follow).await
    }
}

pub(super) async fn logs(c: &Steering, id: i64, follow: bool) -> anyhow::Result<()> {
    let id = DeploymentId(id);
    let opened = open_store(c).await?;
    let store = opened.store;
    let Some(d) = store.get(id).await? else {
        bail!("{}", crate::wording::no_deployment(id, &where_stored(c)));
    };
    let reader = logs::Logs::reader(&c.storage.dir, opened.database);
    print!("{}", logs::page::header_text(&d));
    let mut offset = 0;
    loop {
        // Read the state before the log: once final, one more read has it all.
        let now = store.get(id).await?;
        let done = !follow || now.as_ref().is_none_or(|d| d.state.is_final());
        if let Some((lines, next)) = reader.read_from(id, offset).await? {
            print!("{}", logs::text(&lines));
            offset = next;
        }
        if done {
            return match now {
                // docs/reference.md: `--follow` exits 0 only for a success, so that a
                // script can wait for a deployment and act on its result.
                Some(d) if follow && d.state != crate::store::State::Success => {
                    eprintln!("deployment {id} ended in {}: {}", d.state, d.description);
                    Err(Failed.into())
                }
                _ => Ok(()),
            };
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
