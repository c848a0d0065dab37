//! Review apps torn down: by a closed pull request, by `teardown_after`
//! (across a restart), and by `ferry teardown`; a failing teardown, and a
//! teardown waiting for the running deployment and for a lock. Each test
//! runs on SQLite and on PostgreSQL.

use ferry_testkit as common;
use ferry_testkit::backends;

use std::process::Output;
use std::time::{Duration, Instant};

use common::{Setup, World, deployment_event, hold, target};
use serde_json::Value;

const REPO: &str = "octo-org/web";
const WAIT: Duration = Duration::from_secs(60);

backends!(
    a_closed_pull_request_tears_down_its_review_app,
    teardown_after_an_idle_review_app_also_across_a_restart,
    ferry_teardown_of_a_non_transient_environment,
    a_failing_teardown_changes_no_status,
    a_teardown_waits_for_the_running_deployment_and_for_a_lock,
);

/// A teardown step that records, one line per run, the variables it saw.
const RECORD: &str = "echo \"$FERRY_TASK $FERRY_DEPLOYMENT_ID $FERRY_ENVIRONMENT $FERRY_REF $FERRY_SHA\" >> SCRATCH/teardown";

fn teardown_steps(run: &str) -> String {
    format!("[[target.teardown]]\nname = \"destroy\"\nrun = '''\n{run}\n'''\n")
}

async fn world(
    database_url: Option<String>,
    targets: &'static [(&str, &str, &str, &str)],
) -> World {
    World::build(
        Setup {
            database_url,
            ..Setup::default()
        },
        move |sshd, scratch| {
            let s = scratch.display().to_string();
            targets
                .iter()
                .map(|(env, steps, teardown, extra)| {
                    let steps = steps.replace("HOLD", &hold(scratch)).replace("SCRATCH", &s);
                    let mut t = target(REPO, env, &sshd.hosts(), &[("run", &steps)], extra);
                    if !teardown.is_empty() {
                        t.push_str(&teardown_steps(&teardown.replace("SCRATCH", &s)));
                    }
                    t
                })
                .collect::<String>()
        },
    )
    .await
}

/// A deployment of `git_ref` (at `sha`) to `env`.
fn review(id: i64, env: &str, git_ref: &str, sha: &str, transient: bool) -> Value {
    let mut v = deployment_event(id, REPO, env);
    v["deployment"]["ref"] = git_ref.into();
    v["deployment"]["sha"] = sha.into();
    v["deployment"]["transient_environment"] = transient.into();
    v["deployment"]["production_environment"] = false.into();
    v
}

async fn deploy(w: &World, event: Value) {
    let id = event["deployment"]["id"].as_i64().unwrap();
    let (code, text) = w.deliver("deployment", &event).await;
    assert_eq!(code, 202, "deployment {id}: {text}");
}

/// The octokit `pull_request` `closed` example, for `repo` and `head_ref`.
fn closed(repo: &str, head_ref: &str, head_sha: &str) -> Value {
    let mut v = common::fixture("pull_request/closed.payload.json");
    v["repository"]["full_name"] = repo.into();
    v["pull_request"]["head"]["ref"] = head_ref.into();
    v["pull_request"]["head"]["sha"] = head_sha.into();
    v
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn teardowns_ran(w: &World) -> Vec<String> {
    std::fs::read_to_string(w.scratch().join("teardown"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// The `ferry deployments` line of the newest teardown, once it has
/// `state`.
async fn wait_teardown(w: &World, state: &str) -> String {
    let what = format!("a teardown {state}");
    common::eventually(&what, WAIT, || async {
        let out = w.cli(&["deployments"]);
        let list = String::from_utf8_lossy(&out.stdout).to_string();
        let line = list.lines().find(|l| l.starts_with('-'));
        match line {
            Some(line) if line.split_whitespace().nth(4) == Some(state) => Ok(line.to_string()),
            _ => Err(list),
        }
    })
    .await
}

fn inactive(w: &World, id: i64) -> Vec<String> {
    w.github
        .statuses_of(id)
        .iter()
        .filter(|p| p.state() == "inactive")
        .map(|p| p.description().to_string())
        .collect()
}

const SHA_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const SHA_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const SHA_C: &str = "cccccccccccccccccccccccccccccccccccccccc";

async fn a_closed_pull_request_tears_down_its_review_app(database_url: Option<String>) {
    let w = world(
        database_url,
        &[
            ("review-*", "true", RECORD, ""),
            ("production", "true", RECORD, ""),
        ],
    )
    .await;
    // review-1 twice from the pull request's branch, review-2 from another,
    // production (not transient) from the same branch.
    deploy(&w, review(1, "review-1", "feature-x", SHA_A, true)).await;
    w.github.wait_state(1, "success", WAIT).await;
    deploy(
        &w,
        review(2, "review-1", "refs/heads/feature-x", SHA_A, true),
    )
    .await;
    deploy(&w, review(3, "review-2", "feature-y", SHA_B, true)).await;
    deploy(&w, review(4, "production", "feature-x", SHA_A, false)).await;
    for id in [2, 3, 4] {
        w.github.wait_state(id, "success", WAIT).await;
    }

    // Other actions, unowned repositories and unsigned deliveries do nothing.
    let mut opened = closed(REPO, "feature-x", SHA_A);
    opened["action"] = "opened".into();
    assert_eq!(w.deliver("pull_request", &opened).await.0, 200);
    let other = closed("someone/else", "feature-x", SHA_A);
    assert_eq!(w.deliver("pull_request", &other).await.0, 200);
    let body = serde_json::to_vec(&closed(REPO, "feature-x", SHA_A)).unwrap();
    let (code, _) = w
        .post(&[("x-github-event", "pull_request".to_string())], body)
        .await;
    assert_eq!(code, 401);
    w.settled().await;
    assert!(teardowns_ran(&w).is_empty());

    // GitHub sends head.ref without refs/heads/; the deployment had it.
    let (code, answer) = w
        .deliver("pull_request", &closed(REPO, "feature-x", SHA_C))
        .await;
    assert_eq!(code, 202, "{answer}");
    assert!(
        answer.contains("review-1") && !answer.contains("review-2"),
        "{answer}"
    );
    for id in [1, 2] {
        w.github.wait_state(id, "inactive", WAIT).await;
    }
    wait_teardown(&w, "success").await;
    assert_eq!(inactive(&w, 1), ["Environment torn down"]);
    assert_eq!(inactive(&w, 2), ["Environment torn down"]);
    assert_eq!(
        teardowns_ran(&w),
        [format!("teardown 2 review-1 refs/heads/feature-x {SHA_A}")],
        "teardown steps once, with the latest deployment's variables"
    );

    // A second `closed` (here form-encoded) changes nothing.
    let json = serde_json::to_string(&closed(REPO, "feature-x", SHA_A)).unwrap();
    let form: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("payload", &json)
        .finish();
    let form = form.into_bytes();
    let (code, answer) = w
        .post(
            &[
                ("content-type", "application/x-www-form-urlencoded".into()),
                ("x-github-event", "pull_request".into()),
                ("x-github-delivery", "form-1".into()),
                (
                    "x-hub-signature-256",
                    common::signature(common::SECRET, &form),
                ),
            ],
            form,
        )
        .await;
    assert_eq!(code, 200, "{answer}");
    w.settled().await;
    assert_eq!(teardowns_ran(&w).len(), 1);
    assert_eq!(inactive(&w, 1).len(), 1, "inactive once");
    // Another pull request's app and a non-transient environment are left.
    assert!(inactive(&w, 3).is_empty());
    assert!(inactive(&w, 4).is_empty());

    // A later deployment brings the environment back.
    deploy(&w, review(5, "review-1", "feature-x", SHA_A, true)).await;
    let statuses = w.github.wait_final(5, WAIT).await;
    assert_eq!(statuses.last().unwrap().state(), "success");
    w.assert_no_violations();
}

async fn teardown_after_an_idle_review_app_also_across_a_restart(database_url: Option<String>) {
    let mut w = world(
        database_url,
        &[("review-*", "true", RECORD, "teardown_after = \"8s\"")],
    )
    .await;
    deploy(&w, review(1, "review-1", "feature-x", SHA_A, true)).await;
    w.github.wait_state(1, "success", WAIT).await;
    let ended = Instant::now();
    // A non-transient deployment of the same target is never swept.
    deploy(&w, review(2, "review-2", "feature-y", SHA_B, false)).await;
    w.github.wait_state(2, "success", WAIT).await;

    // teardown_after is measured from when the deployment ended: time must
    // pass, before and after the restart (whose first runner round sweeps).
    tokio::time::sleep(Duration::from_secs(2)).await;
    w.restart().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        inactive(&w, 1).is_empty(),
        "torn down before teardown_after"
    );
    assert!(teardowns_ran(&w).is_empty());

    w.github.wait_state(1, "inactive", WAIT).await;
    let at = w
        .github
        .statuses_of(1)
        .iter()
        .find(|p| p.state() == "inactive")
        .unwrap()
        .at;
    assert!(
        at.duration_since(ended) >= Duration::from_millis(7500),
        "torn down {:?} after the deployment ended",
        at.duration_since(ended)
    );
    assert_eq!(teardowns_ran(&w).len(), 1);
    // Sweeps run every 2 s and one that finds nothing leaves no trace:
    // this spans one more.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(teardowns_ran(&w).len(), 1, "swept once");
    assert!(inactive(&w, 2).is_empty());
    w.assert_no_violations();
}

async fn ferry_teardown_of_a_non_transient_environment(database_url: Option<String>) {
    let w = world(database_url, &[("production", "true", RECORD, "")]).await;
    let refused = w.cli(&["teardown", "octo-org/web:production"]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("no deployment"),
        "{}",
        text(&refused)
    );
    let unowned = w.cli(&["teardown", "octo-org/web:staging"]);
    assert_eq!(unowned.status.code(), Some(1), "{}", text(&unowned));

    deploy(&w, review(1, "production", "main", SHA_A, false)).await;
    w.github.wait_state(1, "success", WAIT).await;
    // Not a review app: GitHub would show production destroyed, so only
    // when the operator confirms.
    let unconfirmed = w.cli(&["teardown", "octo-org/web:production"]);
    assert_eq!(unconfirmed.status.code(), Some(1), "{}", text(&unconfirmed));
    assert!(
        String::from_utf8_lossy(&unconfirmed.stderr).contains("--yes"),
        "{}",
        text(&unconfirmed)
    );
    let out = w.cli(&["teardown", "octo-org/web:production", "--yes"]);
    assert!(out.status.success(), "{}", text(&out));
    w.github.wait_state(1, "inactive", WAIT).await;
    let line = wait_teardown(&w, "success").await;
    assert!(line.contains("teardown of 1"), "{line}");
    assert_eq!(
        teardowns_ran(&w),
        [format!("teardown 1 production main {SHA_A}")]
    );

    let again = w.cli(&["teardown", "octo-org/web:production", "--yes"]);
    assert_eq!(again.status.code(), Some(1), "{}", text(&again));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("tore it down"),
        "{}",
        text(&again)
    );
    w.assert_no_violations();
}

async fn a_failing_teardown_changes_no_status(database_url: Option<String>) {
    let w = world(
        database_url,
        &[("review-*", "true", "echo cannot remove it >&2; exit 3", "")],
    )
    .await;
    deploy(&w, review(1, "review-1", "feature-x", SHA_A, true)).await;
    w.github.wait_state(1, "success", WAIT).await;
    let (code, answer) = w
        .deliver("pull_request", &closed(REPO, "feature-x", SHA_A))
        .await;
    assert_eq!(code, 202, "{answer}");
    let line = wait_teardown(&w, "failure").await;
    assert!(
        line.contains("Not torn down: Step 'destroy' failed"),
        "{line}"
    );
    let id = line.split_whitespace().next().unwrap().to_string();
    let log = w.cli(&["logs", &id]);
    let log = String::from_utf8_lossy(&log.stdout).to_string();
    assert!(
        log.contains(&format!("teardown {id} of deployment 1")),
        "{log}"
    );
    assert!(log.contains("(task teardown)"), "{log}");
    assert!(log.contains("cannot remove it"), "{log}");
    assert!(log.contains("no status was changed on GitHub"), "{log}");
    w.settled().await;
    assert_eq!(w.states(1), ["queued", "in_progress", "success"]);
    w.assert_no_violations();
}

async fn a_teardown_waits_for_the_running_deployment_and_for_a_lock(database_url: Option<String>) {
    let w = world(database_url, &[("review-*", "HOLD", RECORD, "")]).await;
    deploy(&w, review(1, "review-1", "feature-x", SHA_A, true)).await;
    w.github.wait_state(1, "in_progress", WAIT).await;
    deploy(&w, review(2, "review-1", "feature-x", SHA_B, true)).await;
    w.github.wait_state(2, "queued", WAIT).await;

    let out = w.cli(&["teardown", "octo-org/web:review-1"]);
    assert!(out.status.success(), "{}", text(&out));
    // The deployment waiting there will not run.
    w.github.wait_state(2, "inactive", WAIT).await;
    // One arriving after the teardown waits behind it.
    deploy(&w, review(3, "review-1", "feature-x", SHA_A, true)).await;
    let lock = w.cli(&["lock", "octo-org/web:review-1", "--reason", "look first"]);
    assert!(lock.status.success(), "{}", text(&lock));

    w.release();
    w.github.wait_state(1, "success", WAIT).await;
    w.settled().await;
    assert!(
        teardowns_ran(&w).is_empty(),
        "a locked environment's teardown waits"
    );
    assert!(inactive(&w, 1).is_empty());

    let unlock = w.cli(&["unlock", "octo-org/web:review-1"]);
    assert!(unlock.status.success(), "{}", text(&unlock));
    w.github.wait_state(1, "inactive", WAIT).await;
    assert_eq!(
        teardowns_ran(&w),
        [format!("teardown 2 review-1 feature-x {SHA_B}")]
    );
    // Deployment 3 came after the teardown: it runs, and stays.
    w.github.wait_state(3, "success", WAIT).await;
    assert!(inactive(&w, 3).is_empty());
    assert_eq!(
        inactive(&w, 2),
        ["Superseded by a teardown of the environment"]
    );
    w.assert_no_violations();
}
