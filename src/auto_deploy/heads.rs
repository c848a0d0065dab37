//! A branch's new head becomes the candidate of each target that follows
//! the branch: from a `push` webhook, or from the reconciler's read of the
//! branch at start and every `github.reconcile_every` (a push whose
//! webhook never came).

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::{AutoDeploy, Config};
use crate::current::Current;
use crate::github::GitHub;
use crate::github::branches::BranchHead;
use crate::store::{CandidateSource, NewCandidate, SharedStore, Timestamp};

/// Offers `sha`, the new head of `branch` of `repository`, to every target
/// that follows the branch; the environments it became the candidate of
/// (none for a head seen before).
pub async fn offer_head(
    store: &SharedStore,
    config: &Config,
    repository: &str,
    branch: &str,
    sha: &str,
    installation_id: Option<i64>,
) -> crate::store::Result<Vec<String>> {
    let mut offered = Vec::new();
    for t in super::following(config, repository, branch) {
        let offer = NewCandidate {
            repository: repository.to_string(),
            environment: t.environment.clone(),
            sha: sha.to_string(),
            source: CandidateSource::Branch(branch.to_string()),
            installation_id,
            due_at: Timestamp::now(),
        };
        if store.offer_candidate(&offer).await? {
            offered.push(t.environment.clone());
        }
    }
    Ok(offered)
}

/// Reads the head of every followed branch, until `stop`.
pub struct Heads {
    pub store: SharedStore,
    pub config: Current<Config>,
    pub github: Current<GitHub>,
    /// Rung when a head became a candidate.
    pub offered: Arc<Notify>,
}

impl Heads {
    pub async fn run(self, stop: CancellationToken) {
        let mut etags: HashMap<(String, String), String> = HashMap::new();
        loop {
            let every = self.config.get().github.reconcile_every;
            if !every.is_zero() {
                self.round(&mut etags).await;
            }
            tokio::select! {
                _ = tokio::time::sleep(crate::github::reconcile::pause(every)) => {}
                _ = stop.cancelled() => return,
            }
        }
    }

    async fn round(&self, etags: &mut HashMap<(String, String), String>) {
        let config = self.config.get();
        let github = self.github.get();
        let mut followed: Vec<(String, String)> = config
            .targets
            .iter()
            .filter_map(|t| match &t.auto_deploy {
                Some(AutoDeploy::Branch(b)) => Some((t.repository.to_string(), b.clone())),
                _ => None,
            })
            .collect();
        followed.sort();
        followed.dedup();
        for key in followed {
            let (repository, branch) = (&key.0, &key.1);
            let read = async {
                let installation = github.installation_for(repository).await?;
                let etag = etags.get(&key).map(String::as_str);
                let head = github
                    .branch_head(repository, branch, installation, etag)
                    .await?;
                Ok::<_, crate::github::CallError>((installation, head))
            };
            let (installation, head) = match read.await {
                Ok(read) => read,
                Err(e) => {
                    tracing::warn!(repository = %repository, "cannot read the head of {branch} of {repository}: {e}");
                    continue;
                }
            };
            let (sha, etag) = match head {
                BranchHead::Unchanged => continue,
                BranchHead::Missing => {
                    tracing::warn!(repository = %repository,
                        "{repository} has no branch {branch:?} (deleted, or the token cannot see it): nothing to auto-deploy from it");
                    etags.remove(&key);
                    continue;
                }
                BranchHead::Head { sha, etag } => (sha, etag),
            };
            match offer_head(&self.store, &config, repository, branch, &sha, installation).await {
                Ok(offered) => {
                    for environment in &offered {
                        tracing::info!(repository = %repository, environment = %environment, sha = %sha,
                            "auto-deploy of {branch} at {} to {repository}:{environment}: a candidate (a head no push brought)",
                            crate::format::short_sha(&sha));
                    }
                    if !offered.is_empty() {
                        self.offered.notify_one();
                    }
                    match etag {
                        Some(etag) => etags.insert(key, etag),
                        None => etags.remove(&key),
                    };
                }
                Err(e) => {
                    tracing::warn!(repository = %repository, "cannot offer the head of {branch} of {repository}: {e}");
                    etags.remove(&key);
                }
            }
        }
    }
}
