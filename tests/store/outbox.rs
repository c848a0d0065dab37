//! The outbox: statuses in order per deployment, urgent first, in doubt, one replica at a time.

use std::time::Duration;

use ferry::store::*;
use ferry_testkit::backends;

use super::*;

backends!(
    with backend;
    statuses_in_doubt_superseded_and_urgent_are_marked,
    outbox_sends_in_order_per_deployment_and_survives_reopen,
    each_status_is_handed_to_one_replica_at_a_time,
);

async fn statuses_in_doubt_superseded_and_urgent_are_marked(b: Backend) {
    let store = (b.open)().await;
    let now = Timestamp::now();
    // 1 runs; 2 and 3 wait, 3 supersedes 2.
    accept(&store, 1, "p", true).await;
    let one = store.claim_next(&me()).await.unwrap().unwrap();
    accept(&store, 2, "p", true).await;
    accept(&store, 3, "p", true).await;
    let due = store.due_statuses(Timestamp::now(), 10).await.unwrap();
    let by_id = |id: i64| {
        due.iter()
            .find(|i| i.deployment_id.0 == id)
            .unwrap()
            .clone()
    };
    assert!(!by_id(1).superseded && !by_id(3).superseded);
    assert!(
        by_id(2).superseded,
        "a queued status of a superseded deployment"
    );
    assert!(due.iter().all(|i| !i.in_doubt));

    // 1's queued handed out and never answered: in doubt next time.
    let q1 = by_id(1);
    store
        .record_posts(&[
            (q1.seq, PostOutcome::Trying),
            (by_id(2).seq, PostOutcome::Coalesced),
        ])
        .await
        .unwrap();
    let due = store.due_statuses(Timestamp::now(), 10).await.unwrap();
    let again = due.iter().find(|i| i.seq == q1.seq).unwrap();
    assert!(again.in_doubt);
    // 2's queued is settled: its head is now its inactive.
    let two = due.iter().find(|i| i.deployment_id.0 == 2).unwrap();
    assert_eq!(two.status.state, StatusState::Inactive);
    // A definite answer clears the doubt; an unanswered post keeps it.
    store
        .record_posts(&[(
            q1.seq,
            PostOutcome::RetryAt {
                at: now,
                error: "500".into(),
            },
        )])
        .await
        .unwrap();
    let due = store.due_statuses(Timestamp::now(), 10).await.unwrap();
    assert!(!due.iter().find(|i| i.seq == q1.seq).unwrap().in_doubt);
    store
        .record_posts(&[
            (q1.seq, PostOutcome::Trying),
            (
                q1.seq,
                PostOutcome::Unanswered {
                    at: now,
                    error: "timeout".into(),
                },
            ),
        ])
        .await
        .unwrap();
    let due = store.due_statuses(Timestamp::now(), 10).await.unwrap();
    assert!(due.iter().find(|i| i.seq == q1.seq).unwrap().in_doubt);
    store
        .record_posts(&[(q1.seq, PostOutcome::Confirmed)])
        .await
        .unwrap();
    // What each answer left: three attempts (refused, unanswered,
    // confirmed) and the last error; the coalesced one never tried.
    let first = &store.statuses_of(DeploymentId(1)).await.unwrap()[0];
    assert_eq!(first.attempts, 3);
    assert_eq!(first.last_error.as_deref(), Some("timeout"));
    assert!(first.sent_at.is_some() && first.failed_at.is_none());
    let settled = &store.statuses_of(DeploymentId(2)).await.unwrap()[0];
    assert_eq!(settled.attempts, 0);
    assert_eq!(settled.last_error.as_deref(), Some(COALESCED));
    assert!(settled.failed_at.is_some() && settled.sent_at.is_none());

    // 1 finishes: its success comes first even with room for one only.
    succeed(&store, one.claim()).await;
    let due = store.due_statuses(Timestamp::now(), 1).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].deployment_id, DeploymentId(1));
    assert_eq!(due[0].status.state, StatusState::Success);
}

async fn outbox_sends_in_order_per_deployment_and_survives_reopen(b: Backend) {
    let store = (b.open)().await;
    accept(&store, 1, "p", false).await;
    accept(&store, 2, "s", false).await;
    let one = store.claim_next(&me()).await.unwrap().unwrap();
    assert!(
        store
            .add_status(
                one.claim(),
                &NewStatus::new(StatusState::InProgress, "go").with_log_url("http://x/1"),
            )
            .await
            .unwrap()
    );
    let due = store.due_statuses(Timestamp::now(), 10).await.unwrap();
    assert_eq!(due.len(), 2, "one head per deployment");
    assert!(due.iter().all(|i| i.status.state == StatusState::Queued));
    assert_eq!(due[0].deployment_id, DeploymentId(1));
    assert_eq!(due[0].repository, "o/r");
    assert_eq!(due[0].installation_id, Some(7));
    // Deployment 1's head is postponed: its in_progress waits behind it.
    store
        .record_posts(&[
            (
                due[0].seq,
                PostOutcome::RetryAt {
                    at: Timestamp::now() + Duration::from_millis(60_000),
                    error: "503".into(),
                },
            ),
            (due[1].seq, PostOutcome::Sent),
        ])
        .await
        .unwrap();
    store.close().await;
    let store = (b.open)().await;
    assert!(
        store
            .due_statuses(Timestamp::now(), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.next_status_due().await.unwrap().is_some());
    let later = store
        .due_statuses(Timestamp::now() + Duration::from_millis(61_000), 10)
        .await
        .unwrap();
    assert_eq!(later.len(), 1);
    assert_eq!(later[0].status.state, StatusState::Queued);
    assert_eq!(later[0].attempts, 1);
    store
        .record_posts(&[(
            later[0].seq,
            PostOutcome::Failed {
                error: "422".into(),
            },
        )])
        .await
        .unwrap();
    let next = store
        .due_statuses(Timestamp::now() + Duration::from_millis(61_000), 10)
        .await
        .unwrap();
    assert_eq!(
        next[0].status.state,
        StatusState::InProgress,
        "a refused status does not block the next"
    );
    assert_eq!(next[0].status.log_url.as_deref(), Some("http://x/1"));
    store
        .record_posts(&[(next[0].seq, PostOutcome::Sent)])
        .await
        .unwrap();
    assert_eq!(store.pending_statuses().await.unwrap(), 0);
    assert_eq!(store.next_status_due().await.unwrap(), None);
}

async fn each_status_is_handed_to_one_replica_at_a_time(b: Backend) {
    let (one, two) = ((b.open)().await, (b.open)().await);
    if !one.replicas() {
        // One process: its outbox keeps track of what it has in flight.
        return;
    }
    accept(&one, 1, "p", false).await;
    let first = one.due_statuses(Timestamp::now(), 10).await.unwrap();
    assert_eq!(first.len(), 1);
    assert!(
        two.due_statuses(Timestamp::now(), 10)
            .await
            .unwrap()
            .is_empty(),
        "the other replica is sending"
    );
    one.record_posts(&[(
        first[0].seq,
        PostOutcome::RetryAt {
            at: Timestamp::now(),
            error: "503".into(),
        },
    )])
    .await
    .unwrap();
    assert!(
        two.due_statuses(Timestamp::now(), 10)
            .await
            .unwrap()
            .is_empty()
    );
    // A replica that stops lets go at once.
    one.close().await;
    let again = two.due_statuses(Timestamp::now(), 10).await.unwrap();
    assert_eq!(again.len(), 1, "the next replica sends it");
    assert_eq!(again[0].seq, first[0].seq);
}

/// The outbox's head lookups on PostgreSQL find each deployment's first
/// pending status by its key, never by walking the pending statuses in
/// order, also when the statistics lag a burst: they were gathered with
/// 2,000 statuses all sent, and now 20,000 more are pending behind them.
#[tokio::test(flavor = "multi_thread")]
async fn the_postgres_outbox_finds_heads_by_deployment() {
    let pool = migrated_postgres().await;
    sqlx::raw_sql(
        "INSERT INTO deployments (id, repository, environment, task, git_ref, sha, payload,
             creator, production, transient, state, created_at)
         SELECT n, 'o/r', 'production', 'deploy', 'main', 'abc', '{}', 'me', true, false,
             'inactive', 0
         FROM generate_series(1, 11000) n;
         INSERT INTO status_outbox (deployment_id, state, description, created_at,
             next_attempt_at, sent_at)
         SELECT n, s, 'sent', 0, 0, 1 FROM generate_series(1, 1000) n,
             unnest(ARRAY['queued', 'inactive']) s;
         ANALYZE;
         INSERT INTO status_outbox (deployment_id, state, description, created_at,
             next_attempt_at)
         SELECT n, s, 'burst', 0, 0 FROM generate_series(1001, 11000) n,
             unnest(ARRAY['queued', 'inactive']) s ORDER BY n, s DESC;
         INSERT INTO status_outbox (deployment_id, state, description, created_at,
             next_attempt_at)
         VALUES (11000, 'in_progress', 'running', 0, 0);",
    )
    .execute(&pool)
    .await
    .unwrap();
    for query in [
        ferry::store::postgres::outbox::URGENT_HEADS,
        ferry::store::postgres::outbox::BACKLOG_HEADS,
    ] {
        let plan: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "EXPLAIN (ANALYZE, COSTS OFF) {query}"
        )))
        .bind(i64::MAX)
        .bind(64_i64)
        .fetch_all(&pool)
        .await
        .unwrap();
        let plan = plan.join("\n");
        let lookups: Vec<&str> = plan
            .lines()
            .filter(|l| l.contains(" on status_outbox p"))
            .collect();
        assert!(!lookups.is_empty(), "{plan}");
        for lookup in lookups {
            assert!(
                lookup.contains("using status_outbox_pending on status_outbox p"),
                "{lookup}: {plan}"
            );
        }
    }
    // What the lookups found: the running deployment's head first, then
    // the backlog's from its start.
    let heads: Vec<(i64, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT deployment_id, state FROM ({}) h UNION ALL
             SELECT deployment_id, state FROM ({}) b",
        ferry::store::postgres::outbox::URGENT_HEADS,
        ferry::store::postgres::outbox::BACKLOG_HEADS
    )))
    .bind(i64::MAX)
    .bind(2_i64)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        heads,
        [
            (11000, "queued".into()),
            (1001, "queued".into()),
            (1002, "queued".into())
        ]
    );
    pool.close().await;
}
