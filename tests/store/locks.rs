//! Environment locks and lock tasks.

use std::time::Duration;

use ferry::store::*;
use ferry_testkit::backends;

use super::*;

backends!(
    with backend;
    a_locked_environment_is_claimed_only_after_its_unlock,
    lock_tasks_change_the_lock_once_and_are_stored_finished,
    a_lock_for_a_while_lifts_once_its_time_is_out,
);

fn env_lock(env: &str, holder: &str) -> EnvLock {
    EnvLock {
        repository: "o/r".into(),
        environment: env.into(),
        holder: holder.into(),
        reason: "why".into(),
        since: Timestamp::from_millis(1_000),
        until: None,
    }
}

async fn a_locked_environment_is_claimed_only_after_its_unlock(b: Backend) {
    let store = (b.open)().await;
    assert_eq!(store.lock(&env_lock("p", "alice")).await.unwrap(), None);
    assert_eq!(
        store.lock(&env_lock("p", "bob")).await.unwrap(),
        Some(env_lock("p", "alice")),
        "a second lock changes nothing and names the holder"
    );
    assert_eq!(store.locks().await.unwrap(), [env_lock("p", "alice")]);
    accept(&store, 1, "p", true).await;
    accept(&store, 2, "s", true).await;
    let claimed = store.claim_next(&me()).await.unwrap().unwrap();
    assert_eq!(
        claimed.id,
        DeploymentId(2),
        "only the unlocked environment runs"
    );
    assert!(store.claim_next(&me()).await.unwrap().is_none());
    // Survives a reopen.
    let store = (b.open)().await;
    assert_eq!(store.locks().await.unwrap().len(), 1);
    assert_eq!(
        store.unlock("o/r", "p", "bob").await.unwrap(),
        Some(env_lock("p", "alice"))
    );
    assert_eq!(store.unlock("o/r", "p", "bob").await.unwrap(), None);
    assert!(store.locks().await.unwrap().is_empty());
    let claimed = store.claim_next(&me()).await.unwrap().unwrap();
    assert_eq!(claimed.id, DeploymentId(1));
}

async fn lock_tasks_change_the_lock_once_and_are_stored_finished(b: Backend) {
    let store = (b.open)().await;
    let task = |id: i64, name: &str| NewDeployment {
        task: name.into(),
        ..deployment(id, "p")
    };
    accept(&store, 1, "p", true).await;
    let (accepted, done) = store
        .accept_lock_task(
            &key("l1"),
            &task(10, "deploy:lock"),
            LockTask::Lock,
            "incident",
            "u",
        )
        .await
        .unwrap();
    assert_eq!(accepted, new());
    assert_eq!(done.unwrap().0, State::Success);
    let held = store.locks().await.unwrap();
    assert_eq!(held.len(), 1);
    assert_eq!(
        (held[0].holder.as_str(), held[0].reason.as_str()),
        ("me", "incident")
    );
    // The same delivery again: nothing changes.
    let (again, done) = store
        .accept_lock_task(
            &key("l1"),
            &task(10, "deploy:lock"),
            LockTask::Lock,
            "",
            "u",
        )
        .await
        .unwrap();
    assert_eq!((again, done), (Accepted::DuplicateDelivery, None));
    let (_, done) = store
        .accept_lock_task(
            &key("l2"),
            &task(11, "deploy:lock"),
            LockTask::Lock,
            "",
            "u",
        )
        .await
        .unwrap();
    let (state, description) = done.unwrap();
    assert_eq!(state, State::Failure);
    assert!(description.contains("me since"), "{description}");
    let (_, done) = store
        .accept_lock_task(
            &key("l3"),
            &task(12, "deploy:unlock"),
            LockTask::Unlock,
            "",
            "u",
        )
        .await
        .unwrap();
    assert_eq!(done.unwrap().0, State::Success);
    assert!(store.locks().await.unwrap().is_empty());
    for id in [10, 11, 12] {
        let d = store.get(DeploymentId(id)).await.unwrap().unwrap();
        assert!(d.state.is_final(), "{id}: {:?}", d.state);
    }
    // The deployment waiting before them is neither superseded nor run.
    assert_eq!(
        store.get(DeploymentId(1)).await.unwrap().unwrap().state,
        State::Queued
    );
    let claimed = store.claim_next(&me()).await.unwrap().unwrap();
    assert_eq!(claimed.id, DeploymentId(1));
}

async fn a_lock_for_a_while_lifts_once_its_time_is_out(b: Backend) {
    let store = (b.open)().await;
    let now = Timestamp::now();
    let brief = EnvLock {
        until: Some(now + Duration::from_millis(1_000)),
        ..env_lock("p", "alice")
    };
    store.lock(&brief).await.unwrap();
    store.lock(&env_lock("s", "bob")).await.unwrap();
    assert_eq!(
        store.locks().await.unwrap()[0].until,
        Some(now + Duration::from_millis(1_000))
    );
    assert!(store.expire_locks(now, "ferry").await.unwrap().is_empty());
    // Its time is out: it lifts, the unlock event names who lifted it,
    // and a lock without --for stays.
    let lifted = store
        .expire_locks(now + Duration::from_millis(1_000), "ferry")
        .await
        .unwrap();
    assert_eq!(lifted, [brief]);
    let left: Vec<String> = store
        .locks()
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.environment)
        .collect();
    assert_eq!(left, ["s"]);
    assert!(
        store
            .expire_locks(now + Duration::from_millis(10_000), "ferry")
            .await
            .unwrap()
            .is_empty()
    );
}
