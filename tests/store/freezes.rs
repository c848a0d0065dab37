//! Freeze windows in the store: lifts shared by every replica, and claims
//! that pass over the environments a freeze holds (the runner names them).

use ferry::store::*;
use ferry_testkit::backends;

use super::*;

backends!(
    with backend;
    a_held_environment_is_not_claimed_and_others_are,
    lifts_are_recorded_once_and_forgotten_after_their_window,
);

fn held(env: &str) -> Vec<EnvKey> {
    vec![EnvKey::new("o/r", env)]
}

async fn a_held_environment_is_not_claimed_and_others_are(b: Backend) {
    let store = (b.open)().await;
    assert!(store.waiting_environments().await.unwrap().is_empty());
    accept(&store, 1, "production", false).await;
    accept(&store, 2, "production", false).await;
    accept(&store, 3, "staging", false).await;
    let mut waiting = store.waiting_environments().await.unwrap();
    waiting.sort();
    assert_eq!(
        waiting,
        [
            EnvKey::new("o/r", "production"),
            EnvKey::new("o/r", "staging")
        ]
    );
    // production is held: staging's deployment goes, though it came later.
    let first = store
        .claim_next_except(&me(), &held("production"), None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.id, DeploymentId(3));
    assert!(
        store
            .claim_next_except(&me(), &held("production"), None)
            .await
            .unwrap()
            .is_none()
    );
    // Another repository's environment of the same name is not held.
    let other = vec![EnvKey::new("x/y", "production")];
    let next = store
        .claim_next_except(&me(), &other, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(next.id, DeploymentId(1));
    succeed(&store, next.claim()).await;
    succeed(&store, first.claim()).await;
    // Only the environments looked at: a deployment to one that arrived
    // after the look waits for the next look, frozen or not.
    let looked_at = [EnvKey::new("o/r", "staging")];
    assert!(
        store
            .claim_next_except(&me(), &[], Some(&looked_at))
            .await
            .unwrap()
            .is_none()
    );
    accept(&store, 4, "staging", false).await;
    let staging = store
        .claim_next_except(&me(), &[], Some(&looked_at))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(staging.id, DeploymentId(4));
    succeed(&store, staging.claim()).await;
    // Released: production's next one, in its turn.
    let last = store.claim_next(&me()).await.unwrap().unwrap();
    assert_eq!(last.id, DeploymentId(2));
}

async fn lifts_are_recorded_once_and_forgotten_after_their_window(b: Backend) {
    let store = (b.open)().await;
    let lift = |env: &str, until: i64, at: i64| FreezeLift {
        repository: "o/r".into(),
        environment: env.into(),
        freeze: "weekend".into(),
        until: Timestamp::from_millis(until),
        by: "alice".into(),
        at: Timestamp::from_millis(at),
    };
    assert!(
        store
            .freeze_lifts(Timestamp::from_millis(1_000))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .lift_freeze(&lift("production", 5_000, 1_000))
            .await
            .unwrap()
    );
    assert!(
        !store
            .lift_freeze(&lift("production", 5_000, 1_500))
            .await
            .unwrap()
    );
    assert!(
        store
            .lift_freeze(&lift("staging", 9_000, 2_000))
            .await
            .unwrap()
    );
    let other = (b.open)().await;
    let lifts = other
        .freeze_lifts(Timestamp::from_millis(2_000))
        .await
        .unwrap();
    assert_eq!(
        lifts,
        [
            lift("production", 5_000, 1_000),
            lift("staging", 9_000, 2_000)
        ]
    );
    assert!(lifts[0].covers(
        "o/r",
        "production",
        "weekend",
        Timestamp::from_millis(5_000)
    ));
    assert!(!lifts[0].covers(
        "o/r",
        "production",
        "weekend",
        Timestamp::from_millis(6_000)
    ));
    assert!(!lifts[0].covers("o/r", "production", "nights", Timestamp::from_millis(5_000)));
    // After its window, a lift means nothing.
    assert_eq!(
        store
            .freeze_lifts(Timestamp::from_millis(5_000))
            .await
            .unwrap(),
        [lift("staging", 9_000, 2_000)]
    );
    // The next window of the same freeze may be lifted anew.
    assert!(
        store
            .lift_freeze(&lift("production", 12_000, 10_000))
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .freeze_lifts(Timestamp::from_millis(10_000))
            .await
            .unwrap(),
        [lift("production", 12_000, 10_000)]
    );
}
