//! Steps on hosts: remembered while they run, and holds on the
//! environment when they could not be ended.

use ferry::store::*;
use ferry_testkit::backends;

use super::*;

backends!(
    with backend;
    remote_steps_are_remembered_until_forgotten,
    a_step_left_by_an_ended_deployment_holds_its_environment,
);

async fn remote_steps_are_remembered_until_forgotten(b: Backend) {
    let store = (b.open)().await;
    accept(&store, 1, "p", false).await;
    let id = DeploymentId(1);
    store
        .remember_step(id, "web1:22", 100, "boot-a")
        .await
        .unwrap();
    store
        .remember_step(id, "web2:22", 200, "boot-b")
        .await
        .unwrap();
    // The next step on a host replaces the last.
    store
        .remember_step(id, "web1:22", 101, "boot-a")
        .await
        .unwrap();
    let step = |host: &str, pgid, boot: &str| RemoteStep {
        host: host.into(),
        pgid,
        boot_id: boot.into(),
    };
    assert_eq!(
        store.remote_steps(id).await.unwrap(),
        [
            step("web1:22", 101, "boot-a"),
            step("web2:22", 200, "boot-b")
        ]
    );
    store.forget_step(id, "web1:22").await.unwrap();
    assert_eq!(
        store.remote_steps(id).await.unwrap(),
        [step("web2:22", 200, "boot-b")]
    );
}

async fn a_step_left_by_an_ended_deployment_holds_its_environment(b: Backend) {
    let store = (b.open)().await;
    accept(&store, 1, "p", false).await;
    let one = store.claim_next(&me()).await.unwrap().unwrap();
    store
        .remember_step(one.id, "deploy@web1:22", 4242, "boot-a")
        .await
        .unwrap();
    // While it runs, the step is not a hold: the deployment is still going.
    assert!(store.holds().await.unwrap().is_empty());
    store
        .finish(
            one.claim(),
            State::Error,
            &NewStatus::new(StatusState::Error, "Lost the connection"),
        )
        .await
        .unwrap();
    let holds = store.holds().await.unwrap();
    assert_eq!(holds.len(), 1, "{holds:?}");
    assert_eq!(
        (holds[0].repository.as_str(), holds[0].environment.as_str()),
        ("o/r", "p")
    );
    assert_eq!(holds[0].deployment, DeploymentId(1));
    assert_eq!(holds[0].host(), "web1:22");
    assert_eq!(
        holds[0].describe(),
        "cannot end the step of deployment 1 on web1:22 yet"
    );
    // Nothing starts in a held environment; another one is free.
    accept(&store, 2, "p", false).await;
    accept(&store, 3, "q", false).await;
    let next = store.claim_next(&me()).await.unwrap().unwrap();
    assert_eq!(next.id, DeploymentId(3));
    assert!(store.claim_next(&me()).await.unwrap().is_none());
    // Released by hand (`ferry unlock`) or ended (`forget_step`): it runs.
    let released = store.release_holds("o/r", "p").await.unwrap();
    assert_eq!(released, holds);
    assert!(store.holds().await.unwrap().is_empty());
    assert!(store.release_holds("o/r", "p").await.unwrap().is_empty());
    let two = store.claim_next(&me()).await.unwrap().unwrap();
    assert_eq!(two.id, DeploymentId(2));
}
