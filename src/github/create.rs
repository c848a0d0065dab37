//! `ferry deploy` and `ferry rollback`, the daemon's half: a request an
//! operator left in the store is taken by one ferry (any replica), which
//! creates the deployment on GitHub with its own credentials
//! (`POST /repos/{owner}/{repo}/deployments`) and records GitHub's answer
//! for the waiting command.
//!
//! The created deployment is queued at once from GitHub's answer, through
//! the webhook's own intake: the `deployment` webhook GitHub sends next
//! then finds it there, and a webhook that never comes loses nothing.

use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{CallError, GitHub};
use crate::current::Current;
use crate::store::{DeliveryKey, DeployRequest, DeploymentId, Owner, RequestAnswer, TakenRequest};
use crate::webhook::{Intake, RawDeployment};

/// How often the store is asked for requests: a command waits at most this
/// long before a ferry has taken its request.
const POLL: Duration = Duration::from_millis(500);
/// A request with less than this left before its deadline is not taken:
/// there would be no time to ask GitHub and record the answer.
pub const TAKE_MARGIN: Duration = Duration::from_secs(2);
/// GitHub's answer must be in hand this long before the deadline, to be
/// recorded before the command stops waiting.
const ANSWER_MARGIN: Duration = Duration::from_secs(1);
/// Between tries to reach a GitHub that refuses connections.
const REACH_AGAIN: Duration = Duration::from_secs(1);

#[derive(Serialize, Debug, PartialEq)]
struct CreateBody<'a> {
    #[serde(rename = "ref")]
    git_ref: &'a str,
    environment: &'a str,
    task: &'a str,
    payload: serde_json::Value,
    auto_merge: bool,
    description: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    required_contexts: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    production_environment: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    transient_environment: Option<bool>,
}

impl<'a> CreateBody<'a> {
    fn of(q: &'a DeployRequest) -> CreateBody<'a> {
        CreateBody {
            git_ref: &q.git_ref,
            environment: &q.environment,
            task: &q.task,
            // Checked by the command; an object either way.
            payload: serde_json::from_str(&q.payload).unwrap_or_else(|_| serde_json::json!({})),
            // Never merge the default branch in: the operator named what
            // to deploy, and a rollback's sha must stay that sha.
            auto_merge: false,
            description: &q.description,
            required_contexts: q.skip_contexts.then(Vec::new),
            production_environment: q.production,
            transient_environment: q.transient,
        }
    }
}

impl GitHub {
    /// `POST /repos/{repository}/deployments`; GitHub's deployment object.
    /// `202` (GitHub merged something instead) and every refusal are
    /// errors with GitHub's message.
    pub(crate) async fn create_deployment(
        &self,
        q: &DeployRequest,
        installation: Option<i64>,
        timeout: Duration,
    ) -> Result<serde_json::Value, CallError> {
        let url = format!("{}/repos/{}/deployments", self.api_url, q.repository);
        let body = CreateBody::of(q);
        for attempt in 0..2 {
            let token = self.token(installation).await?;
            let request = self
                .http
                .post(&url)
                .timeout(timeout)
                .bearer_auth(token.expose_str())
                .json(&body);
            match self.send(request).await {
                // An installation token GitHub no longer takes: once more
                // with a new one.
                Err(CallError::Permanent { reason })
                    if attempt == 0 && reason.starts_with("401") && self.forget(installation) => {}
                Err(e) => return Err(e),
                Ok(response) if response.status() == reqwest::StatusCode::CREATED => {
                    return response.json().await.map_err(|e| CallError::Unanswered {
                        reason: format!("GitHub's answer is not a deployment: {e}"),
                    });
                }
                Ok(response) => {
                    let status = response.status().as_u16();
                    let text = response.text().await.unwrap_or_default();
                    return Err(CallError::Permanent {
                        reason: format!("{status} {}", super::github_message(&text)),
                    });
                }
            }
        }
        unreachable!("the second attempt always returns")
    }
}

/// How long a deployment ferry decided on itself (an auto-deploy, a pull
/// request command) waits for GitHub's answer to its create request: the
/// leases on those decisions outlast it, so that no other process asks
/// while it may be in flight.
pub(crate) const CREATE_TIMEOUT: Duration = Duration::from_secs(10);

/// What came of asking GitHub to create a deployment ferry decided on.
pub(crate) enum Asked {
    /// GitHub's deployment object.
    Created(serde_json::Value),
    /// GitHub will never create it (a 4xx other than the credentials'):
    /// its words.
    Refused(String),
    /// Not now: GitHub could not be reached, did not answer in time, or
    /// refused the credentials (an operator may fix those). The request
    /// may have reached GitHub.
    NotNow(String),
}

impl GitHub {
    /// `POST /repos/{r}/deployments` for a deployment ferry decided on,
    /// within [`CREATE_TIMEOUT`] (the installation token's fetch included).
    pub(crate) async fn ask_to_create(
        &self,
        q: &DeployRequest,
        installation: Option<i64>,
    ) -> Asked {
        let asked = tokio::time::timeout(
            CREATE_TIMEOUT,
            self.create_deployment(q, installation, CREATE_TIMEOUT),
        )
        .await;
        match asked {
            Ok(Ok(created)) => Asked::Created(created),
            Ok(Err(CallError::Permanent { reason }))
                if !reason.starts_with("401") && !reason.starts_with("403") =>
            {
                Asked::Refused(reason)
            }
            Ok(Err(e)) => Asked::NotNow(e.to_string()),
            Err(_) => Asked::NotNow("no answer from GitHub in time".into()),
        }
    }
}

/// Takes requests from the store and answers them, until `stop`.
pub struct Requester {
    pub github: Current<GitHub>,
    pub intake: Intake,
}

impl Requester {
    pub async fn run(self, stop: CancellationToken) {
        let owner = Owner::this_process();
        let this = std::sync::Arc::new(self);
        let mut asking = JoinSet::new();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = stop.cancelled() => break,
            }
            while asking.try_join_next().is_some() {}
            loop {
                match this.intake.store.take_request(&owner, TAKE_MARGIN).await {
                    Ok(Some(taken)) => {
                        let this = this.clone();
                        asking.spawn(async move { this.answer(taken).await });
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::debug!(error = %e, "cannot look for deployments asked for: {e}");
                        break;
                    }
                }
            }
        }
        // A command waiting for an answer this ferry will not give is told
        // it may have been created (it was sent, or may have been).
        if !asking.is_empty() {
            tracing::warn!(
                "stopping while asking GitHub for {}",
                crate::format::plural(asking.len(), "deployment")
            );
        }
        asking.shutdown().await;
    }

    /// Asks GitHub, records the answer and writes who asked for what to
    /// the log (`ACTOR=`).
    async fn answer(&self, taken: TakenRequest) {
        let q = &taken.request;
        let deadline = Instant::now() + taken.left.saturating_sub(ANSWER_MARGIN);
        let answer = self.ask(taken.seq, q, deadline).await;
        let what = match q.rollback_of {
            Some(of) => format!(
                "a rollback of {}:{} to {} (deployment {of})",
                q.repository,
                q.environment,
                crate::format::short_sha(&q.git_ref)
            ),
            None => format!(
                "a deployment of {} to {}:{}",
                q.git_ref, q.repository, q.environment
            ),
        };
        let outcome = match &answer {
            RequestAnswer::Created(id) => format!("GitHub created deployment {id}"),
            RequestAnswer::Refused(r) => format!("GitHub refused: {r}"),
            RequestAnswer::Unreachable(r) => format!("GitHub could not be reached: {r}"),
            RequestAnswer::InDoubt(r) => format!("no answer from GitHub: {r}"),
        };
        let deployment = match answer {
            RequestAnswer::Created(id) => Some(id.0),
            _ => None,
        };
        tracing::info!(
            actor = %q.actor,
            action = if q.rollback_of.is_some() { "rollback" } else { "deploy" },
            repository = %q.repository,
            environment = %q.environment,
            deployment,
            "{} asked for {what}: {outcome}",
            q.actor
        );
        if let (Some(id), Some(_)) = (deployment, q.rollback_of) {
            record_rollback(&self.intake.store, DeploymentId(id)).await;
        }
        // The command is waiting for this: try until it has stopped.
        while let Err(e) = self.intake.store.answer_request(taken.seq, &answer).await {
            if Instant::now() > deadline + ANSWER_MARGIN * 3 {
                tracing::warn!(error = %e, "cannot record GitHub's answer to {what}: {e}");
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn ask(&self, seq: i64, q: &DeployRequest, deadline: Instant) -> RequestAnswer {
        let github = self.github.get();
        let mut last = String::from("no time left to ask");
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left < Duration::from_millis(300) {
                return RequestAnswer::Unreachable(last);
            }
            let tried = async {
                let installation = github.installation_for(&q.repository).await?;
                let created = github.create_deployment(q, installation, left).await?;
                Ok::<_, CallError>((installation, created))
            };
            let error = match tokio::time::timeout(left, tried).await {
                Ok(Ok((installation, created))) => {
                    return self.created(seq, q, installation, created).await;
                }
                Ok(Err(e)) => e,
                Err(_) => CallError::Unanswered {
                    reason: format!("no answer within {}", crate::format::duration(left)),
                },
            };
            match error {
                CallError::Unreached { reason } => {
                    last = reason;
                    let pause = REACH_AGAIN.min(deadline.saturating_duration_since(Instant::now()));
                    tokio::time::sleep(pause).await;
                }
                CallError::Unanswered { reason } => return RequestAnswer::InDoubt(reason),
                CallError::Retry { reason, .. } | CallError::Permanent { reason } => {
                    return RequestAnswer::Refused(reason);
                }
            }
        }
    }

    /// GitHub made it: queued here at once, as its webhook would have.
    async fn created(
        &self,
        seq: i64,
        q: &DeployRequest,
        installation: Option<i64>,
        created: serde_json::Value,
    ) -> RequestAnswer {
        let key = DeliveryKey {
            hook_id: "ferry".into(),
            delivery_id: format!("request-{seq}"),
        };
        match queue_created(&self.intake, &key, &q.repository, installation, created).await {
            Ok(id) => RequestAnswer::Created(id),
            Err(answer) => RequestAnswer::InDoubt(answer),
        }
    }
}

/// Marks a deployment created for `ferry rollback` or `.rollback` as a
/// rollback, for `ferry stats`; a store that does not take it now only
/// makes that count one short, so it is not retried.
pub(crate) async fn record_rollback(store: &crate::store::SharedStore, id: DeploymentId) {
    if let Err(e) = store
        .record_rollback(id, crate::store::RollbackKind::Requested)
        .await
    {
        tracing::warn!(deployment = %id, error = %e, "cannot record deployment {id} as a rollback: {e}");
    }
}

/// A deployment GitHub just created for ferry (its answer, `created`),
/// queued here at once through the webhook's own intake under `key`: the
/// `deployment` webhook GitHub sends next then finds it there, and a
/// webhook that never comes loses nothing. Its id, or why GitHub's
/// answer has none.
pub(crate) async fn queue_created(
    intake: &Intake,
    key: &DeliveryKey,
    repository: &str,
    installation: Option<i64>,
    created: serde_json::Value,
) -> Result<DeploymentId, String> {
    let Some(id) = created.get("id").and_then(|v| v.as_i64()) else {
        return Err(format!(
            "GitHub's answer has no deployment id: {}",
            super::truncate_chars(&created.to_string(), 200)
        ));
    };
    match serde_json::from_value::<RawDeployment>(created) {
        Ok(d) => {
            let reason = d.description().to_string();
            let answer = crate::webhook::take(
                intake,
                key,
                d.into_new(repository.to_string(), installation),
                &reason,
            )
            .await;
            if !answer.code.is_success() {
                tracing::warn!(
                    deployment = id,
                    "deployment {id}: not queued from GitHub's answer ({}); its webhook will queue it",
                    answer.code
                );
            }
        }
        Err(e) => tracing::warn!(
            deployment = id,
            "deployment {id}: GitHub's answer is not a full deployment ({e}); its webhook will queue it"
        ),
    }
    Ok(DeploymentId(id))
}

impl GitHub {
    /// The App installation that covers `repository` (None with a token).
    pub(crate) async fn installation_for(
        &self,
        repository: &str,
    ) -> Result<Option<i64>, CallError> {
        match &self.auth {
            super::Auth::App(app) => Ok(Some(app.repository_installation(self, repository).await?)),
            super::Auth::Token(_) => Ok(None),
        }
    }
}

#[cfg(test)]
#[path = "create_tests.rs"]
mod tests;
