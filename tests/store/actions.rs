//! What operators did through the command line: recorded, then taken
//! once for the running ferry's log, by one of several replicas.

use ferry::store::*;
use ferry_testkit::backends;

use super::*;

backends!(
    with backend;
    each_action_is_taken_once_in_order,
);

fn action(actor: &str, detail: &str) -> OperatorAction {
    OperatorAction {
        seq: 0,
        at: Timestamp::now(),
        actor: actor.into(),
        action: "lock".into(),
        repository: "octo-org/web".into(),
        environment: "production".into(),
        deployment: None,
        detail: detail.into(),
    }
}

async fn each_action_is_taken_once_in_order(b: Backend) {
    let store = (b.open)().await;
    assert!(store.take_actions(10).await.unwrap().is_empty());
    for i in 0..5 {
        store
            .record_action(&action("alice", &format!("locked {i}")))
            .await
            .unwrap();
    }
    let mut cancel = action("bob", "cancelled deployment 7");
    cancel.action = "cancel".into();
    cancel.deployment = Some(DeploymentId(7));
    store.record_action(&cancel).await.unwrap();
    // Two takers at once (two replicas): each action goes to one of them.
    let other = (b.open)().await;
    let (a, b2) = tokio::join!(store.take_actions(4), other.take_actions(4));
    let mut taken: Vec<OperatorAction> = a.unwrap().into_iter().chain(b2.unwrap()).collect();
    taken.extend(store.take_actions(10).await.unwrap());
    taken.sort_by_key(|a| a.seq);
    let details: Vec<&str> = taken.iter().map(|a| a.detail.as_str()).collect();
    assert_eq!(
        details,
        [
            "locked 0",
            "locked 1",
            "locked 2",
            "locked 3",
            "locked 4",
            "cancelled deployment 7"
        ]
    );
    let last = taken.last().unwrap();
    assert_eq!(
        (last.actor.as_str(), last.action.as_str(), last.deployment),
        ("bob", "cancel", Some(DeploymentId(7)))
    );
    assert!(store.take_actions(10).await.unwrap().is_empty());
    assert!(other.take_actions(10).await.unwrap().is_empty());
}
