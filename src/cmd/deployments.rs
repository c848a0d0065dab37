//! `ferry deployments`: recent deployments, as a table or JSON Lines.

use super::ConfigArg;
use super::output::{clock, deployment_json};
use super::steering::{EnvName, open_store};
use crate::config::Steering;
use crate::format::duration;
use crate::store::{Origin, Timestamp};

/// List recent deployments.
#[derive(clap::Args)]
pub struct Deployments {
    #[command(flatten)]
    config: ConfigArg,
    /// At most this many, newest first.
    #[arg(long, value_name = "N", default_value_t = 20)]
    limit: u32,
    /// Only this environment's.
    #[arg(long, value_name = "REPO:ENV")]
    environment: Option<EnvName>,
    /// Only those in this state: queued, running, success, failure,
    /// error, cancelled or inactive.
    #[arg(long, value_name = "STATE", value_parser = super::parse_state)]
    state: Option<String>,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
}

impl Deployments {
    pub async fn run(self) -> anyhow::Result<()> {
        let c = self.config.load_for_store()?;
        deployments(&c, &self).await
    }
}

/// Deployments read to filter from: the most recent, whatever the filter.
const FILTERED_FROM: i64 = 10_000;

async fn deployments(c: &Steering, l: &Deployments) -> anyhow::Result<()> {
    let store = open_store(c).await?.store;
    let filtered = l.environment.is_some() || l.state.is_some();
    let read = if filtered {
        FILTERED_FROM
    } else {
        i64::from(l.limit)
    };
    let list: Vec<_> = store
        .recent(read)
        .await?
        .into_iter()
        .filter(|d| {
            l.environment
                .as_ref()
                .is_none_or(|k| d.repository == k.repository && d.environment == k.environment)
        })
        .filter(|d| l.state.as_deref().is_none_or(|s| d.state_word() == s))
        .take(l.limit as usize)
        .collect();
    let awaiting = store.awaiting_github().await?;
    if l.json {
        let ids: Vec<_> = list.iter().map(|d| d.id).collect();
        let origins = store.origins(&ids).await?;
        // JSON Lines, one deployment per line.
        for d in list {
            let mut fields = deployment_json(&d);
            // Teardowns post nothing: null.
            let on_github = (!d.id.is_teardown()).then(|| !awaiting.contains(&d.id));
            fields.insert("on_github".into(), on_github.into());
            let origin = (!d.id.is_teardown()).then(|| {
                super::output::origin_json(origins.get(&d.id).unwrap_or(&Origin::Webhook))
            });
            fields.insert("started_by".into(), origin.into());
            println!("{}", serde_json::Value::Object(fields));
        }
        return Ok(());
    }
    let mut marked = false;
    println!(
        "{:<12}  {:<28}  {:<14}  {:<20}  {:<10}  {:<20}  {:<10}  DESCRIPTION",
        "ID", "REPOSITORY", "ENVIRONMENT", "REF", "STATE", "STARTED", "DURATION"
    );
    for d in list {
        let started = d.started_at.map_or("-".to_string(), clock);
        let took = match (d.started_at, d.finished_at) {
            (Some(s), Some(f)) => duration(f - s),
            (Some(s), None) => format!("{} so far", duration(Timestamp::now() - s)),
            _ => "-".to_string(),
        };
        let state = if awaiting.contains(&d.id) {
            marked = true;
            format!("{}*", d.state_word())
        } else {
            d.state_word().to_string()
        };
        // Teardowns (negative ids) say what they tore down; every row says
        // what GitHub was told last.
        let description = match d.teardown_of {
            Some(latest) => format!("teardown of {latest}: {}", d.description),
            None => d.description.clone(),
        };
        println!(
            "{:<12}  {:<28}  {:<14}  {:<20}  {:<10}  {:<20}  {took:<10}  {description}",
            d.id, d.repository, d.environment, d.git_ref, state, started
        );
    }
    if marked {
        println!("* GitHub does not have this status yet; `ferry show ID` says why");
    }
    Ok(())
}
