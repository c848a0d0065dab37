//! One look at one stored command, under its lease, step by recorded
//! step: react `eyes`; decide (the commenter's role, then the act: lock,
//! unlock, help, or a deployment created through GitHub, marked sent
//! first); post the reply (marked sent first, found again by its marker
//! after a lost answer); then, for a deployment, wait for its end and edit
//! the reply once. A step already recorded is never done again.

use std::time::Duration;

use super::Commander;
use super::parse::{Command, parse};
use crate::config::{Commands, Config};
use crate::github::{CallError, GitHub};
use crate::store::{
    CommandChange, CommandRecord, DeliveryKey, DeployRequest, DeploymentId, EnvLock, Owner, Result,
    last_good, now_ms,
};
use crate::wording::pr as words;

/// When GitHub could not be asked or did not answer: the next look.
const RETRY: Duration = Duration::from_secs(15);
/// How long a create request waits for GitHub's answer.
const CREATE_TIMEOUT: Duration = Duration::from_secs(10);
/// Deployments read for a rollback's last good version.
const HISTORY: i64 = 1000;

pub struct Look<'a> {
    pub commander: &'a Commander,
    pub owner: &'a Owner,
    pub record: CommandRecord,
}

/// What a decision came to.
enum Decided {
    /// Reply this, having made this deployment (if any).
    Reply(String, Option<DeploymentId>),
    /// `[commands]` was turned off since: nothing to say.
    Silent,
}

/// Something GitHub did not do now: looked at again later.
struct Later(String);

impl From<CallError> for Later {
    fn from(e: CallError) -> Later {
        Later(e.to_string())
    }
}

impl Look<'_> {
    pub async fn run(mut self) -> Result<()> {
        match self.steps().await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(Later(why))) => {
                let c = &self.record.command;
                tracing::warn!(repository = %c.repository,
                    "pull request #{} of {}: {:?} by {}: GitHub did not do its part ({why}); trying again in {}",
                    c.number, c.repository, c.line, c.login, crate::format::duration(RETRY));
                let at = now_ms() + RETRY.as_millis() as i64;
                self.store()
                    .command_later(self.record.seq, self.owner, at)
                    .await
                    .map(drop)
            }
            Err(e) => Err(e),
        }
    }

    fn store(&self) -> &crate::store::SharedStore {
        &self.commander.intake.store
    }

    /// Records `change`; false when the look's lease was lost (stop).
    async fn change(&mut self, change: CommandChange) -> Result<bool> {
        let held = self
            .store()
            .change_command(self.record.seq, self.owner, &change)
            .await?;
        if !held {
            tracing::debug!(
                seq = self.record.seq,
                "a pull request command's look lost its lease"
            );
        }
        let r = &mut self.record;
        r.reacted |= change.reacted;
        r.create_sent |= change.create_sent;
        r.deployment = change.deployment.or(r.deployment);
        r.reply = change.reply.or(r.reply.take());
        r.reply_sent |= change.reply_sent;
        r.reply_id = change.reply_id.or(r.reply_id);
        r.edited |= change.edited;
        Ok(held)
    }

    /// The first step, taken for every due command before any other step:
    /// `eyes` within a second of the comment, whatever the others wait
    /// for. A reaction GitHub refuses does not hold up the command. False
    /// when the lease was lost.
    pub async fn react(&mut self, github: &GitHub, installation: Option<i64>) -> Result<bool> {
        let c = self.record.command.clone();
        if let Err(e) = github
            .react_eyes(&c.repository, c.comment_id, installation)
            .await
        {
            tracing::warn!(repository = %c.repository, "pull request #{}: cannot react to comment {}: {e}", c.number, c.comment_id);
        }
        let reacted = CommandChange {
            reacted: true,
            lease_until: Some(renewed()),
            ..Default::default()
        };
        self.change(reacted).await
    }

    /// `eyes` on a command not reacted to yet (its installation as
    /// delivered or looked up); errors are the later steps' to report.
    pub async fn react_first(&mut self) {
        if self.record.reacted {
            return;
        }
        let github = self.commander.github.get();
        let c = &self.record.command;
        if let Ok(installation) = github
            .installation_of_deployment(&c.repository, c.installation_id)
            .await
        {
            let _ = self.react(&github, installation).await;
        }
    }

    async fn steps(&mut self) -> Result<std::result::Result<(), Later>> {
        let github = self.commander.github.get();
        let c = self.record.command.clone();
        let installation = match github
            .installation_of_deployment(&c.repository, c.installation_id)
            .await
        {
            Ok(i) => i,
            Err(e) => return Ok(Err(e.into())),
        };
        if !self.record.reacted && !self.react(&github, installation).await? {
            return Ok(Ok(()));
        }
        if self.record.reply.is_none() {
            let decided = match self.decide(&github, installation).await? {
                Ok(d) => d,
                Err(later) => return Ok(Err(later)),
            };
            let (reply, deployment) = match decided {
                Decided::Silent => {
                    let done = CommandChange {
                        done: true,
                        ..Default::default()
                    };
                    self.change(done).await?;
                    return Ok(Ok(()));
                }
                Decided::Reply(text, deployment) => (text, deployment),
            };
            let decided = CommandChange {
                reply: Some(reply),
                deployment,
                ..Default::default()
            };
            if !self.change(decided).await? {
                return Ok(Ok(()));
            }
        }
        if self.record.reply_id.is_none() {
            match self.post_reply(&github, installation).await? {
                Ok(true) => {}
                Ok(false) => return Ok(Ok(())),
                Err(later) => return Ok(Err(later)),
            }
        }
        self.follow_up(&github, installation).await
    }

    /// Posts the reply once: a post that may have reached GitHub is looked
    /// for by its marker before posting again. False when the lease was lost.
    async fn post_reply(
        &mut self,
        github: &GitHub,
        installation: Option<i64>,
    ) -> Result<std::result::Result<bool, Later>> {
        let c = self.record.command.clone();
        let marker = words::marker(c.comment_id);
        if self.record.reply_sent {
            match github
                .find_comment(
                    &c.repository,
                    c.number,
                    &marker,
                    self.record.created_at,
                    installation,
                )
                .await
            {
                Ok(Some(id)) => {
                    let found = CommandChange {
                        reply_id: Some(id),
                        ..Default::default()
                    };
                    return Ok(Ok(self.change(found).await?));
                }
                Ok(None) => {}
                Err(e) => return Ok(Err(e.into())),
            }
        }
        let sending = CommandChange {
            reply_sent: true,
            lease_until: Some(renewed()),
            ..Default::default()
        };
        if !self.change(sending).await? {
            return Ok(Ok(false));
        }
        let body = format!(
            "{}\n\n{marker}",
            self.record.reply.clone().unwrap_or_default()
        );
        match github
            .post_comment(&c.repository, c.number, &body, installation)
            .await
        {
            Ok(id) => {
                let posted = CommandChange {
                    reply_id: Some(id),
                    ..Default::default()
                };
                Ok(Ok(self.change(posted).await?))
            }
            Err(e) => Ok(Err(e.into())),
        }
    }

    /// After the reply: done, or (for a deployment) its end edited into
    /// the reply, or parked until it ends.
    async fn follow_up(
        &mut self,
        github: &GitHub,
        installation: Option<i64>,
    ) -> Result<std::result::Result<(), Later>> {
        let done = CommandChange {
            done: true,
            ..Default::default()
        };
        if self.record.deployment.is_none() || self.record.edited {
            self.change(done).await?;
            return Ok(Ok(()));
        }
        let ended = match self.record.final_text.clone() {
            Some(text) => Some(text),
            // It may have ended before this command knew its id.
            None => match self.record.deployment {
                Some(id) => super::ends::ended_text(self.store(), id).await?,
                None => None,
            },
        };
        let Some(ended) = ended else {
            self.store()
                .park_command(self.record.seq, self.owner)
                .await?;
            return Ok(Ok(()));
        };
        let c = self.record.command.clone();
        let body = format!(
            "{}\n\n{ended}\n\n{}",
            self.record.reply.clone().unwrap_or_default(),
            words::marker(c.comment_id)
        );
        let reply_id = self.record.reply_id.unwrap_or_default();
        if let Err(e) = github
            .edit_comment(&c.repository, reply_id, &body, installation)
            .await
        {
            return Ok(Err(e.into()));
        }
        let edited = CommandChange {
            edited: true,
            done: true,
            ..Default::default()
        };
        self.change(edited).await?;
        Ok(Ok(()))
    }

    /// What the command comes to: the commenter's role first, then the act.
    async fn decide(
        &mut self,
        github: &GitHub,
        installation: Option<i64>,
    ) -> Result<std::result::Result<Decided, Later>> {
        let config = self.commander.intake.config.get();
        let c = self.record.command.clone();
        let Some(commands) = config.commands.clone() else {
            return Ok(Ok(Decided::Silent));
        };
        let command = match parse(&commands.prefix, &c.line) {
            None => return Ok(Ok(Decided::Silent)),
            Some(Err(usage)) => {
                let help = words::help(&commands, &environments(&config, &c.repository));
                return Ok(Ok(Decided::Reply(
                    format!("@{}: {usage}\n\n{help}", c.login),
                    None,
                )));
            }
            Some(Ok(command)) => command,
        };
        let role = match github.role_of(&c.repository, &c.login, installation).await {
            Ok(role) => role,
            Err(e) => return Ok(Err(e.into())),
        };
        if role.is_none_or(|r| r < commands.permission) {
            let text = words::needs_role(
                &c.login,
                commands.permission.as_str(),
                &c.repository,
                &format!("{}{}", commands.prefix, command.word()),
            );
            tracing::info!(repository = %c.repository, actor = %c.login,
                "pull request #{} of {}: {:?} refused: {text}", c.number, c.repository, c.line);
            return Ok(Ok(Decided::Reply(text, None)));
        }
        let environment = match &command {
            Command::Help => {
                let text = words::help(&commands, &environments(&config, &c.repository));
                return Ok(Ok(Decided::Reply(text, None)));
            }
            Command::Deploy(e) => e.clone().unwrap_or(commands.default_environment.clone()),
            Command::Rollback(e) | Command::Unlock(e) | Command::Lock { environment: e, .. } => {
                e.clone()
            }
        };
        if !config.owns_environment(&c.repository, &environment) {
            let text = words::unknown_environment(
                &c.login,
                &c.repository,
                &environment,
                &environments(&config, &c.repository),
            );
            return Ok(Ok(Decided::Reply(text, None)));
        }
        Ok(match command {
            Command::Lock { reason, .. } => Ok(self.lock(&environment, &reason).await?),
            Command::Unlock(_) => Ok(self.unlock(&config, &environment).await?),
            Command::Deploy(_) => {
                self.deploy(github, installation, &commands, &environment)
                    .await?
            }
            Command::Rollback(_) => self.rollback(github, installation, &environment).await?,
            Command::Help => unreachable!("answered above"),
        })
    }

    async fn lock(&self, environment: &str, reason: &str) -> Result<Decided> {
        let c = &self.record.command;
        let lock = EnvLock {
            repository: c.repository.clone(),
            environment: environment.to_string(),
            holder: c.login.clone(),
            reason: reason.to_string(),
            since: now_ms(),
            until: None,
        };
        let text = match self.store().lock(&lock).await? {
            // Held by the commenter already: this command's own lock,
            // taken by a look that did not get to record its reply.
            Some(held) if held.holder != c.login => {
                words::already_locked(&c.login, environment, &held)
            }
            _ => {
                tracing::info!(actor = %c.login, repository = %c.repository, environment,
                    "{} locked {}:{environment}{} (pull request #{})", c.login, c.repository,
                    if reason.is_empty() { String::new() } else { format!(": {reason}") }, c.number);
                words::locked(&c.login, environment, reason, &self.prefix())
            }
        };
        Ok(Decided::Reply(text, None))
    }

    fn prefix(&self) -> String {
        self.commander
            .intake
            .config
            .get()
            .commands
            .as_ref()
            .map_or(".".into(), |c| c.prefix.clone())
    }

    async fn unlock(&self, config: &Config, environment: &str) -> Result<Decided> {
        let c = &self.record.command;
        let store = self.store();
        let lock = store.unlock(&c.repository, environment, &c.login).await?;
        let holds = store.release_holds(&c.repository, environment).await?;
        let freezes = crate::admission::freeze::lift(
            store,
            &config.freezes,
            &c.repository,
            environment,
            &c.login,
        )
        .await?;
        let mut lifted: Vec<String> = freezes
            .iter()
            .filter(|l| l.new)
            .map(|l| format!("freeze {} until {}", l.freeze, l.until))
            .collect();
        if let Some(was) = &lock {
            lifted.push(format!("the lock of {}", was.holder));
        }
        for h in &holds {
            lifted.push(format!(
                "the hold on deployment {}'s step on {}",
                h.deployment,
                h.host()
            ));
        }
        if lifted.is_empty() {
            return Ok(Decided::Reply(
                words::not_locked(&c.login, environment),
                None,
            ));
        }
        self.commander.intake.runner.notify_one();
        tracing::info!(actor = %c.login, repository = %c.repository, environment,
            "{} unlocked {}:{environment} ({}) (pull request #{})",
            c.login, c.repository, lifted.join(", "), c.number);
        Ok(Decided::Reply(
            words::unlocked(&c.login, environment, &lifted),
            None,
        ))
    }

    async fn deploy(
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

    async fn rollback(
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
        Ok(match self.create(github, installation, &request).await? {
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
        let asked = tokio::time::timeout(
            CREATE_TIMEOUT,
            github.create_deployment(q, installation, CREATE_TIMEOUT),
        )
        .await;
        Ok(match asked {
            Ok(Ok(created)) => self.queue(&key, q, installation, created).await.map(Ok),
            Ok(Err(CallError::Permanent { reason }))
                if !reason.starts_with("401") && !reason.starts_with("403") =>
            {
                Ok(Err(reason))
            }
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(Later("no answer from GitHub in time".into())),
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
            && created / 1000 >= self.record.created_at / 1000
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

/// The end of a lease renewed now.
fn renewed() -> i64 {
    now_ms() + super::LEASE.as_millis() as i64
}

/// The environments the repository's targets deploy to, as written
/// (patterns too), each once.
fn environments(config: &Config, repository: &str) -> Vec<String> {
    let mut all: Vec<String> = Vec::new();
    for t in config.targets.iter().filter(|t| t.repository == repository) {
        if !all.contains(&t.environment) {
            all.push(t.environment.clone());
        }
    }
    all
}
