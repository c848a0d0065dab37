//! What ferry replies to commands in pull request comments (Markdown).

use crate::config::Commands;
use crate::format::short_sha;
use crate::store::{DeploymentId, EnvLock};

/// The hidden line in each reply that finds it again after a post whose
/// answer was lost: one per comment.
pub fn marker(comment_id: i64) -> String {
    format!("<!-- ferry: reply to comment {comment_id} -->")
}

/// A deployment's description on GitHub.
pub fn deploy_description(number: i64, login: &str) -> String {
    format!("Deploy of #{number} by @{login}")
}

/// Below `[commands] permission`.
pub fn needs_role(login: &str, role: &str, repository: &str, command: &str) -> String {
    format!("@{login} needs {role} access to {repository} to run {command}")
}

/// `.help`, and the tail of a reply to a command word used wrongly.
pub fn help(commands: &Commands, environments: &[String]) -> String {
    let p = &commands.prefix;
    format!(
        "Commands (first line of a comment):\n\
         - `{p}deploy`: deploy this pull request's head to {default}\n\
         - `{p}deploy to ENV`: deploy it to ENV\n\
         - `{p}rollback ENV`: put ENV's last good version back\n\
         - `{p}lock ENV [REASON]`: hold ENV's deployments\n\
         - `{p}unlock ENV`: lift ENV's lock or freeze\n\
         - `{p}help`: this\n\n\
         Environments: {envs}. Needs {role} access.",
        default = commands.default_environment,
        envs = environments.join(", "),
        role = commands.permission.as_str(),
    )
}

pub fn unknown_environment(
    login: &str,
    repository: &str,
    environment: &str,
    known: &[String],
) -> String {
    format!(
        "@{login}: no target of {repository} deploys to `{environment}`; it deploys to {}.",
        known.join(", ")
    )
}

pub fn closed(login: &str, number: i64) -> String {
    format!("@{login}: not deployed: #{number} is closed.")
}

pub fn fork(login: &str, number: i64, fork: &str) -> String {
    format!(
        "@{login}: not deployed: the head of #{number} is in a fork ({fork}); ferry deploys a fork's code only with `allow_forks`."
    )
}

/// GitHub refused the deployment (`409` when checks fail), quoted.
pub fn refused(login: &str, why: &str) -> String {
    format!("@{login}: GitHub refused the deployment:\n\n> {why}")
}

pub fn deploying(
    login: &str,
    sha: &str,
    number: i64,
    environment: &str,
    id: DeploymentId,
    log_url: &str,
) -> String {
    format!(
        "@{login}: deploying `{}` (the head of #{number}) to **{environment}**: deployment {id} ([log]({log_url})).",
        short_sha(sha)
    )
}

pub fn rolling_back(
    login: &str,
    environment: &str,
    sha: &str,
    good: DeploymentId,
    id: DeploymentId,
    log_url: &str,
) -> String {
    format!(
        "@{login}: rolling **{environment}** back to `{}` (deployment {good}): deployment {id} ([log]({log_url})).",
        short_sha(sha)
    )
}

pub fn nothing_to_roll_back(login: &str, environment: &str) -> String {
    format!(
        "@{login}: nothing to roll back to: no deployment of {environment} succeeded with a sha other than its newest."
    )
}

pub fn locked(login: &str, environment: &str, reason: &str, prefix: &str) -> String {
    let why = if reason.is_empty() {
        String::new()
    } else {
        format!(": {reason}")
    };
    format!(
        "@{login} locked **{environment}**{why}. Its deployments wait until `{prefix}unlock {environment}`; one running now finishes."
    )
}

pub fn already_locked(login: &str, environment: &str, held: &EnvLock) -> String {
    let why = if held.reason.is_empty() {
        String::new()
    } else {
        format!(": {}", held.reason)
    };
    format!(
        "@{login}: {environment} is already locked by {}{why}.",
        held.holder
    )
}

pub fn unlocked(login: &str, environment: &str, lifted: &[String]) -> String {
    format!(
        "@{login} unlocked **{environment}** (lifted {}); its waiting deployment starts.",
        lifted.join(", ")
    )
}

pub fn not_locked(login: &str, environment: &str) -> String {
    format!("@{login}: {environment} is not locked: nothing to lift.")
}

/// The line a reply gets when its deployment ended.
pub fn ended(state: &str, description: &str, took: Option<&str>) -> String {
    let took = took.map_or(String::new(), |t| format!(" (took {t})"));
    format!("Ended **{state}**: {description}{took}")
}
