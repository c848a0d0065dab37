//! Cancel: a waiting deployment ends, a running one is flagged.

use ferry::store::*;
use ferry_testkit::backends;

use super::*;

backends!(
    with backend;
    cancel_ends_a_waiting_deployment_and_flags_a_running_one,
);

async fn cancel_ends_a_waiting_deployment_and_flags_a_running_one(b: Backend) {
    let store = (b.open)().await;
    accept(&store, 1, "p", false).await;
    accept(&store, 2, "p", false).await;
    let running = store.claim_next(&me()).await.unwrap().unwrap();
    assert_eq!(running.id, DeploymentId(1));
    let c = Cancellation {
        by: "carol".into(),
        reason: "wrong branch".into(),
        rollback: true,
    };
    let status = NewStatus::new(StatusState::Error, c.describe());
    let pending = store.pending_statuses().await.unwrap();
    assert_eq!(
        store.cancel(DeploymentId(2), &c, &status).await.unwrap(),
        CancelOutcome::Ended
    );
    let waiting = store.get(DeploymentId(2)).await.unwrap().unwrap();
    assert_eq!(waiting.state, State::Error);
    // Who and why are on the deployment; whether to roll back is the
    // runner's to read (cancel_requests, below).
    let recorded = Cancellation {
        rollback: false,
        ..c.clone()
    };
    assert_eq!(waiting.cancelled, Some(recorded));
    assert_eq!(store.pending_statuses().await.unwrap(), pending + 1);
    assert!(
        store
            .cancel_requests(&[running.claim()])
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.cancel(DeploymentId(1), &c, &status).await.unwrap(),
        CancelOutcome::Requested
    );
    assert_eq!(
        store.get(DeploymentId(1)).await.unwrap().unwrap().state,
        State::Running,
        "the process running it ends it"
    );
    assert_eq!(
        store.cancel_requests(&[running.claim()]).await.unwrap(),
        [(running.claim(), c.clone())]
    );
    assert_eq!(store.cancelled().await.unwrap(), 2);
    succeed(&store, running.claim()).await;
    assert!(
        store
            .cancel_requests(&[running.claim()])
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.cancel(DeploymentId(1), &c, &status).await.unwrap(),
        CancelOutcome::Finished(State::Success)
    );
    assert_eq!(
        store.cancel(DeploymentId(99), &c, &status).await.unwrap(),
        CancelOutcome::Unknown
    );
}
