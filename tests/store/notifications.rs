//! Notifications: fanned out from the event stream exactly once, in the
//! transaction that moves the cursor; sent oldest first within each chain,
//! each try claimed by one replica at a time.

use std::time::Duration;

use ferry::store::*;
use ferry_testkit::backends;

use super::*;

backends!(
    with backend;
    a_fan_out_stores_once_and_moves_the_cursor_under_its_lease,
    a_chain_goes_in_order_and_other_chains_pass_it,
    a_claim_is_one_replicas_until_its_lease_runs_out,
    a_slack_message_is_kept_for_the_deployments_next_events,
    what_show_and_the_gauge_read_and_pruning,
);

const LEASE: Duration = Duration::from_secs(30);

fn note(sink: &str, seq: i64, chain: &str, deployment: Option<i64>) -> NewNotification {
    NewNotification {
        sink: sink.into(),
        event: "success".into(),
        chain: chain.into(),
        deployment: deployment.map(DeploymentId),
        delivery: format!("{sink}-{seq}"),
        body: format!("{{\"seq\": {seq}}}"),
        at: Timestamp::now(),
        position: EventPosition { xid: 0, seq },
    }
}

/// Stores `notes` through a consumer leased to `me`.
async fn stored(store: &SharedStore, notes: &[NewNotification]) {
    let me = me();
    store.take_events("notify", &me, 1, LEASE).await.unwrap();
    let through = EventPosition { xid: 0, seq: 0 };
    assert!(store.fan_out("notify", &me, notes, through).await.unwrap());
}

fn ids(claimed: &[Notification]) -> Vec<String> {
    claimed.iter().map(|n| n.delivery.clone()).collect()
}

async fn a_fan_out_stores_once_and_moves_the_cursor_under_its_lease(b: Backend) {
    let store = (b.open)().await;
    let (a, other) = (me(), Owner("b (pid 2)".into()));
    assert_eq!(
        store.take_events("notify", &a, 10, LEASE).await.unwrap(),
        Some(vec![])
    );
    accept(&store, 1, "p", true).await;
    let events = ferry_testkit::eventually(
        "the queued status's event",
        Duration::from_secs(30),
        || async {
            let e = store
                .take_events("notify", &a, 10, LEASE)
                .await
                .unwrap()
                .unwrap();
            (!e.is_empty()).then_some(e)
        },
    )
    .await;
    let through = events.last().unwrap().position;
    let mut n = note("ops", 1, "deployment:1", Some(1));
    n.position = through;
    // Not the lease holder: nothing stored, the cursor stays.
    assert!(
        !store
            .fan_out("notify", &other, &[n.clone()], through)
            .await
            .unwrap()
    );
    assert!(
        store
            .notifications_of(DeploymentId(1))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .fan_out("notify", &a, &[n.clone()], through)
            .await
            .unwrap()
    );
    assert_eq!(
        store.take_events("notify", &a, 10, LEASE).await.unwrap(),
        Some(vec![]),
        "the cursor moved with the notes"
    );
    // The same event for the same sink again (a fan-out repeated): stored once.
    assert!(
        store
            .fan_out("notify", &a, &[n.clone()], through)
            .await
            .unwrap()
    );
    assert_eq!(
        store.notifications_of(DeploymentId(1)).await.unwrap().len(),
        1
    );
    // Another sink hears the same event on its own.
    let mut slack = note("slack", 1, "deployment:1", Some(1));
    slack.position = through;
    assert!(
        store
            .fan_out("notify", &a, &[slack], through)
            .await
            .unwrap()
    );
    assert_eq!(
        store.notifications_of(DeploymentId(1)).await.unwrap().len(),
        2
    );
}

async fn a_chain_goes_in_order_and_other_chains_pass_it(b: Backend) {
    let store = (b.open)().await;
    let me = me();
    stored(
        &store,
        &[
            note("ops", 1, "deployment:1", Some(1)),
            note("ops", 2, "deployment:1", Some(1)),
            note("ops", 3, "deployment:2", Some(2)),
            note("ops", 4, "environment:o/r:p", None),
            note("other", 5, "deployment:1", Some(1)),
        ],
    )
    .await;
    let first = store
        .claim_notifications("ops", &me, 10, LEASE)
        .await
        .unwrap();
    assert_eq!(
        ids(&first),
        ["ops-1", "ops-3", "ops-4"],
        "heads of each chain, oldest first"
    );
    assert_eq!(first[0].body, "{\"seq\": 1}");
    assert_eq!(first[0].attempts, 0);
    // Claimed: not handed out again while leased.
    assert!(
        store
            .claim_notifications("ops", &me, 10, LEASE)
            .await
            .unwrap()
            .is_empty()
    );
    // A retry keeps the chain's later notification waiting.
    let retry = NotificationOutcome::RetryAt {
        at: Timestamp::now() - Duration::from_millis(1),
        error: "HTTP 500".into(),
    };
    assert!(
        store
            .record_notification(first[0].id, &me, &retry)
            .await
            .unwrap()
    );
    let delivered = NotificationOutcome::Delivered { slack: None };
    assert!(
        store
            .record_notification(first[1].id, &me, &delivered)
            .await
            .unwrap()
    );
    let again = store
        .claim_notifications("ops", &me, 10, LEASE)
        .await
        .unwrap();
    assert_eq!(ids(&again), ["ops-1"]);
    assert_eq!(again[0].attempts, 1);
    // Given up, it lets the next one go.
    let gave_up = NotificationOutcome::GaveUp {
        error: "HTTP 404".into(),
    };
    assert!(
        store
            .record_notification(again[0].id, &me, &gave_up)
            .await
            .unwrap()
    );
    // Recorded once: a second record of the same try changes nothing.
    assert!(
        !store
            .record_notification(again[0].id, &me, &delivered)
            .await
            .unwrap()
    );
    let next = store
        .claim_notifications("ops", &me, 10, LEASE)
        .await
        .unwrap();
    assert_eq!(ids(&next), ["ops-2"]);
    // A retry not yet due is not handed out.
    let later = NotificationOutcome::RetryAt {
        at: Timestamp::now() + Duration::from_millis(60_000),
        error: "timeout".into(),
    };
    assert!(
        store
            .record_notification(next[0].id, &me, &later)
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_notifications("ops", &me, 10, LEASE)
            .await
            .unwrap()
            .is_empty()
    );
    // The other sink's chain is its own.
    assert_eq!(
        ids(&store
            .claim_notifications("other", &me, 10, LEASE)
            .await
            .unwrap()),
        ["other-5"]
    );
}

async fn a_claim_is_one_replicas_until_its_lease_runs_out(b: Backend) {
    let one = (b.open)().await;
    let two = (b.open)().await;
    let (a, b_) = (Owner("a (pid 1)".into()), Owner("b (pid 2)".into()));
    stored(&one, &[note("ops", 1, "deployment:1", Some(1))]).await;
    let (x, y) = tokio::join!(
        one.claim_notifications("ops", &a, 10, Duration::from_millis(200)),
        two.claim_notifications("ops", &b_, 10, Duration::from_millis(200)),
    );
    let (x, y) = (x.unwrap(), y.unwrap());
    assert_eq!(x.len() + y.len(), 1, "claimed by both: {x:?} {y:?}");
    let (holder, holder_store, other, other_store) = if x.is_empty() {
        (&b_, &two, &a, &one)
    } else {
        (&a, &one, &b_, &two)
    };
    // The holder dies mid-send: once its lease ran out, the other takes it.
    let taken = ferry_testkit::eventually(
        "the other replica takes it",
        Duration::from_secs(30),
        || async {
            let t = other_store
                .claim_notifications("ops", other, 10, LEASE)
                .await
                .unwrap();
            (!t.is_empty()).then_some(t)
        },
    )
    .await;
    assert_eq!(ids(&taken), ["ops-1"]);
    let delivered = NotificationOutcome::Delivered { slack: None };
    // The first holder's late answer is not recorded; the new holder's is.
    assert!(
        !holder_store
            .record_notification(taken[0].id, holder, &delivered)
            .await
            .unwrap()
    );
    assert!(
        other_store
            .record_notification(taken[0].id, other, &delivered)
            .await
            .unwrap()
    );
    let records = one.notifications_of(DeploymentId(1)).await.unwrap();
    assert_eq!(records[0].state, NotificationState::Delivered);
    assert_eq!(records[0].attempts, 1);
}

async fn a_slack_message_is_kept_for_the_deployments_next_events(b: Backend) {
    let store = (b.open)().await;
    let me = me();
    stored(
        &store,
        &[
            note("ops", 1, "deployment:7", Some(7)),
            note("ops", 2, "deployment:7", Some(7)),
        ],
    )
    .await;
    let first = store
        .claim_notifications("ops", &me, 10, LEASE)
        .await
        .unwrap();
    assert_eq!(first[0].slack, None);
    let posted = SlackMessage {
        channel: "C1".into(),
        ts: "1765101600.000100".into(),
    };
    let delivered = NotificationOutcome::Delivered {
        slack: Some(posted.clone()),
    };
    assert!(
        store
            .record_notification(first[0].id, &me, &delivered)
            .await
            .unwrap()
    );
    let second = store
        .claim_notifications("ops", &me, 10, LEASE)
        .await
        .unwrap();
    assert_eq!(second[0].slack, Some(posted));
}

async fn what_show_and_the_gauge_read_and_pruning(b: Backend) {
    let store = (b.open)().await;
    let me = me();
    stored(
        &store,
        &[
            note("ops", 1, "deployment:1", Some(1)),
            note("ops", 2, "deployment:2", Some(2)),
            note("slack", 3, "deployment:1", Some(1)),
        ],
    )
    .await;
    assert_eq!(
        store.pending_notifications().await.unwrap(),
        [("ops".to_string(), 2), ("slack".to_string(), 1)]
    );
    let claimed = store
        .claim_notifications("ops", &me, 10, LEASE)
        .await
        .unwrap();
    let retry = NotificationOutcome::RetryAt {
        at: Timestamp::now() + Duration::from_millis(60_000),
        error: "HTTP 502".into(),
    };
    assert!(
        store
            .record_notification(claimed[0].id, &me, &retry)
            .await
            .unwrap()
    );
    let delivered = NotificationOutcome::Delivered { slack: None };
    assert!(
        store
            .record_notification(claimed[1].id, &me, &delivered)
            .await
            .unwrap()
    );
    let of_one = store.notifications_of(DeploymentId(1)).await.unwrap();
    assert_eq!(of_one.len(), 2);
    assert_eq!(
        (of_one[0].sink.as_str(), of_one[0].state),
        ("ops", NotificationState::Pending)
    );
    assert_eq!(of_one[0].last_error.as_deref(), Some("HTTP 502"));
    assert!(of_one[0].next_try_at.unwrap() > Timestamp::now());
    assert_eq!(of_one[0].delivery, "ops-1");
    let of_two = store.notifications_of(DeploymentId(2)).await.unwrap();
    assert_eq!(of_two[0].state, NotificationState::Delivered);
    assert!(of_two[0].done_at.is_some() && of_two[0].next_try_at.is_none());
    assert_eq!(
        store.pending_notifications().await.unwrap()[0],
        ("ops".to_string(), 1)
    );
    // Pruning forgets what is done, never what is pending.
    assert_eq!(
        store
            .prune_notifications(Timestamp::now() + Duration::from_millis(1))
            .await
            .unwrap(),
        1
    );
    assert!(
        store
            .notifications_of(DeploymentId(2))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.notifications_of(DeploymentId(1)).await.unwrap().len(),
        2
    );
}
