//! The generic webhook: `POST url` with the stored body, signed as GitHub
//! signs its webhooks (docs/reference.md, "Notifications"), so that a
//! receiver reuses its verification code.

use reqwest::StatusCode;

use super::{Tried, retry_after, sent_error};
use crate::config::Secret;
use crate::store::Notification;

pub async fn send(
    http: &reqwest::Client,
    url: &str,
    secret: Option<&Secret>,
    n: &Notification,
) -> Tried {
    let mut request = http
        .post(url)
        .header("content-type", "application/json")
        .header("x-ferry-event", &n.event)
        .header("x-ferry-delivery", &n.delivery)
        .body(n.body.clone());
    if let Some(secret) = secret {
        let tag = crate::sign::sign(secret.expose(), n.body.as_bytes());
        let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
        request = request.header("x-ferry-signature-256", format!("sha256={hex}"));
    }
    let response = match request.send().await {
        Ok(r) => r,
        Err(e) => return sent_error(e),
    };
    let status = response.status();
    if status.is_success() {
        return Tried::Delivered(None);
    }
    let after = retry_after(response.headers());
    let text = response.text().await.unwrap_or_default();
    let reason = answer(status, &text);
    if status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
    {
        Tried::Retry { after, reason }
    } else {
        Tried::GiveUp { reason, fix: None }
    }
}

/// "HTTP 404: not found", with the start of the answer's text.
fn answer(status: StatusCode, text: &str) -> String {
    let text: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let text: String = text.chars().take(120).collect();
    if text.is_empty() {
        format!("HTTP {}", status.as_u16())
    } else {
        format!("HTTP {}: {text}", status.as_u16())
    }
}
