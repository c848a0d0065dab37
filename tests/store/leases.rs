//! Claims with leases and fencing: a process that lost its claim writes nothing more, and expired claims are rescued (the store's `deployments.rs`).

use ferry::store::*;
use ferry_testkit::backends;

use super::*;

backends!(
    with backend;
    a_process_that_lost_its_claim_writes_nothing_more,
    expired_leases_are_rescued_and_renewed_ones_are_not,
);

async fn a_process_that_lost_its_claim_writes_nothing_more(b: Backend) {
    let store = (b.open)().await;
    let (a, other) = (me(), Owner("other (pid 2)".into()));
    accept(&store, 1, "p", false).await;
    let d = store.claim_next(&a).await.unwrap().unwrap();
    assert_eq!(d.owner.as_deref(), Some(a.0.as_str()));
    assert_eq!(store.renew(&a, &[d.claim()]).await.unwrap(), [d.claim()]);
    // A live lease is not taken, unless the caller takes everything.
    assert!(store.rescue(&other, false).await.unwrap().is_empty());
    let taken = store.rescue(&other, true).await.unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].id, d.id);
    assert_eq!(taken[0].attempt, d.attempt + 1);
    assert_eq!(taken[0].owner.as_deref(), Some(a.0.as_str()), "who had it");
    // The old claim is fenced out: no renewal, no status, no final state.
    assert!(store.renew(&a, &[d.claim()]).await.unwrap().is_empty());
    let in_progress = NewStatus::new(StatusState::InProgress, "late");
    assert!(!store.add_status(d.claim(), &in_progress).await.unwrap());
    let late = NewStatus::new(StatusState::Success, "late");
    assert!(
        !store
            .finish(d.claim(), State::Success, &late)
            .await
            .unwrap()
    );
    let interrupted = NewStatus::new(StatusState::Error, "Interrupted");
    assert!(
        store
            .finish(taken[0].claim(), State::Error, &interrupted)
            .await
            .unwrap()
    );
    // A settled deployment cannot be finished twice, whoever asks.
    assert!(
        !store
            .finish(taken[0].claim(), State::Success, &late)
            .await
            .unwrap()
    );
    let settled = store.get(d.id).await.unwrap().unwrap();
    assert_eq!(settled.state, State::Error);
    let statuses: Vec<String> = store
        .due_statuses(Timestamp::now(), 10)
        .await
        .unwrap()
        .iter()
        .map(|i| i.status.description.clone())
        .collect();
    assert_eq!(statuses, ["queued"], "only the head is due; nothing late");
    assert_eq!(
        store.pending_statuses().await.unwrap(),
        2,
        "queued, Interrupted"
    );
}

/// The lease's own length: this test waits it out once.
async fn expired_leases_are_rescued_and_renewed_ones_are_not(b: Backend) {
    let store = (b.open)().await;
    let (dead, alive, rescuer) = (
        Owner("dead (pid 1)".into()),
        Owner("alive (pid 2)".into()),
        Owner("rescuer (pid 3)".into()),
    );
    accept(&store, 1, "p", false).await;
    accept(&store, 2, "s", false).await;
    let d1 = store.claim_next(&dead).await.unwrap().unwrap();
    let d2 = store.claim_next(&alive).await.unwrap().unwrap();
    // The live owner renews on every look, as its runner would; the dead
    // one's lease runs out.
    let rescued = ferry_testkit::eventually(
        "the dead owner's claim rescued",
        LEASE + RENEW_EVERY,
        || async {
            assert_eq!(
                store.renew(&alive, &[d2.claim()]).await.unwrap(),
                [d2.claim()]
            );
            let rescued = store.rescue(&rescuer, false).await.unwrap();
            (!rescued.is_empty()).then_some(rescued)
        },
    )
    .await;
    assert_eq!(rescued.len(), 1);
    assert_eq!(rescued[0].id, d1.id);
    assert_eq!(rescued[0].owner.as_deref(), Some("dead (pid 1)"));
    assert!(
        store.rescue(&rescuer, false).await.unwrap().is_empty(),
        "once"
    );
}
