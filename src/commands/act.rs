//! One look at one stored command, under its lease, step by recorded
//! step: react `eyes`; decide (the commenter's role, then the act: lock,
//! unlock, help, or a deployment created through GitHub, marked sent
//! first); post the reply (marked sent first, found again by its marker
//! after a lost answer); then, for a deployment, wait for its end and edit
//! the reply once. A step already recorded is never done again.

use std::time::Duration;

use super::Commander;
use super::parse::{Command, parse};
use crate::config::Config;
use crate::github::{CallError, GitHub};
use crate::store::{CommandChange, CommandRecord, DeploymentId, Owner, Result, Timestamp};
use crate::wording::pr as words;

/// When GitHub could not be asked or did not answer: the next look.
const RETRY: Duration = Duration::from_secs(15);

pub struct Look<'a> {
    pub commander: &'a Commander,
    pub owner: &'a Owner,
    pub record: CommandRecord,
}

/// What a decision came to.
pub(super) enum Decided {
    /// Reply this, having made this deployment (if any).
    Reply(String, Option<DeploymentId>),
    /// `[commands]` was turned off since: nothing to say.
    Silent,
}

/// Something GitHub did not do now: looked at again later.
pub(super) struct Later(pub(super) String);

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
                let at = Timestamp::now() + RETRY;
                self.store()
                    .command_later(self.record.seq, self.owner, at)
                    .await
                    .map(drop)
            }
            Err(e) => Err(e),
        }
    }

    pub(super) fn store(&self) -> &crate::store::SharedStore {
        &self.commander.intake.store
    }

    /// Records `change`; false when the look's lease was lost (stop).
    pub(super) async fn change(&mut self, change: CommandChange) -> Result<bool> {
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
            Command::Lock { reason, .. } => {
                Ok(self.lock(&environment, &reason, &commands.prefix).await?)
            }
            Command::Unlock(_) => Ok(self.unlock(&config, &environment).await?),
            Command::Deploy(_) => {
                self.deploy(github, installation, &commands, &environment)
                    .await?
            }
            Command::Rollback(_) => self.rollback(github, installation, &environment).await?,
            Command::Help => unreachable!("answered above"),
        })
    }
}

/// The end of a lease renewed now.
pub(super) fn renewed() -> Timestamp {
    Timestamp::now() + super::LEASE
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
