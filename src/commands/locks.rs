//! `.lock` and `.unlock`: as `ferry lock` and `ferry unlock`, acting as
//! the commenter (the lock's holder, the unlock event and the journal's
//! `ACTOR` name their login).

use super::act::{Decided, Look};
use crate::config::Config;
use crate::store::{EnvLock, Result, Timestamp};
use crate::wording::pr as words;

impl Look<'_> {
    /// `prefix` is `[commands] prefix`, for the reply's `.unlock` hint.
    pub(super) async fn lock(
        &self,
        environment: &str,
        reason: &str,
        prefix: &str,
    ) -> Result<Decided> {
        let c = &self.record.command;
        let lock = EnvLock {
            repository: c.repository.clone(),
            environment: environment.to_string(),
            holder: c.login.clone(),
            reason: reason.to_string(),
            since: Timestamp::now(),
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
                words::locked(&c.login, environment, reason, prefix)
            }
        };
        Ok(Decided::Reply(text, None))
    }

    pub(super) async fn unlock(&self, config: &Config, environment: &str) -> Result<Decided> {
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
}
