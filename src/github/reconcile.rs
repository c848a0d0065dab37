//! Deliveries that never came (docs/github.md): GitHub does not redeliver a failed
//! webhook delivery by itself, so at start and every
//! `github.reconcile_every` ferry lists the recent deployments of each
//! repository a target names and takes any that it owns and has never
//! seen, as if its webhook had just arrived.
//!
//! The lists are asked for with `If-None-Match`: an unchanged list is a
//! `304`, which GitHub does not count against the rate limit. A candidate
//! must have been created after the store was, in the last 24 hours, and
//! have no status yet (another agent, or a person, may have handled it).
//! With replicas each is taken once: intake refuses a second copy of a
//! deployment id.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use super::{CallError, GitHub};
use crate::config::Config;
use crate::current::Current;
use crate::store::Timestamp;
use crate::store::{DeliveryKey, DeploymentId, LockTask};
use crate::webhook::{Intake, RawDeployment};

/// Deployments older than this are never taken: a webhook that failed a
/// day ago has been dealt with by a person, one way or another.
pub const MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// Deployments listed per repository: GitHub's default page.
const PER_PAGE: u32 = 30;
/// How often a disabled reconciler (`reconcile_every = "0s"`) looks
/// whether a reload turned it on.
const DISABLED_LOOK: Duration = Duration::from_secs(30);

/// Until the next round of a reconciler that runs every `every`
/// (`github.reconcile_every`); a disabled one looks whether a reload
/// turned it on.
pub fn pause(every: Duration) -> Duration {
    if every.is_zero() {
        DISABLED_LOOK
    } else {
        every
    }
}

/// A repository's deployments, as GitHub answered.
pub enum Listing {
    /// `304`: unchanged since the list with this ETag.
    Unchanged,
    Changed {
        etag: Option<String>,
        deployments: Vec<serde_json::Value>,
    },
}

impl GitHub {
    /// `GET /repos/{repository}/deployments`, conditional on `etag`.
    pub async fn list_deployments(
        &self,
        repository: &str,
        installation: Option<i64>,
        etag: Option<&str>,
    ) -> Result<Listing, CallError> {
        let url = format!(
            "{}/repos/{repository}/deployments?per_page={PER_PAGE}",
            self.api_url
        );
        let token = self.token(installation).await?;
        let mut request = self.http.get(&url).bearer_auth(token.expose_str());
        if let Some(etag) = etag {
            request = request.header("If-None-Match", etag);
        }
        let response = self.send(request).await?;
        if response.status() == reqwest::StatusCode::NOT_MODIFIED {
            return Ok(Listing::Unchanged);
        }
        let etag = response
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let deployments = response.json().await.map_err(|e| CallError::Retry {
            after: None,
            reason: format!("GitHub's list of deployments is not what ferry expects: {e}"),
        })?;
        Ok(Listing::Changed { etag, deployments })
    }

    /// Whether a deployment has no status at all yet.
    pub async fn has_no_status(
        &self,
        repository: &str,
        id: DeploymentId,
        installation: Option<i64>,
    ) -> Result<bool, CallError> {
        let url = format!(
            "{}/repos/{repository}/deployments/{id}/statuses?per_page=1",
            self.api_url
        );
        let token = self.token(installation).await?;
        let response = self
            .send(self.http.get(&url).bearer_auth(token.expose_str()))
            .await?;
        let listed: Vec<serde_json::Value> =
            response.json().await.map_err(|e| CallError::Retry {
                after: None,
                reason: format!("GitHub's list of statuses is not what ferry expects: {e}"),
            })?;
        Ok(listed.is_empty())
    }
}

/// Lists and takes, until `stop`.
pub struct Reconciler {
    pub github: Current<GitHub>,
    pub config: Current<Config>,
    pub intake: Intake,
}

impl Reconciler {
    pub async fn run(self, stop: CancellationToken) {
        let mut etags: HashMap<String, String> = HashMap::new();
        let mut installations: HashMap<String, i64> = HashMap::new();
        loop {
            let every = self.config.get().github.reconcile_every;
            if !every.is_zero() {
                match self.round(&mut etags, &mut installations).await {
                    Ok(0) => {}
                    Ok(n) => tracing::warn!(
                        count = n,
                        "took {} whose webhook never came",
                        crate::format::plural(n, "deployment")
                    ),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot look for deployments whose webhook never came: {e}")
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(pause(every)) => {}
                _ = stop.cancelled() => return,
            }
        }
    }

    /// One look at every repository; how many deployments it took.
    async fn round(
        &self,
        etags: &mut HashMap<String, String>,
        installations: &mut HashMap<String, i64>,
    ) -> anyhow::Result<usize> {
        let config = self.config.get();
        let github = self.github.get();
        let created = self.intake.store.created_at().await?;
        let mut repositories: Vec<&str> = config
            .targets
            .iter()
            .map(|t| t.repository.as_str())
            .collect();
        repositories.sort_unstable();
        repositories.dedup();
        let mut taken = 0;
        for repository in repositories {
            let installation = match github.installation_of(repository, installations).await {
                Ok(i) => i,
                Err(e) => {
                    tracing::warn!(
                        repository,
                        "cannot list the deployments of {repository}: {e}"
                    );
                    continue;
                }
            };
            let etag = etags.get(repository).map(String::as_str);
            let (etag, listed) = match github
                .list_deployments(repository, installation, etag)
                .await
            {
                Ok(Listing::Unchanged) => continue,
                Ok(Listing::Changed { etag, deployments }) => (etag, deployments),
                Err(e) => {
                    tracing::warn!(
                        repository,
                        "cannot list the deployments of {repository}: {e}"
                    );
                    continue;
                }
            };
            let mut complete = true;
            // Oldest first, as their webhooks would have come.
            for item in listed.into_iter().rev() {
                match self
                    .consider(&config, &github, repository, installation, created, item)
                    .await
                {
                    Ok(true) => taken += 1,
                    Ok(false) => {}
                    Err(e) => {
                        complete = false;
                        tracing::warn!(
                            repository,
                            "cannot take a deployment of {repository} from GitHub's list: {e}"
                        );
                    }
                }
            }
            // A list not fully handled is asked for in full again.
            match etag.filter(|_| complete) {
                Some(etag) => etags.insert(repository.to_string(), etag),
                None => etags.remove(repository),
            };
        }
        Ok(taken)
    }

    /// Takes one listed deployment if docs/reference.md says to; whether it did.
    async fn consider(
        &self,
        config: &Config,
        github: &GitHub,
        repository: &str,
        installation: Option<i64>,
        store_created: Timestamp,
        item: serde_json::Value,
    ) -> anyhow::Result<bool> {
        let Ok(d) = serde_json::from_value::<RawDeployment>(item) else {
            return Ok(false);
        };
        let Some(created) = d
            .created_at
            .as_deref()
            .and_then(|t| humantime::parse_rfc3339(t).ok())
        else {
            return Ok(false);
        };
        let created_ms = created
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let age = SystemTime::now()
            .duration_since(created)
            .unwrap_or_default();
        // GitHub's times are whole seconds: one created in the second the
        // store was is after it.
        if created_ms / 1000 < store_created.as_millis() / 1000 || age > MAX_AGE {
            return Ok(false);
        }
        let owned = config
            .target_for(repository, &d.environment, &d.task)
            .is_some()
            || (LockTask::of(&d.task).is_some()
                && config.owns_environment(repository, &d.environment));
        let id = DeploymentId(d.id);
        if !owned || self.intake.store.get(id).await?.is_some() {
            return Ok(false);
        }
        if !github.has_no_status(repository, id, installation).await? {
            return Ok(false);
        }
        let key = DeliveryKey {
            hook_id: "reconcile".into(),
            delivery_id: format!("reconcile-{id}"),
        };
        let reason = d.description().to_string();
        let environment = d.environment.clone();
        let answer = crate::webhook::take(
            &self.intake,
            &key,
            d.into_new(repository.to_string(), installation),
            &reason,
        )
        .await;
        let code = answer.code;
        if code == axum::http::StatusCode::ACCEPTED {
            tracing::warn!(deployment = %id, repository, environment = %environment,
                "deployment {id} of {repository} to {environment}: its webhook never came; taken from GitHub's list");
            Ok(true)
        } else if code.is_success() {
            // Another replica took it meanwhile, or it is ignored.
            Ok(false)
        } else {
            anyhow::bail!("deployment {id} not stored ({code})")
        }
    }
}

impl GitHub {
    /// The App installation that covers `repository` (None with a token).
    async fn installation_of(
        &self,
        repository: &str,
        known: &mut HashMap<String, i64>,
    ) -> Result<Option<i64>, CallError> {
        if let Some(id) = known.get(repository) {
            return Ok(Some(*id));
        }
        let id = self.installation_for(repository).await?;
        if let Some(id) = id {
            known.insert(repository.to_string(), id);
        }
        Ok(id)
    }
}
