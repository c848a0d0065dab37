//! `.deploy` and `.rollback`: a deployment created through GitHub, once.
//! The creation is marked sent before GitHub is asked; a look after a lost
//! answer finds the deployment on GitHub (its sha, environment and
//! description, created since the command) before asking again.

use super::act::{Decided, Later, Look, renewed};
use crate::config::Commands;
use crate::github::GitHub;
use crate::github::create::Asked;
use crate::store::{CommandChange, DeliveryKey, DeployRequest, DeploymentId, Result, last_good};
use crate::wording::pr as words;

/// Deployments read for a rollback's last good version.
const HISTORY: i64 = 1000;

impl Look<'_> {
    pub(super) async fn deploy(
        &mut self,
        github: &GitHub,
        installation: Option<i64>,
        commands: &Commands,
        environment: &str,
    ) -> Result<std::result::Result<Decided, Later>> {
        let c = self.record.command.clone();
        let pr = match github
            .pull_request(&c.repository, c.number, installation)
            .await
        {
            Ok(pr) => pr,
            Err(e) => return Ok(Err(e.into())),
        };
        if pr.state != "open" {
            return Ok(Ok(Decided::Reply(words::closed(&c.login, c.number), None)));
        }
        if pr.is_fork() && !commands.allow_forks {
            let fork = pr
                .head_repository
                .clone()
                .unwrap_or_else(|| "a fork".into());
            return Ok(Ok(Decided::Reply(
                words::fork(&c.login, c.number, &fork),
                None,
            )));
        }
        let request = DeployRequest {
            actor: c.login.clone(),
            repository: c.repository.clone(),
            environment: environment.to_string(),
            git_ref: pr.head_sha.clone(),
            task: crate::config::DEFAULT_TASK.to_string(),
            payload: serde_json::json!({"pull_request": c.number, "requested_by": c.login})
                .to_string(),
            description: words::deploy_description(c.number, &c.login),
            // GitHub checks its required contexts; its 409 is quoted.
            skip_contexts: false,
            production: None,
            transient: None,
            rollback_of: None,
        };
        Ok(match self.create(github, installation, &request).await? {
            Ok(Ok(id)) => Ok(Decided::Reply(
                words::deploying(
                    &c.login,
                    &pr.head_sha,
                    c.number,
                    environment,
                    id,
                    &self.commander.logs.url(id),
                ),
                Some(id),
            )),
            Ok(Err(refused)) => Ok(Decided::Reply(words::refused(&c.login, &refused), None)),
            Err(later) => Err(later),
        })
    }

    pub(super) async fn rollback(
        &mut self,
        github: &GitHub,
        installation: Option<i64>,
        environment: &str,
    ) -> Result<std::result::Result<Decided, Later>> {
        let c = self.record.command.clone();
        let history = self
            .store()
            .history(&c.repository, environment, HISTORY)
            .await?;
        let Some(good) = last_good(&history).cloned() else {
            return Ok(Ok(Decided::Reply(
                words::nothing_to_roll_back(&c.login, environment),
                None,
            )));
        };
        let request = DeployRequest {
            actor: c.login.clone(),
            repository: c.repository.clone(),
            environment: environment.to_string(),
            git_ref: good.sha.clone(),
            task: good.task.clone(),
            payload: good.payload.clone(),
            description: crate::wording::rollback_by(&good.sha, good.id, &c.login),
            skip_contexts: true,
            production: Some(good.production),
            transient: Some(good.transient),
            rollback_of: Some(good.id),
        };
        let created = self.create(github, installation, &request).await?;
        if let Ok(Ok(id)) = &created {
            crate::github::create::record_rollback(self.store(), *id).await;
        }
        Ok(match created {
            Ok(Ok(id)) => Ok(Decided::Reply(
                words::rolling_back(
                    &c.login,
                    environment,
                    &good.sha,
                    good.id,
                    id,
                    &self.commander.logs.url(id),
                ),
                Some(id),
            )),
            Ok(Err(refused)) => Ok(Decided::Reply(words::refused(&c.login, &refused), None)),
            Err(later) => Err(later),
        })
    }

    /// Creates the deployment once: a creation that may have reached
    /// GitHub is looked for first. The new deployment's id, or GitHub's
    /// refusal in its words.
    async fn create(
        &mut self,
        github: &GitHub,
        installation: Option<i64>,
        q: &DeployRequest,
    ) -> Result<std::result::Result<std::result::Result<DeploymentId, String>, Later>> {
        let key = DeliveryKey {
            hook_id: "ferry".into(),
            delivery_id: format!("command-{}", self.record.seq),
        };
        if self.record.create_sent {
            let found = github
                .find_deployment(&q.repository, &q.git_ref, &q.environment, installation)
                .await;
            match found {
                Ok(Some(d)) if self.made_by_this_command(&d, q) => {
                    return Ok(self.queue(&key, q, installation, d).await.map(Ok));
                }
                Ok(_) => {}
                Err(e) => return Ok(Err(e.into())),
            }
        }
        let sending = CommandChange {
            create_sent: true,
            lease_until: Some(renewed()),
            ..Default::default()
        };
        if !self.change(sending).await? {
            return Ok(Err(Later("another ferry took this command over".into())));
        }
        Ok(match github.ask_to_create(q, installation).await {
            Asked::Created(created) => self.queue(&key, q, installation, created).await.map(Ok),
            Asked::Refused(reason) => Ok(Err(reason)),
            Asked::NotNow(why) => Err(Later(why)),
        })
    }

    /// Whether GitHub's deployment `d` is the one this command asked for:
    /// its description, created since the command was.
    fn made_by_this_command(&self, d: &serde_json::Value, q: &DeployRequest) -> bool {
        let created = d["created_at"]
            .as_str()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .map_or(0, |t| t.as_millisecond());
        d["description"].as_str() == Some(q.description.as_str())
            && created / 1000 >= self.record.created_at.as_millis() / 1000
    }

    async fn queue(
        &self,
        key: &DeliveryKey,
        q: &DeployRequest,
        installation: Option<i64>,
        created: serde_json::Value,
    ) -> std::result::Result<DeploymentId, Later> {
        let c = &self.record.command;
        let id = crate::github::create::queue_created(
            &self.commander.intake,
            key,
            &q.repository,
            installation,
            created,
        )
        .await
        .map_err(Later)?;
        tracing::info!(actor = %c.login, deployment = %id, repository = %c.repository,
            environment = %q.environment,
            "pull request #{} of {}: {:?} by {}: created deployment {id}",
            c.number, c.repository, c.line, c.login);
        Ok(id)
    }
}
