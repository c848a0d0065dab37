//! Queue semantics: never lose, never double, never overlap a deployment.

use ferry_testkit as common;

use std::path::Path;
use std::time::Duration;

use common::timeline::{assert_serialized, runs, timed_step};
use common::{World, alive, deployment_event, running, target};

const REPO: &str = "octo-org/web";
const WAIT: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread")]
async fn one_environment_never_overlaps_and_a_waiting_deployment_is_superseded() {
    let w = World::start(|sshd, scratch| {
        target(
            REPO,
            "production",
            &[sshd.host()],
            &[("run", &timed_step(scratch, "1"))],
            "",
        ) + &target(
            REPO,
            "staging",
            &[sshd.host()],
            &[("run", &timed_step(scratch, "0.3"))],
            "supersede = false",
        )
    })
    .await;
    w.deploy(101, REPO, "production").await;
    w.github.wait_state(101, "in_progress", WAIT).await;
    w.deploy(102, REPO, "production").await;
    w.deploy(103, REPO, "production").await;
    for id in [201, 202, 203] {
        w.deploy(id, REPO, "staging").await;
    }
    for id in [101, 103, 201, 202, 203] {
        w.github.wait_final(id, WAIT).await;
        assert_eq!(
            w.states(id),
            ["queued", "in_progress", "success"],
            "deployment {id}"
        );
    }
    // Its `queued` went out only if GitHub had it before 103 arrived.
    let superseded = w.github.wait_final(102, WAIT).await;
    let states: Vec<&str> = superseded.iter().map(|p| p.state()).collect();
    assert!(
        states == ["queued", "inactive"] || states == ["inactive"],
        "{states:?}"
    );
    assert_eq!(
        superseded.last().unwrap().description(),
        "Superseded by deployment 103"
    );

    let runs = runs(&w.scratch());
    assert_serialized(&runs);
    let order = |env: &str| runs[env].iter().map(|r| r.0).collect::<Vec<_>>();
    assert_eq!(order("production"), [101, 103], "102 never ran");
    assert_eq!(
        order("staging"),
        [201, 202, 203],
        "supersede = false keeps them all, in order"
    );
    w.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread")]
async fn after_kill_9_the_running_deployment_errors_and_queued_ones_run() {
    let mut w = World::start(|sshd, scratch| {
        let done = scratch.join("done").display().to_string();
        target(
            REPO,
            "production",
            &[sshd.host()],
            &[("run", &format!("if [ \"$FERRY_DEPLOYMENT_ID\" = 301 ]; then sleep 30; fi\necho \"$FERRY_DEPLOYMENT_ID\" >> {done}"))],
            "supersede = false",
        )
    })
    .await;
    w.deploy(301, REPO, "production").await;
    w.github.wait_state(301, "in_progress", WAIT).await;
    w.deploy(302, REPO, "production").await;
    w.deploy(303, REPO, "production").await;
    w.github.wait_state(303, "queued", WAIT).await;
    // Statuses GitHub got but ferry had not yet recorded would rightly be
    // sent again after the crash; this test is about the deployments.
    w.wait_posts_recorded(4.0).await;

    w.ferry.kill9();
    w.restart().await;

    let interrupted = w.github.wait_final(301, WAIT).await;
    assert_eq!(
        interrupted.iter().map(|p| p.state()).collect::<Vec<_>>(),
        ["queued", "in_progress", "error"]
    );
    assert_eq!(
        interrupted[2].description(),
        "Interrupted: ferry restarted during the deployment"
    );
    assert!(interrupted[2].log_url().is_some());
    for id in [302, 303] {
        w.github.wait_final(id, WAIT).await;
        assert_eq!(
            w.states(id),
            ["queued", "in_progress", "success"],
            "deployment {id}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(w.scratch().join("done")).unwrap(),
        "302\n303\n",
        "in order, once each"
    );
    w.assert_no_violations();
}

/// A target whose one step hangs, with a 2 s deadline.
fn hanging_for_2s(sshd: &common::sshd::Sshd, scratch: &Path) -> String {
    target(
        REPO,
        "production",
        &[sshd.host()],
        &[("hang", &common::hang(scratch))],
        "timeout = \"2s\"",
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_timed_out_step_fails_and_leaves_no_remote_process() {
    let w = World::start(hanging_for_2s).await;
    w.deploy(401, REPO, "production").await;
    let statuses = w.github.wait_final(401, WAIT).await;
    let last = statuses.last().unwrap();
    assert_eq!(last.state(), "failure");
    assert_eq!(
        last.description(),
        format!("Timed out after 2s in step 'hang' on {}", w.sshd.display())
    );
    common::assert_hang_ended(&w.scratch());
}

/// The deadline runs out while the host is still starting the step (each
/// session there takes 3 s to start): the step is killed once it says
/// which process group it runs in, not left running. The host runs every
/// command with /bin/sh (dash), as for a deploy user whose login shell it
/// is: the kill must be one dash understands.
#[tokio::test(flavor = "multi_thread")]
async fn a_step_timed_out_before_it_announced_its_group_is_still_killed() {
    let setup = common::Setup {
        sshd_config: "ForceCommand sleep 3; exec /bin/sh -c \"$SSH_ORIGINAL_COMMAND\"".into(),
        ..common::Setup::default()
    };
    let w = World::build(setup, hanging_for_2s).await;
    w.deploy(402, REPO, "production").await;
    let statuses = w.github.wait_final(402, WAIT).await;
    assert_eq!(statuses.last().unwrap().state(), "failure");
    // Whatever the step started before the kill is gone, and nothing of
    // it starts later.
    // A straggler the killed step started would show on the host only: no
    // event marks its absence, so this bounds how late one could appear.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for pid in ["shell.pid", "child.pid"] {
        let file = w.scratch().join(pid);
        assert!(
            running(&file) != Some(true),
            "{pid}: the step survived its timeout"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_finishes_what_fits_in_the_grace_cancels_the_rest_and_exits_0() {
    let mut w = World::start_with("shutdown_grace = \"2s\"", |sshd, scratch| {
        target(
            REPO,
            "production",
            &[sshd.host()],
            &[("hang", &common::hang(scratch))],
            "",
        ) + &target(
            REPO,
            "staging",
            &[sshd.host()],
            &[("quick", "sleep 1; echo done")],
            "",
        )
    })
    .await;
    w.deploy(501, REPO, "production").await;
    w.github.wait_state(501, "in_progress", WAIT).await;
    w.deploy(502, REPO, "staging").await;
    w.github.wait_state(502, "in_progress", WAIT).await;

    w.ferry.signal("TERM");
    let status = w.ferry.wait(Duration::from_secs(30));
    assert!(status.success(), "{status}");
    assert_eq!(
        w.states(502),
        ["queued", "in_progress", "success"],
        "finished within the grace"
    );
    let cancelled = w.github.statuses_of(501);
    assert_eq!(
        cancelled.iter().map(|p| p.state()).collect::<Vec<_>>(),
        ["queued", "in_progress", "error"]
    );
    assert_eq!(
        cancelled[2].description(),
        "Cancelled: ferry is shutting down"
    );
    assert!(
        !alive(&w.scratch().join("shell.pid")),
        "the cancelled step's shell survived"
    );
    assert!(
        !alive(&w.scratch().join("child.pid")),
        "the cancelled step's child survived"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_of_200_deliveries_loses_nothing_and_serializes_each_environment() {
    let w = World::start(|sshd, scratch| {
        target(
            REPO,
            "env-*",
            &[sshd.host()],
            &[("run", &timed_step(scratch, "0.05"))],
            "",
        )
    })
    .await;
    let w = std::sync::Arc::new(w);
    let mut sends = tokio::task::JoinSet::new();
    for i in 0..200i64 {
        let id = 1000 + i;
        let event = deployment_event(id, REPO, &format!("env-{}", i % 10));
        let w = w.clone();
        sends.spawn(async move {
            let first = w
                .deliver_as("deployment", &event, &format!("burst-{id}"))
                .await
                .0;
            // Every fourth is redelivered, every fifth sent again as a new delivery.
            let again = match i % 20 {
                0 | 4 | 8 | 12 | 16 => Some(
                    w.deliver_as("deployment", &event, &format!("burst-{id}"))
                        .await
                        .0,
                ),
                5 | 10 | 15 => Some(
                    w.deliver_as("deployment", &event, &format!("burst-{id}-bis"))
                        .await
                        .0,
                ),
                _ => None,
            };
            (first, again)
        });
    }
    while let Some(r) = sends.join_next().await {
        let (first, again) = r.unwrap();
        assert_eq!(first, 202);
        assert!(
            again.is_none_or(|c| c == 200),
            "a duplicate was not answered 200: {again:?}"
        );
    }
    let mut ran = 0;
    for id in 1000..1200 {
        let statuses = w.github.wait_final(id, WAIT).await;
        let states: Vec<&str> = statuses.iter().map(|p| p.state()).collect();
        let finals = states
            .iter()
            .filter(|s| matches!(**s, "success" | "failure" | "error" | "inactive"))
            .count();
        assert_eq!(finals, 1, "deployment {id}: {states:?}");
        assert!(
            states == ["queued", "inactive"]
                || states == ["inactive"]
                || states == ["queued", "in_progress", "success"],
            "deployment {id}: {states:?}"
        );
        ran += usize::from(states.len() == 3);
    }
    let runs = runs(&w.scratch());
    assert_serialized(&runs);
    assert_eq!(
        runs.values().map(Vec::len).sum::<usize>(),
        ran,
        "every success ran exactly once"
    );
    // Whatever was superseded, every environment ran its newest arrival.
    assert_eq!(runs.len(), 10, "{runs:?}");
    w.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread")]
async fn after_kill_9_the_interrupted_step_is_ended_on_the_host() {
    let mut w = World::start(|sshd, scratch| {
        target(
            REPO,
            "production",
            &[sshd.host()],
            &[("hang", &common::hang(scratch))],
            "",
        )
    })
    .await;
    w.deploy(601, REPO, "production").await;
    let child = w.scratch().join("child.pid");
    common::written(&child, WAIT).await;
    assert!(alive(&w.scratch().join("shell.pid")) && alive(&child));
    w.ferry.kill9();
    // A dead ferry's step runs on: nothing has ended it yet.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(alive(&child), "the step died with ferry");
    w.restart().await;
    let statuses = w.github.wait_final(601, WAIT).await;
    assert_eq!(
        statuses.last().unwrap().description(),
        "Interrupted: ferry restarted during the deployment"
    );
    assert!(
        !alive(&w.scratch().join("shell.pid")),
        "the interrupted step's shell survived the restart"
    );
    assert!(
        !alive(&child),
        "the interrupted step's child survived the restart"
    );
    let log = w
        .log_text(statuses.last().unwrap().log_url().unwrap())
        .await;
    assert!(
        log.contains("ended the interrupted step (process group"),
        "{log}"
    );
}
