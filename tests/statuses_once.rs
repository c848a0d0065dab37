//! Statuses reach GitHub once, the important ones first: a post whose
//! answer was lost is confirmed by reading GitHub's list, not sent again;
//! a deployment superseded before its `queued` went out gets only
//! `inactive`; the running deployment's statuses go before a backlog.
//! Each test runs on SQLite and on PostgreSQL.

use ferry_testkit as common;
use ferry_testkit::backends;

use std::time::{Duration, Instant};

use common::{Setup, World, hold, target};

const REPO: &str = "octo-org/web";
const WAIT: Duration = Duration::from_secs(90);

backends!(
    a_success_whose_answer_was_lost_is_not_posted_twice,
    deployments_superseded_while_github_is_down_get_only_inactive,
    the_running_deployments_statuses_go_before_the_backlog,
);

async fn world(database_url: Option<String>, held: bool) -> World {
    World::build(
        Setup {
            database_url,
            ..Setup::default()
        },
        move |sshd, scratch| {
            let step = if held { hold(scratch) } else { "true".into() };
            target(REPO, "production", &sshd.hosts(), &[("run", &step)], "")
        },
    )
    .await
}

async fn a_success_whose_answer_was_lost_is_not_posted_twice(database_url: Option<String>) {
    let mut w = world(database_url, false).await;
    w.github.hold_answer(1, "success");
    w.deploy(1, REPO, "production").await;
    // GitHub has taken it; ferry never hears so, and is killed.
    w.github.wait_state(1, "success", WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    w.restart().await;
    w.github.release_answers();

    common::eventually("ferry read the statuses", WAIT, || async {
        w.github.reads().contains(&1).then_some(())
    })
    .await;
    common::eventually("the post confirmed", WAIT, || async {
        let confirmed = w.metric("ferry_status_posts_total{result=\"confirmed\"}");
        (confirmed.await >= 1.0).then_some(())
    })
    .await;
    // A read that was not needed would come right after the answer; no
    // event marks its absence, so this leaves it the time.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(w.states(1), ["queued", "in_progress", "success"]);
    assert_eq!(w.github.reads(), [1], "read only the status in doubt");

    // The next deployment reads nothing: its posts are answered.
    w.deploy(2, REPO, "production").await;
    w.github.wait_state(2, "success", WAIT).await;
    // As above: an unneeded read leaves no sign by not coming.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(w.github.reads(), [1]);
    w.assert_no_violations();
}

async fn deployments_superseded_while_github_is_down_get_only_inactive(
    database_url: Option<String>,
) {
    let w = world(database_url, true).await;
    w.deploy(1, REPO, "production").await;
    w.github.wait_state(1, "in_progress", WAIT).await;
    w.github.set_down(true);
    for id in 2..=11 {
        w.deploy(id, REPO, "production").await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The outage must outlast the outbox's first tries: a clock, not an
    // event.
    tokio::time::sleep(Duration::from_secs(1)).await;
    w.github.set_down(false);
    for id in 2..=10 {
        w.github.wait_state(id, "inactive", WAIT).await;
    }
    w.release();
    w.github.wait_state(11, "success", WAIT).await;
    w.github.wait_state(1, "success", WAIT).await;
    for id in 2..=10 {
        assert_eq!(w.states(id), ["inactive"], "deployment {id}");
    }
    assert_eq!(w.states(11), ["queued", "in_progress", "success"]);
    assert!(
        w.metric("ferry_status_posts_total{result=\"coalesced\"}")
            .await
            >= 9.0
    );
    w.assert_no_violations();
}

async fn the_running_deployments_statuses_go_before_the_backlog(database_url: Option<String>) {
    let w = world(database_url, true).await;
    w.deploy(1, REPO, "production").await;
    w.github.wait_state(1, "in_progress", WAIT).await;
    // GitHub takes five posts a second; a burst of 120 deployments makes a
    // backlog of about 120 `inactive` (about 24 s of posts).
    w.github.set_pace(Duration::from_millis(200));
    for id in 2..=121 {
        w.deploy(id, REPO, "production").await;
    }
    // The backlog must be queued behind GitHub's pace before the release
    // that is measured against it: a clock, not an event.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let released = Instant::now();
    w.release();
    w.github.wait_state(1, "success", WAIT).await;
    let success = w
        .github
        .statuses_of(1)
        .iter()
        .find(|p| p.state() == "success")
        .unwrap()
        .at;
    let took = success.duration_since(released);
    assert!(
        took < Duration::from_secs(6),
        "success landed {took:?} after the deployment ended"
    );
    let pending_then = (2..=120)
        .filter(|&id| !w.states(id).contains(&"inactive".to_string()))
        .count();
    assert!(
        pending_then > 50,
        "the backlog was mostly still waiting ({pending_then} left)"
    );
    // The whole backlog lands afterwards, each superseded deployment once.
    for id in 2..=120 {
        w.github.wait_state(id, "inactive", WAIT).await;
    }
    w.github.wait_state(121, "success", WAIT).await;
    let posts: usize = (2..=120).map(|id| w.states(id).len()).sum();
    assert!(posts <= 119 + 20, "{posts} posts for 119 superseded");
    w.assert_no_violations();
}
