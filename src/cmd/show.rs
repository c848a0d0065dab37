//! `ferry show ID`: one deployment's whole story, for the incident channel: its fields, its log link, every status in order with its time and whether GitHub has it yet (and if not, why), and who acted on it.

use anyhow::bail;

use super::ConfigArg;
use super::output::{clock, deployment_json};
use super::steering::{open_store, where_stored};
use crate::config::Steering;
use crate::format::duration;
use crate::store::{
    DeploymentId, NotificationRecord, NotificationState, OperatorAction, StatusRecord, Timestamp,
};

/// One deployment: its fields, log link, statuses (and whether GitHub
/// has each yet) and who acted on it.
#[derive(clap::Args)]
pub struct Show {
    /// Deployment id (a teardown's is negative).
    #[arg(allow_negative_numbers = true)]
    id: i64,
    #[command(flatten)]
    config: ConfigArg,
    /// One JSON object.
    #[arg(long)]
    json: bool,
}

impl Show {
    pub async fn run(self) -> anyhow::Result<()> {
        show(&self.config.load_for_store()?, self.id, self.json).await
    }
}

/// Where a status stands with GitHub, in words; `None` once GitHub has it.
/// `serving`: whether any ferry runs to send it (the store's heartbeat);
/// `behind`: an earlier status of the deployment that GitHub must get first.
pub fn not_on_github(
    s: &StatusRecord,
    now: Timestamp,
    serving: bool,
    behind: Option<&StatusRecord>,
) -> Option<String> {
    if s.sent_at.is_some() {
        return None;
    }
    let error = s.last_error.as_deref().unwrap_or_default();
    if s.failed_at.is_some() {
        return Some(if error.is_empty() {
            "never: ferry gave up on it".to_string()
        } else {
            format!("never: {error}")
        });
    }
    let when = if !serving {
        "no ferry is running to send it".to_string()
    } else if s.next_attempt_at > now {
        format!("next try at {}", clock(s.next_attempt_at))
    } else {
        "due now".to_string()
    };
    if s.in_doubt {
        return Some(format!(
            "in doubt: sent without an answer; ferry reads GitHub's statuses before sending it again ({when})"
        ));
    }
    Some(match (s.attempts, error.is_empty()) {
        (0, _) if let Some(first) = behind => format!(
            "not yet: goes after {} (a deployment's statuses reach GitHub in order)",
            first.state.as_str()
        ),
        (0, _) => format!("not yet: waiting its turn ({when})"),
        (n, true) => format!("not yet: {} so far; {when}", tries(n)),
        (n, false) => {
            let rate_limited = error.to_ascii_lowercase().contains("rate limit")
                || error.starts_with("429")
                || error.starts_with("403");
            let why = if crate::wording::is_unreached(error) {
                error.to_string()
            } else if rate_limited {
                format!("rate limited ({error})")
            } else {
                format!("GitHub answered {error}")
            };
            format!("not yet: {why}; {} so far; {when}", tries(n))
        }
    })
}

fn tries(n: i64) -> String {
    if n == 1 {
        "1 try".into()
    } else {
        format!("{n} tries")
    }
}

/// The earliest status before the `i`th that GitHub does not have yet and
/// ferry still means to send: the `i`th waits for it.
fn waiting_before(statuses: &[StatusRecord], i: usize) -> Option<&StatusRecord> {
    statuses[..i]
        .iter()
        .find(|p| p.sent_at.is_none() && p.failed_at.is_none())
}

/// A status as `show --json` writes it: null where a field does not apply.
fn status_json(
    s: &StatusRecord,
    now: Timestamp,
    serving: bool,
    behind: Option<&StatusRecord>,
) -> serde_json::Value {
    let waiting = s.sent_at.is_none() && s.failed_at.is_none();
    serde_json::json!({
        "state": s.state.as_str(),
        "description": s.description,
        "queued_at": clock(s.created_at),
        "on_github": s.sent_at.is_some(),
        "sent_at": s.sent_at.map(clock),
        "attempts": s.attempts,
        "next_try_at": waiting.then(|| clock(s.next_attempt_at.max(now))),
        "last_error": s.last_error.as_deref().filter(|e| !e.is_empty() && s.sent_at.is_none()),
        "pending": not_on_github(s, now, serving, behind),
    })
}

pub async fn show(c: &Steering, id: i64, json: bool) -> anyhow::Result<()> {
    let id = DeploymentId(id);
    let store = open_store(c).await?.store;
    let Some(d) = store.get(id).await? else {
        bail!("{}", crate::wording::no_deployment(id, &where_stored(c)));
    };
    let statuses = store.statuses_of(id).await?;
    let actions = store.actions_on(id).await?;
    let notifications = store.notifications_of(id).await?;
    // A teardown is ferry's own job, started by a closed pull request,
    // its timer or `ferry teardown`: its description says which.
    let origin = match d.teardown_of {
        None => Some(store.origin(id).await?),
        Some(_) => None,
    };
    let log_url = statuses.iter().rev().find_map(|s| s.log_url.clone());
    // Its commit's time, once the running ferry read it (delivery metrics).
    let committed_at = store.ended(id).await?.and_then(|e| e.committed_at);
    let now = Timestamp::now();
    // Whether a ferry runs to send what is still waiting: asked of the
    // store once, and only when something waits.
    let all_sent = statuses.iter().all(|s| s.sent_at.is_some());
    let all_done = notifications
        .iter()
        .all(|n| n.state != NotificationState::Pending);
    let running = !(all_sent && all_done) && crate::store::daemons::running(&*store).await;
    let (serving, notifying) = (all_sent || running, all_done || running);
    if json {
        let mut line = deployment_json(&d);
        let extra = serde_json::json!({
            "production": d.production,
            "transient": d.transient,
            "log_url": log_url,
            "committed_at": crate::cmd::output::json_time(committed_at),
            "started_by": origin.as_ref().map(super::output::origin_json),
            "statuses": statuses.iter().enumerate()
                .map(|(i, s)| status_json(s, now, serving, waiting_before(&statuses, i)))
                .collect::<Vec<_>>(),
            "actions": actions.iter().map(action_json).collect::<Vec<_>>(),
            "notifications": notifications.iter().enumerate()
                .map(|(i, n)| notification_json(n, now, notifying, notification_behind(&notifications, i)))
                .collect::<Vec<_>>(),
        });
        if let serde_json::Value::Object(extra) = extra {
            line.extend(extra);
        }
        let line = serde_json::Value::Object(line);
        println!("{line}");
        return Ok(());
    }
    print_fields(&d, log_url.as_deref(), now);
    if let Some(at) = committed_at {
        // The lead time counts for a success only (`ferry stats`).
        let lead = match (d.state, d.finished_at) {
            (crate::store::State::Success, Some(f)) => {
                format!(" (lead time {})", duration(f - at))
            }
            _ => String::new(),
        };
        println!("  commit    committed {}{lead}", clock(at));
    }
    if let Some(origin) = &origin {
        println!("  started   by {}", origin.describe());
    }
    println!("statuses:");
    if statuses.is_empty() {
        println!("  none (teardowns and ignored deployments post nothing)");
    }
    for (i, s) in statuses.iter().enumerate() {
        let github = not_on_github(s, now, serving, waiting_before(&statuses, i))
            .unwrap_or_else(|| format!("on GitHub since {}", s.sent_at.map_or("-".into(), clock)));
        println!(
            "  {}  {:<11}  {}  [{github}]",
            clock(s.created_at),
            s.state.as_str(),
            s.description
        );
    }
    print_actions(&actions);
    print_notifications(&notifications, now, notifying);
    Ok(())
}

/// The deployment's own fields, one a line.
fn print_fields(d: &crate::store::Deployment, log_url: Option<&str>, now: Timestamp) {
    println!(
        "deployment {}: {} to {} (task {})",
        d.id, d.repository, d.environment, d.task
    );
    println!("  ref       {} ({})", d.git_ref, d.sha);
    println!(
        "  creator   {}{}{}",
        if d.creator.is_empty() {
            "-"
        } else {
            &d.creator
        },
        if d.production { ", production" } else { "" },
        if d.transient { ", transient" } else { "" }
    );
    let state = d.state_word();
    println!("  state     {state}: {}", d.description);
    let took = match (d.started_at, d.finished_at) {
        (Some(s), Some(f)) => format!(", took {}", duration(f - s)),
        (Some(s), None) => format!(", running for {}", duration(now - s)),
        _ => String::new(),
    };
    println!(
        "  times     created {}, started {}, finished {}{took}",
        clock(d.created_at),
        d.started_at.map_or("-".into(), clock),
        d.finished_at.map_or("-".into(), clock)
    );
    println!("  log       {}", log_url.unwrap_or("-"));
}

/// Who acted on it (cancel, rollback), if anyone did.
fn print_actions(actions: &[OperatorAction]) {
    if !actions.is_empty() {
        println!("actions:");
        for a in actions {
            println!("  {}  {}  {}: {}", clock(a.at), a.actor, a.action, a.detail);
        }
    }
}

/// Each notification about it and what became of it.
fn print_notifications(notifications: &[NotificationRecord], now: Timestamp, notifying: bool) {
    if !notifications.is_empty() {
        println!("notifications:");
        for (i, n) in notifications.iter().enumerate() {
            println!(
                "  {}  {:<12}  {:<11}  [{}]",
                clock(n.created_at),
                n.sink,
                n.event,
                notification_fate(n, now, notifying, notification_behind(notifications, i))
            );
        }
    }
}

/// What became of a notification, in words; `behind`: an earlier one of
/// the same sink still pending, which goes first.
fn notification_fate(
    n: &NotificationRecord,
    now: Timestamp,
    serving: bool,
    behind: Option<&NotificationRecord>,
) -> String {
    let error = n.last_error.as_deref().unwrap_or_default();
    match n.state {
        NotificationState::Delivered => {
            format!("delivered at {}", n.done_at.map_or("-".into(), clock))
        }
        NotificationState::GivenUp => format!("given up: {error}"),
        NotificationState::Pending => {
            let when = match n.next_try_at {
                _ if !serving => "no ferry is running to send it".to_string(),
                Some(at) if at > now => format!("next try at {}", clock(at)),
                _ => "due now".to_string(),
            };
            if n.attempts == 0
                && let Some(first) = behind
            {
                format!(
                    "not yet: goes after {} (a deployment's notifications reach a sink in order)",
                    first.event
                )
            } else if n.attempts == 0 {
                format!("not yet: {when}")
            } else {
                format!("retrying: {error}; {} so far; {when}", tries(n.attempts))
            }
        }
    }
}

/// The first notification before the `i`th of the same sink still pending.
fn notification_behind(all: &[NotificationRecord], i: usize) -> Option<&NotificationRecord> {
    all[..i]
        .iter()
        .find(|p| p.sink == all[i].sink && p.state == NotificationState::Pending)
}

fn notification_json(
    n: &NotificationRecord,
    now: Timestamp,
    serving: bool,
    behind: Option<&NotificationRecord>,
) -> serde_json::Value {
    serde_json::json!({
        "sink": n.sink,
        "event": n.event,
        "delivery": n.delivery,
        "state": match n.state {
            NotificationState::Pending if n.attempts > 0 => "retrying",
            s => s.as_str(),
        },
        "attempts": n.attempts,
        "created_at": clock(n.created_at),
        "next_try_at": n.next_try_at.map(|t| clock(t.max(now))),
        "last_error": n.last_error,
        "done_at": n.done_at.map(clock),
        "summary": notification_fate(n, now, serving, behind),
    })
}

fn action_json(a: &OperatorAction) -> serde_json::Value {
    serde_json::json!({
        "at": clock(a.at),
        "actor": a.actor,
        "action": a.action,
        "detail": a.detail,
    })
}
