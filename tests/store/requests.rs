//! Deployments asked for from the command line (`ferry deploy`, `ferry
//! rollback`): left by the command, taken once by one of several
//! replicas, answered; never taken after the deadline or once withdrawn.

use std::time::Duration;

use ferry::store::*;
use ferry_testkit::backends;

use super::*;

backends!(
    with backend;
    a_request_is_taken_once_and_its_answer_read_back,
    no_ferry_takes_a_request_after_its_deadline_or_once_withdrawn,
    the_last_good_version_is_the_newest_success_with_another_sha,
);

fn request(actor: &str) -> DeployRequest {
    DeployRequest {
        actor: actor.into(),
        repository: "o/r".into(),
        environment: "p".into(),
        git_ref: "main".into(),
        task: "deploy".into(),
        payload: r#"{"migrate":true}"#.into(),
        description: format!("Deploy by {actor}"),
        skip_contexts: false,
        production: None,
        transient: Some(true),
        rollback_of: None,
    }
}

const WITHIN: Duration = Duration::from_secs(30);
const MARGIN: Duration = Duration::from_secs(2);

async fn a_request_is_taken_once_and_its_answer_read_back(b: Backend) {
    let store = (b.open)().await;
    let other = (b.open)().await;
    assert!(store.take_request(&me(), MARGIN).await.unwrap().is_none());
    let mut rollback = request("bob");
    rollback.rollback_of = Some(DeploymentId(41));
    rollback.skip_contexts = true;
    rollback.production = Some(false);
    let first = store
        .request_deployment(&request("alice"), WITHIN)
        .await
        .unwrap();
    let second = store.request_deployment(&rollback, WITHIN).await.unwrap();
    assert!(second > first);
    assert_eq!(
        store.request_state(first).await.unwrap(),
        Some(RequestState::Pending)
    );
    // Two replicas at once: each request goes to one of them.
    let (us, them) = (me(), Owner("other (pid 2)".into()));
    let (a, b2) = tokio::join!(
        store.take_request(&us, MARGIN),
        other.take_request(&them, MARGIN)
    );
    let mut taken: Vec<TakenRequest> = [a.unwrap(), b2.unwrap()].into_iter().flatten().collect();
    taken.extend(store.take_request(&me(), MARGIN).await.unwrap());
    assert!(store.take_request(&me(), MARGIN).await.unwrap().is_none());
    assert!(other.take_request(&them, MARGIN).await.unwrap().is_none());
    taken.sort_by_key(|t| t.seq);
    assert_eq!(
        taken.iter().map(|t| t.seq).collect::<Vec<_>>(),
        [first, second]
    );
    assert_eq!(taken[0].request, request("alice"));
    assert_eq!(taken[1].request, rollback);
    for t in &taken {
        assert!(
            t.left > WITHIN - Duration::from_secs(5) && t.left <= WITHIN,
            "{:?}",
            t.left
        );
    }
    assert!(matches!(
        store.request_state(first).await.unwrap(),
        Some(RequestState::Taken { .. })
    ));
    // Taken: the command's withdrawal changes nothing.
    assert!(matches!(
        store.withdraw_request(first).await.unwrap(),
        Some(RequestState::Taken { .. })
    ));
    store
        .answer_request(first, &RequestAnswer::Created(DeploymentId(5002)))
        .await
        .unwrap();
    let refused =
        RequestAnswer::Refused("409 Conflict: Commit status checks failed for main.".into());
    other.answer_request(second, &refused).await.unwrap();
    assert_eq!(
        other.request_state(first).await.unwrap(),
        Some(RequestState::Answered(RequestAnswer::Created(
            DeploymentId(5002)
        )))
    );
    assert_eq!(
        store.withdraw_request(second).await.unwrap(),
        Some(RequestState::Answered(refused))
    );
    for answer in [
        RequestAnswer::Unreachable("cannot reach GitHub".into()),
        RequestAnswer::InDoubt("no answer".into()),
    ] {
        let seq = store
            .request_deployment(&request("carol"), WITHIN)
            .await
            .unwrap();
        assert!(store.take_request(&me(), MARGIN).await.unwrap().is_some());
        store.answer_request(seq, &answer).await.unwrap();
        assert_eq!(
            store.request_state(seq).await.unwrap(),
            Some(RequestState::Answered(answer))
        );
    }
    assert_eq!(store.request_state(9999).await.unwrap(), None);
}

async fn no_ferry_takes_a_request_after_its_deadline_or_once_withdrawn(b: Backend) {
    let store = (b.open)().await;
    // Less time left than the margin: no ferry could answer in time.
    let late = store
        .request_deployment(&request("alice"), Duration::from_secs(1))
        .await
        .unwrap();
    assert!(store.take_request(&me(), MARGIN).await.unwrap().is_none());
    // The request's deadline (1 s on the store's clock) must pass.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(
        store
            .take_request(&me(), Duration::ZERO)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store.withdraw_request(late).await.unwrap(),
        Some(RequestState::Withdrawn)
    );
    let withdrawn = store
        .request_deployment(&request("bob"), WITHIN)
        .await
        .unwrap();
    assert_eq!(
        store.withdraw_request(withdrawn).await.unwrap(),
        Some(RequestState::Withdrawn)
    );
    assert!(store.take_request(&me(), MARGIN).await.unwrap().is_none());
    let reopened = (b.open)().await;
    assert_eq!(
        reopened.request_state(withdrawn).await.unwrap(),
        Some(RequestState::Withdrawn)
    );
}

async fn the_last_good_version_is_the_newest_success_with_another_sha(b: Backend) {
    let store = (b.open)().await;
    let finish = |id: i64, sha: &'static str, state: State| {
        let store = store.clone();
        async move {
            let mut d = deployment(id, "p");
            d.sha = sha.into();
            store
                .accept(&key(&format!("k{id}")), &d, &queued(), false)
                .await
                .unwrap();
            let claim = store.claim_next(&me()).await.unwrap().unwrap().claim();
            let status = NewStatus::new(state.final_status(), "done");
            assert!(store.finish(claim, state, &status).await.unwrap());
        }
    };
    assert!(store.history("o/r", "p", 10).await.unwrap().is_empty());
    finish(1, "aaa", State::Success).await;
    finish(2, "bbb", State::Success).await;
    finish(3, "bbb", State::Failure).await;
    // Another environment and a lock task are no part of p's history.
    accept(&store, 4, "q", false).await;
    let mut lock = deployment(5, "p");
    lock.task = "deploy:lock".into();
    store
        .accept_lock_task(&key("k5"), &lock, LockTask::Lock, "", "")
        .await
        .unwrap();
    let history = store.history("o/r", "p", 10).await.unwrap();
    let ids: Vec<i64> = history.iter().map(|d| d.id.0).collect();
    assert_eq!(ids, [3, 2, 1]);
    assert_eq!(store.history("o/r", "p", 2).await.unwrap().len(), 2);
    // The newest is bbb (failed): bbb's success is no way back, aaa is.
    assert_eq!(last_good(&history).map(|d| d.id.0), Some(1));
    assert_eq!(
        store
            .last_success("o/r", "p")
            .await
            .unwrap()
            .map(|d| d.id.0),
        Some(2)
    );
    // A newest success with a new sha: the way back is the one before.
    finish(6, "ccc", State::Success).await;
    let history = store.history("o/r", "p", 10).await.unwrap();
    assert_eq!(last_good(&history).map(|d| d.id.0), Some(2));
    // Nothing else ever succeeded: nothing to roll back to.
    assert!(last_good(&history[..1]).is_none());
    assert!(last_good(&[]).is_none());
}
