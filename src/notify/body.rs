//! What a notification says, made once when the event is read and stored:
//! the JSON body of docs/reference.md ("Notifications"), the same on every
//! try, and its delivery id.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::config::NotifyEvent;
use crate::store::Timestamp;
use crate::store::{
    Deployment, Event, EventKind, NewNotification, chain_of_deployment, chain_of_environment,
};

/// The sink's name for an event; None for a change no sink hears (a
/// teardown's end: its `inactive` statuses are the deployments' events).
pub fn event_name(e: &Event) -> Option<NotifyEvent> {
    match e.kind {
        EventKind::Status => NotifyEvent::parse(e.state.as_deref()?),
        EventKind::Lock => Some(NotifyEvent::Locked),
        EventKind::Unlock => Some(NotifyEvent::Unlocked),
        EventKind::Teardown => None,
    }
}

/// An id unique to (store, sink, event), the same however often the event
/// is read: a UUID-shaped hex string receivers can dedupe by.
pub fn delivery_id(store_created: Timestamp, sink: &str, e: &Event) -> String {
    let mut h = Sha256::new();
    h.update(format!(
        "ferry notification\0{}\0{sink}\0{}\0{}",
        store_created.as_millis(),
        e.position.xid,
        e.position.seq
    ));
    let hex: String = h.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The deployment as the body carries it, at the time of the event: its
/// state is the event's, and it has not finished (or started) if the
/// event says it had not.
fn deployment_json(d: &Deployment, event: NotifyEvent, e: &Event, log_url: &str) -> Value {
    let started = !matches!(event, NotifyEvent::Queued);
    let finished = !matches!(event, NotifyEvent::Queued | NotifyEvent::InProgress);
    let time = |t: Option<Timestamp>| t.map_or(Value::Null, |t| t.rfc3339().into());
    json!({
        "id": d.id.0,
        "ref": d.git_ref,
        "sha": d.sha,
        "task": d.task,
        "state": event.as_str(),
        "description": e.description,
        "creator": d.creator,
        "log_url": log_url,
        "created_at": time(Some(d.created_at)),
        "started_at": time(d.started_at.filter(|_| started)),
        "finished_at": time(d.finished_at.filter(|_| finished)),
    })
}

/// The notification of `e` for `sink`; `deployment` is the event's
/// deployment (None for a lock's events).
pub fn notification(
    sink: &str,
    event: NotifyEvent,
    e: &Event,
    deployment: Option<&Deployment>,
    log_url: Option<&str>,
    store_created: Timestamp,
) -> NewNotification {
    let delivery = delivery_id(store_created, sink, e);
    let body = match deployment {
        Some(d) => json!({
            "event": event.as_str(),
            "delivery": delivery,
            "at": e.at.rfc3339(),
            "repository": e.repository,
            "environment": e.environment,
            "deployment": deployment_json(d, event, e, log_url.unwrap_or_default()),
            "actor": null,
            "reason": null,
        }),
        None => json!({
            "event": event.as_str(),
            "delivery": delivery,
            "at": e.at.rfc3339(),
            "repository": e.repository,
            "environment": e.environment,
            "deployment": null,
            "actor": e.actor,
            "reason": Some(e.description.as_str()).filter(|r| !r.is_empty()),
            "until": e.until.map(Timestamp::rfc3339),
        }),
    };
    NewNotification {
        sink: sink.to_string(),
        event: event.as_str().to_string(),
        chain: match deployment {
            Some(d) => chain_of_deployment(d.id),
            None => chain_of_environment(&e.repository, &e.environment),
        },
        deployment: deployment.map(|d| d.id),
        delivery,
        body: body.to_string(),
        at: e.at,
        position: e.position,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::EventPosition;

    fn lock_event(seq: i64) -> Event {
        Event {
            position: EventPosition { xid: 0, seq },
            at: Timestamp::from_millis(1_765_101_600_000),
            kind: EventKind::Lock,
            deployment: None,
            repository: "octo-org/web".into(),
            environment: "production".into(),
            state: None,
            description: "incident 123".into(),
            actor: Some("alice".into()),
            until: None,
        }
    }

    #[test]
    fn a_lock_names_who_and_why_and_its_delivery_is_stable() {
        let e = lock_event(7);
        let store_created = Timestamp::from_millis(1);
        let made = || notification("ops", NotifyEvent::Locked, &e, None, None, store_created);
        let n = made();
        let body: Value = serde_json::from_str(&n.body).unwrap();
        assert_eq!(body["event"], "locked");
        assert_eq!(body["deployment"], Value::Null);
        assert_eq!(body["actor"], "alice");
        assert_eq!(body["reason"], "incident 123");
        assert_eq!(body["at"], "2025-12-07T10:00:00Z");
        assert_eq!(body["delivery"], n.delivery.as_str());
        assert_eq!(n.chain, "environment:octo-org/web:production");
        // Read again, the same id; another sink or event, another.
        let again = made();
        assert_eq!(again.delivery, n.delivery);
        assert_ne!(delivery_id(store_created, "other", &e), n.delivery);
        assert_ne!(
            delivery_id(store_created, "ops", &lock_event(8)),
            n.delivery
        );
        assert_eq!(n.delivery.len(), 36);
    }
}
