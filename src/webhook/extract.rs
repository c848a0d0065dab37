//! The [`Delivery`] extractor: a signed body (see [`SignedDelivery`]) read
//! as the one event its `X-GitHub-Event` names, so that the handler only
//! ever sees events it can act on and every malformed delivery is a `400`
//! before any part of ferry looks at it.

use axum::extract::{FromRequest, Request};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use super::event::{
    self, ChecksEvent, DeploymentEvent, IssueCommentEvent, ProtectionRuleEvent, PullRequestEvent,
    PushEvent,
};
use super::{Answer, Intake, SignedDelivery};
use crate::store::{DeliveryKey, NewDeployment};

/// One verified delivery.
pub struct Delivery {
    /// `X-GitHub-Delivery`, for the log.
    pub id: String,
    pub event: Event,
}

/// What a delivery is, parsed.
pub enum Event {
    Ping,
    /// A created deployment; `reason` is its description (a `deploy:lock`'s
    /// reason).
    Deployment {
        key: DeliveryKey,
        deployment: NewDeployment,
        reason: String,
    },
    /// A deployment event with another action.
    DeploymentNotCreated,
    PullRequest(PullRequestEvent),
    Push(PushEvent),
    IssueComment(IssueCommentEvent),
    ProtectionRule(ProtectionRuleEvent),
    /// A `check_run`, `check_suite` or `status` event: a sha's checks
    /// changed.
    ChecksChanged {
        name: String,
        checks: ChecksEvent,
    },
    /// Any other event, with its name: answered `200`, acted on by nobody.
    Other(String),
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

impl FromRequest<Intake> for Delivery {
    type Rejection = Response;

    async fn from_request(req: Request, state: &Intake) -> Result<Self, Response> {
        let signed = SignedDelivery::from_request(req, state).await?;
        let headers = &signed.headers;
        let id = header(headers, "x-github-delivery")
            .unwrap_or_default()
            .to_string();
        // Unreadable deliveries are an operator's to fix (a proxy, the
        // webhook's content type): at warning priority, with the delivery
        // id to find it in GitHub's Recent Deliveries.
        let refuse = |event: &str, why: String| {
            tracing::warn!(delivery = %id, event, "refused webhook delivery {id} (400): {why}");
            Answer::bad_request(event, why).into_response()
        };
        let Some(name) = header(headers, "x-github-event") else {
            return Err(refuse("", "missing X-GitHub-Event header".into()));
        };
        let content_type = header(headers, "content-type");
        let bad = |e: String| refuse(name, e);
        let event = match name {
            "deployment" => {
                let parsed: DeploymentEvent =
                    event::decode(content_type, &signed.body).map_err(bad)?;
                if parsed.is_created() {
                    let key = DeliveryKey {
                        hook_id: header(headers, "x-github-hook-id")
                            .unwrap_or_default()
                            .to_string(),
                        delivery_id: id.clone(),
                    };
                    let reason = parsed.description().to_string();
                    Event::Deployment {
                        key,
                        deployment: parsed.into_new(),
                        reason,
                    }
                } else {
                    Event::DeploymentNotCreated
                }
            }
            "pull_request" => {
                Event::PullRequest(event::decode(content_type, &signed.body).map_err(bad)?)
            }
            "deployment_protection_rule" => {
                Event::ProtectionRule(event::decode(content_type, &signed.body).map_err(bad)?)
            }
            "issue_comment" => {
                Event::IssueComment(event::decode(content_type, &signed.body).map_err(bad)?)
            }
            "push" => Event::Push(event::decode(content_type, &signed.body).map_err(bad)?),
            "check_run" | "check_suite" | "status" => Event::ChecksChanged {
                name: name.to_string(),
                checks: event::decode(content_type, &signed.body).map_err(bad)?,
            },
            other => {
                event::check_json(content_type, &signed.body).map_err(bad)?;
                match other {
                    "ping" => Event::Ping,
                    other => Event::Other(other.to_string()),
                }
            }
        };
        Ok(Delivery { id, event })
    }
}
