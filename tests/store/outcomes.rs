//! What deployments came to: ended deployments read with their cancels,
//! rollbacks and commit times; a commit-time look queued when a
//! deployment that ran ends, taken by one process, done once.

use std::time::Duration;

use ferry::store::*;
use ferry_testkit::backends;

use super::*;

backends!(
    with backend;
    ended_deployments_are_read_with_cancels_rollbacks_and_commit_times,
    a_commit_look_is_queued_once_per_deployment_that_ran_and_done_once,
);

/// 1 succeeds and 2 fails in `p`, 3 waits there and is cancelled, 4 ends
/// in `error` in `q`.
async fn history(store: &SharedStore) {
    accept(store, 1, "p", false).await;
    accept(store, 2, "p", false).await;
    accept(store, 3, "p", false).await;
    accept(store, 4, "q", false).await;
    let one = store.claim_next(&me()).await.unwrap().unwrap();
    assert_eq!(one.id, DeploymentId(1));
    succeed(store, one.claim()).await;
    let mut claimed = Vec::new();
    while let Some(d) = store.claim_next(&me()).await.unwrap() {
        claimed.push(d);
    }
    assert_eq!(
        claimed.iter().map(|d| d.id.0).collect::<Vec<_>>(),
        [2, 4],
        "one at a time per environment"
    );
    let fail = NewStatus::new(StatusState::Failure, "Step 'migrate' failed on web1");
    store
        .finish(claimed[0].claim(), State::Failure, &fail)
        .await
        .unwrap();
    let c = Cancellation {
        by: "carol".into(),
        reason: String::new(),
        rollback: false,
    };
    let status = NewStatus::new(StatusState::Error, c.describe());
    assert_eq!(
        store.cancel(DeploymentId(3), &c, &status).await.unwrap(),
        CancelOutcome::Ended
    );
    let error = NewStatus::new(StatusState::Error, "Could not connect to web1");
    store
        .finish(claimed[1].claim(), State::Error, &error)
        .await
        .unwrap();
}

async fn ended_deployments_are_read_with_cancels_rollbacks_and_commit_times(b: Backend) {
    let store = (b.open)().await;
    let start = Timestamp::now();
    history(&store).await;
    store
        .record_rollback(DeploymentId(2), RollbackKind::Automatic)
        .await
        .unwrap();
    store
        .record_rollback(DeploymentId(2), RollbackKind::Requested)
        .await
        .unwrap();
    let all = store
        .ended_since(start - Duration::from_millis(1), None)
        .await
        .unwrap();
    let ids: Vec<i64> = all.iter().map(|e| e.id.0).collect();
    let mut by_end = ids.clone();
    by_end.sort_by_key(|id| all.iter().find(|e| e.id.0 == *id).unwrap().finished_at);
    assert_eq!(ids, by_end, "in the order they ended");
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(sorted, [1, 2, 3, 4]);
    let get = |id: i64| all.iter().find(|e| e.id.0 == id).unwrap().clone();
    assert_eq!(
        (get(1).state, get(1).cancelled, get(1).rollback),
        (State::Success, false, false)
    );
    assert_eq!((get(2).state, get(2).rollback), (State::Failure, true));
    assert_eq!((get(3).state, get(3).cancelled), (State::Error, true));
    assert_eq!(get(3).word(), "cancelled");
    assert!(get(3).started_at.is_none(), "it never ran");
    assert_eq!((get(4).environment.as_str(), get(4).word()), ("q", "error"));
    let p = store
        .ended_since(start - Duration::from_millis(1), Some(("o/r", "p")))
        .await
        .unwrap();
    assert_eq!(p.len(), 3);
    assert!(p.iter().all(|e| e.environment == "p"));
    assert!(
        store
            .ended_since(Timestamp::now() + Duration::from_millis(60_000), None)
            .await
            .unwrap()
            .is_empty(),
        "nothing ended after now"
    );
    assert_eq!(store.ended(DeploymentId(2)).await.unwrap(), Some(get(2)));
    accept(&store, 5, "p", false).await;
    assert_eq!(store.ended(DeploymentId(5)).await.unwrap(), None, "queued");
    assert_eq!(store.ended(DeploymentId(99)).await.unwrap(), None);
    let before: Vec<i64> = store
        .ended_before(DeploymentId(3), 10)
        .await
        .unwrap()
        .iter()
        .map(|e| e.id.0)
        .collect();
    assert_eq!(before, [2, 1], "newest first, of its environment only");
    assert_eq!(
        store.ended_before(DeploymentId(3), 1).await.unwrap().len(),
        1
    );
}

async fn a_commit_look_is_queued_once_per_deployment_that_ran_and_done_once(b: Backend) {
    let store = (b.open)().await;
    let replica = (b.open)().await;
    history(&store).await;
    let now = Timestamp::now() + Duration::from_millis(1);
    let (other, mine_owner) = (Owner("other (pid 2)".into()), me());
    let (mine, theirs) = tokio::join!(
        store.due_commit_looks(&mine_owner, now, now + Duration::from_millis(60_000), 10),
        replica.due_commit_looks(&other, now, now + Duration::from_millis(60_000), 10)
    );
    let (mine, theirs) = (mine.unwrap(), theirs.unwrap());
    let mut looks: Vec<CommitLook> = mine.iter().chain(&theirs).cloned().collect();
    looks.sort_by_key(|l| l.deployment);
    assert_eq!(
        looks.iter().map(|l| l.deployment.0).collect::<Vec<_>>(),
        [1, 2, 4],
        "each deployment that ran, once; not the cancel that never ran: {mine:?} {theirs:?}"
    );
    assert_eq!(
        (looks[0].repository.as_str(), looks[0].sha.as_str()),
        ("o/r", "abc")
    );
    assert_eq!(looks[0].installation_id, Some(7));
    let owner_of = |l: &CommitLook| {
        if mine.contains(l) {
            me()
        } else {
            other.clone()
        }
    };
    let (first, second) = (&looks[0], &looks[1]);
    let committed = Timestamp::from_millis(1_700_000_000_000);
    let stranger = Owner("stranger (pid 3)".into());
    assert!(
        !store
            .commit_look_done(first.seq, &stranger, Some(committed), None)
            .await
            .unwrap(),
        "fenced by its lease"
    );
    assert_eq!(store.known_commit_time("o/r", "abc").await.unwrap(), None);
    assert!(
        store
            .commit_look_done(first.seq, &owner_of(first), Some(committed), None)
            .await
            .unwrap()
    );
    assert!(
        !store
            .commit_look_done(first.seq, &owner_of(first), Some(committed), None)
            .await
            .unwrap(),
        "done once"
    );
    assert_eq!(
        replica.known_commit_time("o/r", "abc").await.unwrap(),
        Some(committed)
    );
    assert_eq!(replica.known_commit_time("o/r", "abd").await.unwrap(), None);
    assert_eq!(
        store
            .ended(DeploymentId(1))
            .await
            .unwrap()
            .unwrap()
            .committed_at,
        Some(committed)
    );
    // GitHub out of reach: tried again later, the try counted.
    assert!(
        store
            .commit_look_later(second.seq, &owner_of(second), now, "could not reach GitHub")
            .await
            .unwrap()
    );
    let again = store
        .due_commit_looks(
            &stranger,
            now + Duration::from_millis(1),
            now + Duration::from_millis(60_000),
            10,
        )
        .await
        .unwrap();
    assert_eq!(again.len(), 1, "{again:?}");
    assert_eq!((again[0].seq, again[0].attempts), (second.seq, 1));
    assert!(
        store
            .commit_look_done(
                second.seq,
                &stranger,
                None,
                Some("GitHub has no commit abc")
            )
            .await
            .unwrap()
    );
    // A process alone on its store takes over the last one's looks.
    if !store.replicas() {
        assert_eq!(store.release_commit_looks().await.unwrap(), 1);
        let left = store
            .due_commit_looks(
                &me(),
                Timestamp::now() + Duration::from_millis(1),
                Timestamp::now() + Duration::from_millis(60_000),
                10,
            )
            .await
            .unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].deployment, DeploymentId(4));
    }
}
