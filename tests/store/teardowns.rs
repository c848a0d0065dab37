//! Teardowns: in the environment's turn, by cause.

use std::time::Duration;

use ferry::store::*;
use ferry_testkit::backends;

use super::*;

backends!(
    with backend;
    a_teardown_takes_the_environments_turn_and_inactivates_what_came_before,
    teardowns_of_transient_environments_follow_their_cause,
);

async fn a_teardown_takes_the_environments_turn_and_inactivates_what_came_before(b: Backend) {
    let store = (b.open)().await;
    let operator = TeardownCause::Operator("alice".into());
    assert!(matches!(
        store.queue_teardown("o/r", "p", &operator).await.unwrap(),
        TeardownQueued::NoDeployment
    ));
    accept(&store, 1, "p", true).await;
    let one = store.claim_next(&me()).await.unwrap().unwrap();
    succeed(&store, one.claim()).await;
    accept(&store, 2, "p", true).await;
    let two = store.claim_next(&me()).await.unwrap().unwrap();
    accept(&store, 3, "p", true).await;

    let TeardownQueued::Queued {
        teardown,
        superseded,
    } = store.queue_teardown("o/r", "p", &operator).await.unwrap()
    else {
        panic!("not queued");
    };
    assert!(teardown.id.is_teardown());
    assert_eq!(teardown.teardown_of, Some(DeploymentId(3)));
    assert_eq!(superseded, [DeploymentId(3)]);
    assert!(matches!(
        store.queue_teardown("o/r", "p", &operator).await.unwrap(),
        TeardownQueued::Already(t) if t.id == teardown.id
    ));
    // A deployment after it waits behind it, and does not supersede it.
    assert_eq!(accept(&store, 4, "p", true).await, new());
    assert!(store.claim_next(&me()).await.unwrap().is_none());
    succeed(&store, two.claim()).await;
    let running = store.claim_next(&me()).await.unwrap().unwrap();
    assert_eq!(running.id, teardown.id);
    assert!(store.claim_next(&me()).await.unwrap().is_none());

    let gone = store
        .finish_teardown(running.claim(), State::Success, "Torn down")
        .await
        .unwrap();
    assert_eq!(gone, Some(vec![DeploymentId(1), DeploymentId(2)]));
    assert!(
        store
            .finish_teardown(running.claim(), State::Success, "again")
            .await
            .unwrap()
            .is_none(),
        "fenced"
    );
    for id in [1, 2, 3] {
        let d = store.get(DeploymentId(id)).await.unwrap().unwrap();
        assert_eq!(d.state, State::Inactive, "deployment {id}");
    }
    assert_eq!(
        store.claim_next(&me()).await.unwrap().unwrap().id,
        DeploymentId(4)
    );
    // The teardown posts nothing itself; each inactive once.
    let mut inactive = HashMap::new();
    for item in store.due_statuses(Timestamp::now(), 100).await.unwrap() {
        assert!(!item.deployment_id.is_teardown(), "{item:?}");
    }
    let mut posted = Vec::new();
    loop {
        let due = store.due_statuses(Timestamp::now(), 100).await.unwrap();
        if due.is_empty() {
            break;
        }
        for item in &due {
            if item.status.state == StatusState::Inactive {
                *inactive.entry(item.deployment_id.0).or_insert(0) += 1;
            }
            posted.push((item.seq, PostOutcome::Sent));
        }
        store.record_posts(&posted).await.unwrap();
    }
    assert_eq!(inactive, HashMap::from([(1, 1), (2, 1), (3, 1)]));
}

async fn teardowns_of_transient_environments_follow_their_cause(b: Backend) {
    let store = (b.open)().await;
    let mut review = deployment(1, "review-1");
    review.transient = true;
    review.git_ref = "refs/heads/feature".into();
    store
        .accept(&key("k1"), &review, &queued(), true)
        .await
        .unwrap();
    accept(&store, 2, "production", true).await;
    let closed = |head_ref: &str| TeardownCause::PullRequest {
        number: 7,
        head_ref: head_ref.into(),
        head_sha: String::new(),
    };
    let latest = store.latest_deployments("o/r").await.unwrap();
    let ids: Vec<i64> = latest.iter().map(|d| d.id.0).collect();
    assert_eq!(ids, [1, 2]);
    assert!(
        store.ended_transient().await.unwrap().is_empty(),
        "none ended"
    );
    for d in [1, 2] {
        let c = store.claim_next(&me()).await.unwrap().unwrap();
        assert!(c.id.0 == d || c.id.0 == 3 - d);
        succeed(&store, c.claim()).await;
    }
    let ended = store.ended_transient().await.unwrap();
    assert_eq!(ended.len(), 1);
    assert_eq!(ended[0].id, DeploymentId(1));
    let idle = TeardownCause::Idle {
        ended_before: ended[0].finished_at.unwrap() - Duration::from_millis(1),
    };
    assert!(matches!(
        store
            .queue_teardown("o/r", "review-1", &idle)
            .await
            .unwrap(),
        TeardownQueued::NotApplicable(_)
    ));
    for (env, cause) in [
        ("review-1", closed("other")),
        ("production", closed("main")),
    ] {
        assert!(
            matches!(
                store.queue_teardown("o/r", env, &cause).await.unwrap(),
                TeardownQueued::NotApplicable(_)
            ),
            "{env}"
        );
    }
    let TeardownQueued::Queued { teardown, .. } = store
        .queue_teardown("o/r", "review-1", &closed("feature"))
        .await
        .unwrap()
    else {
        panic!("not queued");
    };
    assert!(
        store.ended_transient().await.unwrap().is_empty(),
        "torn down"
    );
    // A failed teardown ends it for automatic causes; an operator may
    // try again.
    let t = store.claim_next(&me()).await.unwrap().unwrap();
    assert_eq!(t.id, teardown.id);
    let gone = store
        .finish_teardown(t.claim(), State::Failure, "Not torn down")
        .await
        .unwrap();
    assert_eq!(gone, Some(vec![]));
    assert!(matches!(
        store
            .queue_teardown("o/r", "review-1", &closed("feature"))
            .await
            .unwrap(),
        TeardownQueued::Already(_)
    ));
    let again = store
        .queue_teardown("o/r", "review-1", &TeardownCause::Operator("bob".into()))
        .await
        .unwrap();
    assert!(matches!(again, TeardownQueued::Queued { .. }), "{again:?}");
    assert_eq!(
        store.get(DeploymentId(1)).await.unwrap().unwrap().state,
        State::Success,
        "a failed teardown changes nothing"
    );
}
