//! Required checks (docs/configuration.md, "Required checks"): a deployment waits in its
//! environment's turn until its sha's check runs and commit statuses have
//! passed, as the fake GitHub reports them. On both stores.

use std::time::{Duration, Instant};

use ferry_testkit as common;
use ferry_testkit::backends;

use common::github::Fault;
use common::{Setup, World, deployment_event, target};

const REPO: &str = "octo-org/web";
const WAIT: Duration = Duration::from_secs(60);
/// The octokit example deployment's sha.
const SHA: &str = "f95f852bd8fca8fcc58a9a2d6c842781e32a215e";

backends!(
    pending_checks_hold_the_deployment_until_a_webhook_says_they_passed,
    a_failed_required_check_ends_the_deployment_unrun,
    every_check_that_never_completes_ends_it_at_checks_timeout,
    checks_github_refuses_to_show_are_named_with_the_permissions,
);

async fn world(database_url: Option<String>, require: &str) -> World {
    let setup = Setup {
        database_url,
        ..Setup::default()
    };
    let require = require.to_string();
    World::build(setup, move |sshd, scratch| {
        target(
            REPO,
            "production",
            &[sshd.host()],
            &[(
                "mark",
                &format!("echo \"$FERRY_DEPLOYMENT_ID\" >> {}/ran", scratch.display()),
            )],
            &require,
        )
    })
    .await
}

fn ran(w: &World) -> String {
    std::fs::read_to_string(w.scratch().join("ran")).unwrap_or_default()
}

/// Waits until deployment `id`'s latest status says `text`.
async fn wait_description(w: &World, id: i64, text: &str) {
    let what = format!("{id}'s latest status says {text:?}");
    common::eventually(&what, WAIT, || async {
        let got = w.github.statuses_of(id);
        match got.last() {
            Some(p) if p.description() == text => Ok(()),
            _ => Err(format!("{got:?}")),
        }
    })
    .await;
}

async fn check_run_webhook(w: &World) {
    let event = serde_json::json!({
        "action": "completed",
        "check_run": {"id": 4, "name": "lint", "head_sha": SHA, "status": "completed", "conclusion": "success"},
        "repository": {"full_name": REPO},
    });
    let (code, body) = w.deliver("check_run", &event).await;
    assert_eq!(code, 200, "{body}");
}

async fn pending_checks_hold_the_deployment_until_a_webhook_says_they_passed(
    database_url: Option<String>,
) {
    let mut w = world(
        database_url,
        "require_checks = [\"test\", \"lint\"]\nchecks_timeout = \"10m\"\n",
    )
    .await;
    w.github
        .set_check_run(REPO, SHA, "test", "completed", Some("success"));
    w.github
        .set_check_run(REPO, SHA, "lint", "in_progress", None);
    w.deploy(101, REPO, "production").await;
    wait_description(&w, 101, "Waiting for checks on f95f852: lint").await;
    let first = w.github.statuses_of(101);
    assert_eq!(
        first[0].description(),
        "Waiting for checks on f95f852: test, lint"
    );
    // It waits through a restart, without running (its statuses recorded
    // as sent first: one in flight at the kill would be checked for later).
    w.wait_posts_recorded(2.0).await;
    w.restart().await;
    w.settled().await;
    assert!(
        w.states(101).iter().all(|s| s == "queued"),
        "{:?}",
        w.states(101)
    );
    assert_eq!(ran(&w), "");
    // lint passes and GitHub says so: it starts at once, not at the next
    // look 15 s later.
    w.github
        .set_check_run(REPO, SHA, "lint", "completed", Some("success"));
    let told = Instant::now();
    check_run_webhook(&w).await;
    common::eventually("the step ran", WAIT, || async {
        (!ran(&w).is_empty()).then_some(())
    })
    .await;
    let started = told.elapsed();
    assert!(
        started < Duration::from_secs(5),
        "ran {started:?} after the webhook"
    );
    assert_eq!(w.final_states(101, WAIT).await.last().unwrap(), "success");
    assert_eq!(ran(&w), "101\n");
    // A check webhook for a sha nobody waits for changes nothing.
    check_run_webhook(&w).await;
    w.assert_no_violations();
}

async fn a_failed_required_check_ends_the_deployment_unrun(database_url: Option<String>) {
    let w = world(database_url, "require_checks = [\"ci/test\"]\n").await;
    w.github.set_commit_status(REPO, SHA, "ci/test", "failure");
    w.deploy(102, REPO, "production").await;
    let done = w.github.wait_final(102, WAIT).await;
    let last = done.last().unwrap();
    assert_eq!(last.state(), "failure");
    assert_eq!(last.description(), "Check 'ci/test' failed on f95f852");
    assert!(last.log_url().is_some());
    assert_eq!(ran(&w), "", "no step ran");
    assert!(!w.states(102).contains(&"in_progress".to_string()));
    w.assert_no_violations();
}

async fn every_check_that_never_completes_ends_it_at_checks_timeout(database_url: Option<String>) {
    let w = world(
        database_url,
        "require_checks = [\"*\"]\nchecks_timeout = \"3s\"\n",
    )
    .await;
    w.github
        .set_check_run(REPO, SHA, "build", "completed", Some("success"));
    w.github.set_check_run(REPO, SHA, "e2e", "queued", None);
    let sent = Instant::now();
    w.deploy(103, REPO, "production").await;
    let done = w.github.wait_final(103, WAIT).await;
    let took = sent.elapsed();
    let last = done.last().unwrap();
    assert_eq!(last.state(), "failure");
    assert_eq!(
        last.description(),
        "Check 'e2e' did not pass on f95f852 within 3s"
    );
    // At the timeout, not at the next 15-second look.
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert_eq!(ran(&w), "");
    // A deployment of a sha with no checks at all waits for one.
    let mut other = deployment_event(104, REPO, "production");
    other["deployment"]["sha"] = "0000000000000000000000000000000000000abc".into();
    let (code, _) = w.deliver("deployment", &other).await;
    assert_eq!(code, 202);
    wait_description(&w, 104, "Waiting for checks on 0000000").await;
    w.assert_no_violations();
}

async fn checks_github_refuses_to_show_are_named_with_the_permissions(
    database_url: Option<String>,
) {
    let w = world(database_url, "require_checks = [\"test\"]\n").await;
    w.github.refuse_checks(Some(
        Fault::new(403).message("Resource not accessible by integration"),
    ));
    w.deploy(105, REPO, "production").await;
    let refused = common::eventually("105 says GitHub refuses", WAIT, || async {
        let got = w.github.statuses_of(105);
        let p = got.iter().find(|p| p.description().contains("refuses"));
        p.map(|p| p.description().to_string())
            .ok_or(format!("{got:?}"))
    })
    .await;
    assert!(
        refused.contains("403") && refused.contains("Checks: read"),
        "{refused}"
    );
    assert!(
        w.ferry
            .output()
            .contains("Checks: read and Commit statuses: read")
    );
    assert_eq!(ran(&w), "");
}
