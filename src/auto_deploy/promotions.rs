//! Promotions (`[target.auto_deploy] after`): the auto-deploy cursor on
//! the event stream. A `success` in an environment some target promotes
//! from makes its sha that target's candidate, due when its soak ends.
//!
//! Events are handled at least once (a crash before the ack reads them
//! again); an offer is taken once by the store's unique key, so a sha read
//! twice is offered once.

use tokio::sync::Notify;

use crate::config::{AutoDeploy, Config};
use crate::current::Current;
use crate::store::{CandidateSource, Event, EventKind, LockTask, NewCandidate, SharedStore};

/// The consumer's name on the event stream.
pub const CONSUMER: &str = "auto_deploy";

pub struct Promotions {
    pub store: SharedStore,
    pub config: Current<Config>,
    /// Rung when a candidate was offered: the deployer looks.
    pub offered: std::sync::Arc<Notify>,
}

#[async_trait::async_trait]
impl crate::cursor::Handler for Promotions {
    fn consumer(&self) -> &'static str {
        CONSUMER
    }

    /// Offers what a success promotes.
    async fn handle(&self, e: &Event) -> crate::store::Result<()> {
        let config = self.config.get();
        for offer in self.offers(&config, e).await? {
            if !self.store.offer_candidate(&offer).await? {
                continue;
            }
            if let CandidateSource::Promotion {
                environment,
                deployment,
            } = &offer.source
            {
                tracing::info!(repository = %offer.repository, environment = %offer.environment,
                    sha = %offer.sha,
                    "promotion of {} from {environment} to {}:{}: a candidate (deployment {deployment} succeeded), due {}",
                    crate::format::short_sha(&offer.sha), offer.repository, offer.environment,
                    offer.due_at.rfc3339());
            }
            self.offered.notify_one();
        }
        Ok(())
    }
}

impl Promotions {
    /// The candidates a `success` in `e`'s environment makes, one per
    /// target that promotes from there.
    async fn offers(&self, config: &Config, e: &Event) -> crate::store::Result<Vec<NewCandidate>> {
        let (EventKind::Status, Some(id), Some("success")) =
            (e.kind, e.deployment, e.state.as_deref())
        else {
            return Ok(Vec::new());
        };
        let promoting: Vec<_> = config
            .targets
            .iter()
            .filter_map(|t| match &t.auto_deploy {
                Some(AutoDeploy::After { environment, soak })
                    if t.repository == e.repository && *environment == e.environment =>
                {
                    Some((t, *soak))
                }
                _ => None,
            })
            .collect();
        if promoting.is_empty() {
            return Ok(Vec::new());
        }
        // A lock task's or a teardown's success promotes nothing.
        let Some(d) = self.store.get(id).await? else {
            return Ok(Vec::new());
        };
        if d.teardown_of.is_some() || LockTask::of(&d.task).is_some() {
            return Ok(Vec::new());
        }
        Ok(promoting
            .into_iter()
            .map(|(t, soak)| NewCandidate {
                repository: t.repository.to_string(),
                environment: t.environment.clone(),
                sha: d.sha.clone(),
                source: CandidateSource::Promotion {
                    environment: e.environment.clone(),
                    deployment: id,
                },
                installation_id: d.installation_id,
                due_at: e.at + soak,
            })
            .collect())
    }
}
