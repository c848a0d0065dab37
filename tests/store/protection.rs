//! Runs waiting at the deployment protection rule: recorded once, each
//! look leased to one process, a reason kept once reported, ended once.

use std::time::Duration;

use ferry::store::*;
use ferry_testkit::backends;

use super::*;

backends!(
    with backend;
    a_run_is_recorded_once_looked_at_by_one_and_ended_once,
);

fn run(id: i64) -> NewRun {
    NewRun {
        repository: "o/r".into(),
        environment: "production".into(),
        run_id: id,
        callback_url: format!(
            "https://api.github.com/repos/o/r/actions/runs/{id}/deployment_protection_rule"
        ),
        installation_id: Some(11),
    }
}

async fn a_run_is_recorded_once_looked_at_by_one_and_ended_once(b: Backend) {
    let store = (b.open)().await;
    let replica = (b.open)().await;
    assert!(store.record_run(&run(1)).await.unwrap());
    assert!(
        !replica.record_run(&run(1)).await.unwrap(),
        "once by its callback"
    );
    let now = Timestamp::now() + Duration::from_millis(1);
    let other = Owner("other (pid 2)".into());
    let mine_owner = me();
    let (mine, theirs) = tokio::join!(
        store.due_runs(&mine_owner, now, now + Duration::from_millis(30_000), 10),
        replica.due_runs(&other, now, now + Duration::from_millis(30_000), 10)
    );
    let (mine, theirs) = (mine.unwrap(), theirs.unwrap());
    assert_eq!(mine.len() + theirs.len(), 1, "{mine:?} {theirs:?}");
    let (holder, loser, seq) = if mine.is_empty() {
        (other.clone(), me(), theirs[0].seq)
    } else {
        (me(), other.clone(), mine[0].seq)
    };
    assert!(
        !store
            .run_later(seq, &loser, Timestamp::EPOCH, Some("locked"))
            .await
            .unwrap()
    );
    assert!(
        store
            .run_later(seq, &holder, Timestamp::EPOCH, Some("locked"))
            .await
            .unwrap()
    );
    let again = store
        .due_runs(&loser, now, now + Duration::from_millis(30_000), 10)
        .await
        .unwrap();
    assert_eq!(again[0].reported.as_deref(), Some("locked"));
    assert_eq!(again[0].run, run(1));
    assert_eq!(store.waiting_runs().await.unwrap().len(), 1);
    assert!(!store.end_run(seq, &holder, RunEnd::Approved).await.unwrap());
    assert!(store.end_run(seq, &loser, RunEnd::Approved).await.unwrap());
    assert!(
        !store.end_run(seq, &loser, RunEnd::Gone).await.unwrap(),
        "ends once"
    );
    assert!(store.waiting_runs().await.unwrap().is_empty());
    // A process alone on its store takes over the last one's looks.
    store.record_run(&run(2)).await.unwrap();
    store
        .due_runs(
            &other,
            Timestamp::now() + Duration::from_millis(1),
            Timestamp::now() + Duration::from_millis(60_000),
            10,
        )
        .await
        .unwrap();
    assert_eq!(store.release_runs().await.unwrap(), 1);
    assert_eq!(
        store
            .due_runs(
                &me(),
                Timestamp::now() + Duration::from_millis(1),
                Timestamp::now() + Duration::from_millis(60_000),
                10
            )
            .await
            .unwrap()
            .len(),
        1
    );
}
