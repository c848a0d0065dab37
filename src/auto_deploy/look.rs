//! One look at one due candidate, under its lease: whether GitHub already
//! has its deployment (a creation sent before), whether the environment
//! already has the sha, whether its checks passed (a branch's head) or it
//! stayed good through its soak (a promotion); then its deployment is
//! created, once. Each decision is a line in the journal.

use std::time::Duration;

use super::Deployer;
use crate::admission::required_checks::{LOOK_EVERY, Verdict, decide};
use crate::config::Target;
use crate::github::GitHub;
use crate::github::create::Asked;
use crate::store::{
    Candidate, CandidateSource, CandidateState, DeliveryKey, DeployRequest, DeploymentId, Owner,
    Result, State, Timestamp,
};
use crate::wording;

/// When GitHub could not be asked or did not answer: the next look.
const RETRY: Duration = Duration::from_secs(30);

pub(super) struct Look<'a> {
    pub deployer: &'a Deployer,
    pub owner: &'a Owner,
    pub candidate: &'a Candidate,
}

impl Look<'_> {
    pub async fn run(&self) -> Result<()> {
        let c = &self.candidate.offer;
        let config = self.deployer.intake.config.get();
        let Some(target) = super::target_of(&config, &c.repository, &c.environment) else {
            return self.drop("no target auto-deploys it any more").await;
        };
        let github = self.deployer.github.get();
        let installation = match github
            .installation_of_deployment(&c.repository, c.installation_id)
            .await
        {
            Ok(i) => i,
            Err(e) => return self.retry(&e.to_string()).await,
        };
        if self.candidate.sent {
            // GitHub may have it from a try whose answer was lost.
            match github
                .find_deployment(&c.repository, &c.sha, &c.environment, installation)
                .await
            {
                Ok(Some(found)) => return self.created(found, installation).await,
                Ok(None) => {}
                Err(e) => return self.retry(&e.to_string()).await,
            }
        }
        let store = &self.deployer.intake.store;
        if let Some(newest) = store
            .history(&c.repository, &c.environment, 1)
            .await?
            .first()
            && newest.sha == c.sha
        {
            return self
                .drop(&wording::already_newest(&c.environment, newest.id))
                .await;
        }
        let ready = match &c.source {
            CandidateSource::Branch(_) => self.checks_passed(target, &github, installation).await?,
            CandidateSource::Promotion {
                environment,
                deployment,
            } => self.still_good(environment, *deployment).await?,
        };
        if ready {
            self.create(target, &github, installation).await?;
        }
        Ok(())
    }

    /// A branch's head: its target's required checks, as a deployment's
    /// gate reads them. True when they passed; otherwise the candidate is
    /// dropped or looked at again, and false.
    async fn checks_passed(
        &self,
        target: &Target,
        github: &GitHub,
        installation: Option<i64>,
    ) -> Result<bool> {
        let c = &self.candidate.offer;
        if target.require_checks.is_empty() {
            return Ok(true);
        }
        let deadline = self.candidate.created_at + target.checks_timeout;
        let timed_out =
            |name: &str| wording::required_check_timed_out(name, &c.sha, target.checks_timeout);
        let first = target.require_checks.first().map_or("*", String::as_str);
        let reported = match github
            .commit_checks(&c.repository, &c.sha, installation)
            .await
        {
            Ok(r) => r,
            Err(_) if Timestamp::now() >= deadline => {
                self.drop(&timed_out(first)).await?;
                return Ok(false);
            }
            Err(e) => {
                tracing::warn!(repository = %c.repository, environment = %c.environment,
                    "auto-deploy of {} to {}:{}: cannot read its checks: {e}",
                    c.sha, c.repository, c.environment);
                self.later(LOOK_EVERY).await?;
                return Ok(false);
            }
        };
        match decide(&target.require_checks, &reported) {
            Verdict::Passed => Ok(true),
            Verdict::Failed(name) => {
                self.drop(&wording::required_check_failed(&name, &c.sha))
                    .await?;
                Ok(false)
            }
            Verdict::Pending(names) if Timestamp::now() >= deadline => {
                self.drop(&timed_out(names.first().map_or(first, String::as_str)))
                    .await?;
                Ok(false)
            }
            Verdict::Pending(_) => {
                // The timeout is looked at when it falls, not a round later.
                let next = (Timestamp::now() + LOOK_EVERY).min(deadline);
                let owner = self.owner;
                self.deployer
                    .intake
                    .store
                    .candidate_later(self.candidate.seq, owner, next)
                    .await?;
                Ok(false)
            }
        }
    }

    /// A promotion after its soak: the deployment it promotes is still
    /// the newest to have ended where it succeeded. False (and dropped)
    /// when a later one ended there since.
    async fn still_good(&self, from: &str, deployment: DeploymentId) -> Result<bool> {
        let c = &self.candidate.offer;
        let history = self
            .deployer
            .intake
            .store
            .history(&c.repository, from, 50)
            .await?;
        let newest = history
            .iter()
            .find(|d| d.finished_at.is_some() && d.state != State::Inactive);
        match newest {
            Some(d) if d.id == deployment && d.state == State::Success => Ok(true),
            other => {
                let why = wording::promotion_overtaken(
                    from,
                    deployment,
                    other.map(|d| (d.id, d.state.as_str())),
                );
                self.drop(&why).await?;
                Ok(false)
            }
        }
    }

    /// Asks GitHub for the deployment, marked as sent first: whoever looks
    /// next, after a crash or a lost answer, asks GitHub before sending
    /// again.
    async fn create(
        &self,
        target: &Target,
        github: &GitHub,
        installation: Option<i64>,
    ) -> Result<()> {
        let c = &self.candidate.offer;
        let store = &self.deployer.intake.store;
        let until = Timestamp::now() + super::LEASE;
        if !store
            .candidate_sending(self.candidate.seq, self.owner, until)
            .await?
        {
            return Ok(());
        }
        let description = match &c.source {
            CandidateSource::Branch(branch) => wording::auto_deploy_of(branch, &c.sha),
            CandidateSource::Promotion { environment, .. } => {
                wording::promotion_of(&c.sha, environment)
            }
        };
        let request = DeployRequest {
            actor: "ferry".into(),
            repository: c.repository.clone(),
            environment: c.environment.clone(),
            git_ref: c.sha.clone(),
            task: target.task.clone(),
            payload: "{}".into(),
            description,
            // Checked already (a branch), or by the deployment's own gate.
            skip_contexts: true,
            production: None,
            transient: None,
            rollback_of: None,
        };
        match github.ask_to_create(&request, installation).await {
            Asked::Created(created) => self.created(created, installation).await,
            Asked::Refused(reason) => {
                self.drop(&format!("GitHub refused to create it: {reason}"))
                    .await
            }
            Asked::NotNow(why) => self.retry(&why).await,
        }
    }

    /// GitHub has the deployment: queued here at once, and the candidate
    /// ends.
    async fn created(&self, found: serde_json::Value, installation: Option<i64>) -> Result<()> {
        let c = &self.candidate.offer;
        let key = DeliveryKey {
            hook_id: "ferry".into(),
            delivery_id: format!("candidate-{}", self.candidate.seq),
        };
        let id = match crate::github::create::queue_created(
            &self.deployer.intake,
            &key,
            &c.repository,
            installation,
            found,
        )
        .await
        {
            Ok(id) => id,
            Err(why) => return self.retry(&why).await,
        };
        if self.settle(CandidateState::Created(id)).await? {
            tracing::info!(deployment = %id, repository = %c.repository, environment = %c.environment,
                sha = %c.sha, "{}: created as deployment {id}", self.what());
        }
        Ok(())
    }

    /// The candidate ends without a deployment, saying why.
    async fn drop(&self, why: &str) -> Result<()> {
        let c = &self.candidate.offer;
        if self
            .settle(CandidateState::Dropped(why.to_string()))
            .await?
        {
            tracing::info!(repository = %c.repository, environment = %c.environment,
                sha = %c.sha, "{}: not deployed: {why}", self.what());
        }
        Ok(())
    }

    /// Whether it ended now (not under another process's lease).
    async fn settle(&self, end: CandidateState) -> Result<bool> {
        self.deployer
            .intake
            .store
            .settle_candidate(self.candidate.seq, self.owner, &end)
            .await
    }

    async fn later(&self, after: Duration) -> Result<()> {
        let at = Timestamp::now() + after;
        self.deployer
            .intake
            .store
            .candidate_later(self.candidate.seq, self.owner, at)
            .await
            .map(drop)
    }

    /// GitHub could not be asked or did not answer: looked at again later.
    async fn retry(&self, why: &str) -> Result<()> {
        tracing::warn!(repository = %self.candidate.offer.repository,
            environment = %self.candidate.offer.environment,
            "{}: GitHub could not be asked ({why}); trying again in {}",
            self.what(), crate::format::duration(RETRY));
        self.later(RETRY).await
    }

    /// "auto-deploy of main at abc1234 to octo-org/web:staging".
    fn what(&self) -> String {
        let c = &self.candidate.offer;
        let sha = crate::format::short_sha(&c.sha);
        let to = format!("{}:{}", c.repository, c.environment);
        match &c.source {
            CandidateSource::Branch(b) => format!("auto-deploy of {b} at {sha} to {to}"),
            CandidateSource::Promotion { environment, .. } => {
                format!("promotion of {sha} from {environment} to {to}")
            }
        }
    }
}
