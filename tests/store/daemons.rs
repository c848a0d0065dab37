//! The running daemons' heartbeat: what `ferry deploy` reads to say at
//! once that no ferry runs.

use ferry::store::*;
use ferry_testkit::backends;

use super::*;

backends!(
    with backend;
    the_newest_beat_says_who_runs_and_a_stop_in_order_forgets_it,
);

async fn the_newest_beat_says_who_runs_and_a_stop_in_order_forgets_it(b: Backend) {
    let store = (b.open)().await;
    assert_eq!(store.last_beat().await.unwrap(), None);
    assert!(!ferry::store::daemons::running(&*store).await);
    let (one, two) = (Owner("a (pid 1)".into()), Owner("b (pid 2)".into()));
    store.beat(&one).await.unwrap();
    store.beat(&two).await.unwrap();
    let last = store.last_beat().await.unwrap().unwrap();
    assert!(last.alive(), "{last:?}");
    assert!(ferry::store::daemons::running(&*store).await);
    // Seen from another connection (the command's).
    let other = (b.open)().await;
    assert!(ferry::store::daemons::running(&*other).await);
    store.gone(&two).await.unwrap();
    assert_eq!(store.last_beat().await.unwrap().unwrap().name, one.0);
    store.gone(&one).await.unwrap();
    assert_eq!(store.last_beat().await.unwrap(), None);
    assert!(!ferry::store::daemons::running(&*other).await);
}
