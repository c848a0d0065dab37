//! Deployments waiting for their required checks: they hold their
//! environment's turn without running, each due look goes to one of
//! several replicas, and they open, fail or say what they wait for once.

use std::time::Duration;

use ferry::store::*;
use ferry_testkit::backends;

use super::*;

backends!(
    with backend;
    a_gated_deployment_holds_its_turn_until_its_gate_opens,
    each_due_look_is_taken_once_and_pushed_to_the_next,
    a_gate_fails_or_waits_saying_so_once,
);

async fn accept_gated(store: &SharedStore, id: i64, env: &str) {
    let d = NewDeployment {
        gated: true,
        ..deployment(id, env)
    };
    let accepted = store
        .accept(&key(&format!("g{id}")), &d, &queued(), false)
        .await
        .unwrap();
    assert_eq!(accepted, new());
}

async fn a_gated_deployment_holds_its_turn_until_its_gate_opens(b: Backend) {
    let store = (b.open)().await;
    accept_gated(&store, 1, "p").await;
    accept(&store, 2, "p", false).await;
    accept(&store, 3, "q", false).await;
    assert!(store.get(DeploymentId(1)).await.unwrap().unwrap().gated);
    // Neither the gated one nor the one behind it runs; another
    // environment does.
    let claimed = store.claim_next(&me()).await.unwrap().unwrap();
    assert_eq!(claimed.id, DeploymentId(3));
    assert!(store.claim_next(&me()).await.unwrap().is_none());
    assert!(store.open_gate(DeploymentId(1)).await.unwrap());
    assert!(
        !store.open_gate(DeploymentId(1)).await.unwrap(),
        "opened once"
    );
    let next = store.claim_next(&me()).await.unwrap().unwrap();
    assert_eq!(next.id, DeploymentId(1));
    assert!(!next.gated);
    // One that never waited has no gate to open.
    assert!(!store.open_gate(DeploymentId(2)).await.unwrap());
}

async fn each_due_look_is_taken_once_and_pushed_to_the_next(b: Backend) {
    let store = (b.open)().await;
    let other = (b.open)().await;
    accept_gated(&store, 1, "p").await;
    accept_gated(&store, 2, "q").await;
    let now = Timestamp::now() + Duration::from_millis(1);
    let (a, b2) = tokio::join!(
        store.due_gates(now, now + Duration::from_millis(15_000), 10),
        other.due_gates(now, now + Duration::from_millis(15_000), 10)
    );
    let mut ids: Vec<i64> = a
        .unwrap()
        .into_iter()
        .chain(b2.unwrap())
        .map(|d| d.id.0)
        .collect();
    ids.sort();
    assert_eq!(ids, [1, 2], "each look once");
    assert!(
        store
            .due_gates(
                now + Duration::from_millis(1_000),
                now + Duration::from_millis(16_000),
                10
            )
            .await
            .unwrap()
            .is_empty()
    );
    // A webhook for one sha brings its deployments' looks forward.
    let mut c = deployment(3, "r");
    c.sha = "def".into();
    c.gated = true;
    store
        .accept(&key("g3"), &c, &queued(), false)
        .await
        .unwrap();
    store
        .due_gates(
            Timestamp::now() + Duration::from_millis(1),
            Timestamp::now() + Duration::from_millis(15_000),
            10,
        )
        .await
        .unwrap();
    assert_eq!(store.look_again("o/r", "abc").await.unwrap(), 2);
    assert_eq!(store.look_again("o/r", "nothing").await.unwrap(), 0);
    let due: Vec<i64> = store
        .due_gates(
            Timestamp::now() + Duration::from_millis(1),
            Timestamp::now() + Duration::from_millis(15_000),
            10,
        )
        .await
        .unwrap()
        .iter()
        .map(|d| d.id.0)
        .collect();
    assert_eq!(due, [1, 2]);
    // A nearer timeout: looked at then.
    let at = Timestamp::now() + Duration::from_millis(2_000);
    store.next_look(DeploymentId(3), at).await.unwrap();
    assert!(
        store
            .due_gates(
                at - Duration::from_millis(1),
                at + Duration::from_millis(15_000),
                10
            )
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .due_gates(at, at + Duration::from_millis(15_000), 10)
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn a_gate_fails_or_waits_saying_so_once(b: Backend) {
    let store = (b.open)().await;
    accept_gated(&store, 1, "p").await;
    accept_gated(&store, 2, "q").await;
    let before = store.pending_statuses().await.unwrap();
    let waiting = NewStatus::new(StatusState::Queued, "Waiting for checks on abc: lint");
    assert!(store.gate_waiting(DeploymentId(1), &waiting).await.unwrap());
    assert!(
        !store.gate_waiting(DeploymentId(1), &waiting).await.unwrap(),
        "said once"
    );
    assert_eq!(store.pending_statuses().await.unwrap(), before + 1);
    let d = store.get(DeploymentId(1)).await.unwrap().unwrap();
    assert_eq!(d.description, "Waiting for checks on abc: lint");
    assert_eq!(d.state, State::Queued);
    let failed = NewStatus::new(StatusState::Failure, "Check 'lint' failed on abc");
    assert!(store.fail_gate(DeploymentId(1), &failed).await.unwrap());
    assert!(!store.fail_gate(DeploymentId(1), &failed).await.unwrap());
    let d = store.get(DeploymentId(1)).await.unwrap().unwrap();
    assert_eq!(
        (d.state, d.description.as_str(), d.gated),
        (State::Failure, "Check 'lint' failed on abc", false)
    );
    assert!(d.finished_at.is_some());
    assert_eq!(store.pending_statuses().await.unwrap(), before + 2);
    // Superseded while waiting: its gate is gone with it.
    let newer = NewDeployment {
        gated: true,
        ..deployment(3, "q")
    };
    store
        .accept(&key("g3"), &newer, &queued(), true)
        .await
        .unwrap();
    assert!(!store.open_gate(DeploymentId(2)).await.unwrap());
    assert!(!store.gate_waiting(DeploymentId(2), &waiting).await.unwrap());
    assert!(store.get(DeploymentId(3)).await.unwrap().unwrap().gated);
}
