//! The event stream: every state change once, in order, in the
//! transaction that made it; each consumer through its own cursor, leased
//! to one replica at a time.

use std::time::Duration;

use ferry::store::*;
use ferry_testkit::backends;

use super::*;

backends!(
    with backend;
    every_state_change_is_one_event_in_order,
    a_consumer_is_leased_to_one_replica_and_fenced,
    consumers_read_apart_and_start_at_the_end,
);

const LEASE: Duration = Duration::from_secs(30);

fn what(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            format!(
                "{} {}:{} {}",
                e.kind.as_str(),
                e.repository,
                e.environment,
                e.state
                    .as_deref()
                    .unwrap_or(e.actor.as_deref().unwrap_or("-"))
            )
        })
        .collect()
}

/// The next events of `consumer`, once there are at least `n`: on
/// PostgreSQL a transaction still open anywhere in the cluster (another
/// test's database) holds back the events after it for a moment.
async fn at_least(store: &SharedStore, consumer: &str, owner: &Owner, n: usize) -> Vec<Event> {
    let what = format!("{n} events for {consumer}");
    ferry_testkit::eventually(&what, Duration::from_secs(30), || async {
        let events = store
            .take_events(consumer, owner, 100, LEASE)
            .await
            .unwrap()
            .expect("leased to this owner");
        if events.len() >= n {
            Ok(events)
        } else {
            Err(format!("{events:?}"))
        }
    })
    .await
}

fn lock_of(env: &str, holder: &str) -> EnvLock {
    EnvLock {
        repository: "o/r".into(),
        environment: env.into(),
        holder: holder.into(),
        reason: "incident".into(),
        since: Timestamp::now(),
        until: None,
    }
}

async fn every_state_change_is_one_event_in_order(b: Backend) {
    let store = (b.open)().await;
    let me = me();
    assert_eq!(
        store.take_events("notify", &me, 100, LEASE).await.unwrap(),
        Some(vec![])
    );
    accept(&store, 1, "p", true).await;
    let one = store.claim_next(&me).await.unwrap().unwrap();
    succeed(&store, one.claim()).await;
    store.lock(&lock_of("p", "alice")).await.unwrap();
    store.unlock("o/r", "p", "bob").await.unwrap();
    let TeardownQueued::Queued { teardown, .. } = store
        .queue_teardown("o/r", "p", &TeardownCause::Operator("bob".into()))
        .await
        .unwrap()
    else {
        panic!("no teardown queued");
    };
    let running = store.claim_next(&me).await.unwrap().unwrap();
    assert_eq!(running.id, teardown.id);
    store
        .finish_teardown(running.claim(), State::Success, "Torn down")
        .await
        .unwrap();

    let events = at_least(&store, "notify", &me, 6).await;
    assert_eq!(
        what(&events),
        [
            "status o/r:p queued",
            "status o/r:p success",
            "lock o/r:p alice",
            "unlock o/r:p bob",
            "teardown o/r:p success",
            "status o/r:p inactive",
        ]
    );
    assert_eq!(events[0].deployment, Some(DeploymentId(1)));
    assert_eq!(events[2].description, "incident");
    assert_eq!(events[4].deployment, Some(teardown.id));
    assert!(events.windows(2).all(|w| w[0].position < w[1].position));
    // Acked, they do not come again; a later change does.
    assert!(
        store
            .ack_events("notify", &me, events.last().unwrap().position)
            .await
            .unwrap()
    );
    assert_eq!(
        store.take_events("notify", &me, 100, LEASE).await.unwrap(),
        Some(vec![])
    );
    accept(&store, 2, "q", true).await;
    let later = at_least(&store, "notify", &me, 1).await;
    assert_eq!(what(&later), ["status o/r:q queued"]);
    // Not acked: taken again (at least once).
    let again = store
        .take_events("notify", &me, 100, LEASE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again, later);
}

async fn a_consumer_is_leased_to_one_replica_and_fenced(b: Backend) {
    let one = (b.open)().await;
    let two = (b.open)().await;
    let (a, b_) = (Owner("a (pid 1)".into()), Owner("b (pid 2)".into()));
    assert!(one.take_events("c", &a, 10, LEASE).await.unwrap().is_some());
    accept(&one, 1, "p", true).await;
    // The other replica waits while the lease holds.
    assert_eq!(two.take_events("c", &b_, 10, LEASE).await.unwrap(), None);
    let taken = at_least(&one, "c", &a, 1).await;
    assert_eq!(taken.len(), 1);
    // An expired lease passes to the other replica, which gets the event
    // again: the first never acked it.
    one.take_events("c", &a, 10, Duration::ZERO).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let retaken = at_least(&two, "c", &b_, 1).await;
    assert_eq!(retaken, taken);
    // The first replica's late ack moves nothing.
    assert!(!one.ack_events("c", &a, taken[0].position).await.unwrap());
    assert!(two.ack_events("c", &b_, taken[0].position).await.unwrap());
    assert_eq!(
        two.take_events("c", &b_, 10, LEASE).await.unwrap(),
        Some(vec![])
    );
}

async fn consumers_read_apart_and_start_at_the_end(b: Backend) {
    let store = (b.open)().await;
    let me = me();
    accept(&store, 1, "p", true).await;
    // Seen for the first time after deployment 1: not told of it.
    assert_eq!(
        store.take_events("slack", &me, 10, LEASE).await.unwrap(),
        Some(vec![])
    );
    assert_eq!(
        store.take_events("metrics", &me, 10, LEASE).await.unwrap(),
        Some(vec![])
    );
    accept(&store, 2, "p", true).await;
    let slack = at_least(&store, "slack", &me, 2).await;
    // Deployment 2 supersedes 1: two events.
    assert_eq!(slack.len(), 2, "{slack:?}");
    let last = slack.last().unwrap().position;
    assert!(store.ack_events("slack", &me, last).await.unwrap());
    // Another consumer's ack moves only its own cursor.
    let metrics = at_least(&store, "metrics", &me, 2).await;
    assert_eq!(metrics, slack);
    assert_eq!(
        store.take_events("slack", &me, 10, LEASE).await.unwrap(),
        Some(vec![])
    );
    // Past their retention, events are forgotten.
    assert_eq!(store.prune_events(Timestamp::EPOCH).await.unwrap(), 0);
    assert!(
        store
            .prune_events(Timestamp::now() + Duration::from_millis(1))
            .await
            .unwrap()
            >= 3
    );
    assert_eq!(
        store.take_events("metrics", &me, 10, LEASE).await.unwrap(),
        Some(vec![])
    );
}

/// PostgreSQL: replicas commit out of `seq` order. A change whose
/// transaction is still open holds back the events after it, so the
/// consumer never moves its cursor past an event that commits later.
#[tokio::test(flavor = "multi_thread")]
async fn an_event_committed_late_on_postgres_is_not_skipped() {
    let url = ferry_testkit::postgres::cluster().database();
    let store: SharedStore = std::sync::Arc::new(
        ferry::store::postgres::PgStore::connect(&url)
            .await
            .unwrap(),
    );
    let me = me();
    assert_eq!(
        store.take_events("c", &me, 10, LEASE).await.unwrap(),
        Some(vec![])
    );
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let mut slow = pool.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO env_locks (repository, environment, holder, reason, since)
         VALUES ('o/r', 'slow', 'alice', '', 1)",
    )
    .execute(&mut *slow)
    .await
    .unwrap();
    // A later change commits first.
    store.lock(&lock_of("fast", "bob")).await.unwrap();
    assert_eq!(
        store.take_events("c", &me, 10, LEASE).await.unwrap(),
        Some(vec![])
    );
    slow.commit().await.unwrap();
    let events = at_least(&store, "c", &me, 2).await;
    assert_eq!(what(&events), ["lock o/r:slow alice", "lock o/r:fast bob"]);
}
