//! Slack: one message per deployment per sink, posted by its first event
//! (`chat.postMessage`) and updated in place by the later ones
//! (`chat.update`, with the channel id and `ts` Slack answered), so a
//! channel shows one line per deployment that turns from "deploying" to
//! "deployed". Locks post a message each. Slack answers most errors with
//! HTTP 200 and `ok: false`: the `error` decides.

use std::time::Duration;

use serde_json::{Value, json};

use super::{Tried, retry_after, sent_error};
use crate::config::Secret;
use crate::store::{Notification, SlackMessage};

/// How long to wait when Slack limits us without saying how long.
const RATE_LIMITED_PAUSE: Duration = Duration::from_secs(30);

pub async fn send(
    http: &reqwest::Client,
    api_url: &str,
    token: &Secret,
    channel: &str,
    n: &Notification,
) -> Tried {
    let body: Value = serde_json::from_str(&n.body).unwrap_or(Value::Null);
    let (text, blocks) = message(&body);
    if let Some(m) = &n.slack {
        let update = json!({"channel": m.channel, "ts": m.ts, "text": text, "blocks": blocks});
        match call(http, api_url, token, "chat.update", &update).await {
            Answer::Ok(_) => return Tried::Delivered(Some(m.clone())),
            // Deleted by someone in the channel: post it anew.
            Answer::Error(e) if e == "message_not_found" || e == "cant_update_message" => {}
            other => return other.tried(),
        }
    }
    let post = json!({"channel": channel, "text": text, "blocks": blocks});
    match call(http, api_url, token, "chat.postMessage", &post).await {
        Answer::Ok(v) => {
            let posted = v["channel"].as_str().zip(v["ts"].as_str());
            // A lock's message is never updated: no need to keep it.
            let keep = n.deployment.is_some();
            Tried::Delivered(posted.filter(|_| keep).map(|(channel, ts)| SlackMessage {
                channel: channel.to_string(),
                ts: ts.to_string(),
            }))
        }
        other => other.tried(),
    }
}

enum Answer {
    Ok(Value),
    /// `ok: false`, with Slack's `error`.
    Error(String),
    Tried(Tried),
}

impl Answer {
    fn tried(self) -> Tried {
        match self {
            Answer::Ok(_) => Tried::Delivered(None),
            Answer::Tried(t) => t,
            Answer::Error(e) => Tried::GiveUp {
                fix: fix_for(&e),
                reason: format!("Slack answered {e}"),
            },
        }
    }
}

async fn call(
    http: &reqwest::Client,
    api_url: &str,
    token: &Secret,
    method: &str,
    body: &Value,
) -> Answer {
    let response = http
        .post(format!("{api_url}/{method}"))
        .bearer_auth(token.expose_str())
        .header("content-type", "application/json; charset=utf-8")
        .body(body.to_string())
        .send()
        .await;
    let response = match response {
        Ok(r) => r,
        Err(e) => return Answer::Tried(sent_error(e)),
    };
    let status = response.status();
    let after = retry_after(response.headers());
    if status.as_u16() == 429 {
        return Answer::Tried(Tried::Retry {
            after: Some(after.unwrap_or(RATE_LIMITED_PAUSE)),
            reason: "Slack is rate limiting (HTTP 429)".into(),
        });
    }
    if status.is_server_error() {
        return Answer::Tried(Tried::Retry {
            after,
            reason: format!("Slack answered HTTP {}", status.as_u16()),
        });
    }
    let answer: Value = match response.json().await {
        Ok(v) => v,
        Err(e) => {
            return Answer::Tried(Tried::Retry {
                after: None,
                reason: format!("Slack's answer (HTTP {}) is not JSON: {e}", status.as_u16()),
            });
        }
    };
    if answer["ok"] == Value::Bool(true) {
        return Answer::Ok(answer);
    }
    let error = answer["error"]
        .as_str()
        .unwrap_or("unknown_error")
        .to_string();
    if error == "ratelimited" || error == "rate_limited" {
        return Answer::Tried(Tried::Retry {
            after: Some(after.unwrap_or(RATE_LIMITED_PAUSE)),
            reason: "Slack is rate limiting (ratelimited)".into(),
        });
    }
    Answer::Error(error)
}

/// What the operator should do about an error Slack will keep giving.
fn fix_for(error: &str) -> Option<&'static str> {
    Some(match error {
        "not_in_channel" => "invite the app to the channel (in the channel: /invite @your-app)",
        "channel_not_found" => {
            "check the sink's channel: it must be the channel's id (C0123456789), and the app must be invited to a private channel"
        }
        "invalid_auth" | "not_authed" | "token_revoked" | "token_expired" | "account_inactive" => {
            "put a valid bot token (xoxb-...) in slack_token_file: the app's OAuth & Permissions page has it"
        }
        "missing_scope" => "give the app the chat:write scope and reinstall it to the workspace",
        "is_archived" => "unarchive the channel, or point the sink at another",
        _ => return None,
    })
}

/// `&`, `<` and `>` are Slack's control characters in text.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The message for a stored body: the text (what notifications and
/// screen readers show) and Block Kit blocks with the same words laid out.
pub fn message(body: &Value) -> (String, Value) {
    let s = |v: &Value| v.as_str().map(escape).unwrap_or_default();
    let (repo, env) = (s(&body["repository"]), s(&body["environment"]));
    let event = body["event"].as_str().unwrap_or_default();
    let d = &body["deployment"];
    if d.is_null() {
        let who = s(&body["actor"]);
        let reason = body["reason"].as_str().map(escape);
        let (icon, verb) = match event {
            "locked" => (":lock:", "locked"),
            _ => (":unlock:", "unlocked"),
        };
        let mut text = format!("{icon} {repo} {env} {verb} by {who}");
        if let Some(r) = reason.filter(|r| !r.is_empty()) {
            text.push_str(&format!(": {r}"));
        }
        if let Some(until) = body["until"].as_str() {
            text.push_str(&format!(" (until {until})"));
        }
        let blocks = json!([{"type": "section", "text": {"type": "mrkdwn", "text": text}}]);
        return (text, blocks);
    }
    let (icon, word) = match event {
        "queued" => (":hourglass_flowing_sand:", "queued"),
        "in_progress" => (":rocket:", "deploying"),
        "success" => (":white_check_mark:", "deployed"),
        "failure" => (":x:", "failed"),
        "error" => (":warning:", "error"),
        _ => (":zzz:", "inactive"),
    };
    let sha = d["sha"].as_str().unwrap_or_default();
    let short = escape(crate::format::short_sha(sha));
    let log = d["log_url"].as_str().unwrap_or_default();
    let (creator, git_ref) = (s(&d["creator"]), s(&d["ref"]));
    let description = s(&d["description"]);
    let text = format!(
        "{icon} {repo} {env}: {word} {short} ({git_ref}) by {creator}: {description} <{log}|log>"
    );
    let blocks = json!([
        {"type": "section", "text": {"type": "mrkdwn", "text":
            format!("{icon} *{repo}* {env}: *{word}* `{short}`\n{description}")}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text":
            format!("{git_ref} by {creator} · deployment {} · <{log}|log>", d["id"])}]},
    ]);
    (text, blocks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deployment_names_repository_environment_state_sha_and_links_the_log() {
        let body = json!({"event": "success", "repository": "octo-org/web", "environment": "production",
            "deployment": {"id": 42, "ref": "main", "sha": "abc1234def", "creator": "alice",
                "description": "Deployed <b> & more", "log_url": "https://ferry/log/42"}});
        let (text, blocks) = message(&body);
        assert_eq!(
            text,
            ":white_check_mark: octo-org/web production: deployed abc1234 (main) by alice: Deployed &lt;b&gt; &amp; more <https://ferry/log/42|log>"
        );
        assert_eq!(blocks.as_array().unwrap().len(), 2);
    }

    #[test]
    fn a_lock_names_who_and_why() {
        let body = json!({"event": "locked", "repository": "o/r", "environment": "p",
            "deployment": null, "actor": "alice", "reason": "incident 123"});
        assert_eq!(
            message(&body).0,
            ":lock: o/r p locked by alice: incident 123"
        );
    }
}
