//! An `issue_comment` whose first line is a command (`.deploy`), on a pull
//! request of a repository a target names, with `[commands]` set: stored
//! once by its comment id (`202`); the commander acts on it. Everything
//! else is `200` and nothing: edits and deletions, issues' comments,
//! bots, look-alikes, a comment delivered again.

use super::event::IssueCommentEvent;
use super::{Answer, Intake};
use crate::commands::parse::{MAX_LINE, parse};
use crate::store::NewCommand;

const EVENT: &str = "issue_comment";

pub async fn commented(app: &Intake, e: IssueCommentEvent) -> Answer {
    let config = app.config.get();
    let repository = config.repository_as_configured(&e.repository.full_name);
    let repository = repository.as_str();
    let Some(commands) = &config.commands else {
        return Answer::ignored(EVENT, "ignored: no [commands] in the config");
    };
    if e.action != "created" {
        return Answer::ignored(
            EVENT,
            format!(
                "ignored: only new comments are commands (got {:?})",
                e.action
            ),
        );
    }
    if e.issue.pull_request.is_none() {
        return Answer::ignored(EVENT, "ignored: a comment on an issue, not a pull request");
    }
    if e.comment.user.kind == "Bot" {
        return Answer::ignored(EVENT, "ignored: a bot's comment");
    }
    if !config.targets.iter().any(|t| t.repository == repository) {
        return Answer::ignored(EVENT, format!("ignored: no target names {repository}"));
    }
    let body = e.comment.body.unwrap_or_default();
    if parse(&commands.prefix, &body).is_none() {
        return Answer::ignored(EVENT, "ignored: not a command");
    }
    // The first line only, and no more of it than makes "too long" clear.
    let line: String = body
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .chars()
        .take(MAX_LINE + 1)
        .collect();
    let command = NewCommand {
        repository: repository.to_string(),
        comment_id: e.comment.id,
        number: e.issue.number,
        login: e.comment.user.login.clone(),
        line,
        installation_id: e.installation.as_ref().map(|i| i.id),
    };
    match super::deployment::within_deadline(app.store.record_command(&command)).await {
        Ok(false) => Answer::ignored(
            EVENT,
            format!("ignored: comment {} was taken before", e.comment.id),
        ),
        Ok(true) => {
            tracing::info!(actor = %command.login, repository,
                "pull request #{} of {repository}: {:?} by {}", command.number, command.line, command.login);
            app.commands.notify_one();
            app.accepted(
                EVENT,
                format!(
                    "command from @{} on #{} taken",
                    command.login, command.number
                ),
            )
        }
        Err(e) => {
            tracing::error!(error = %e, repository, "cannot store a command of {repository}: {e}");
            Answer::unavailable(EVENT)
        }
    }
}
