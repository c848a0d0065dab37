//! Deploying automatically (docs/configuration.md, "Continuous
//! deployment"): a followed branch's green head and a promotion after a
//! soak become deployments ferry creates on the fake GitHub, once each,
//! through redeliveries, restarts, `kill -9` and replicas. On both stores.

use std::time::Duration;

use ferry_testkit as common;
use ferry_testkit::backends;

use common::{Setup, World, eventually, fixture, target};
use serde_json::{Value, json};

const REPO: &str = "octo-org/web";
const WAIT: Duration = Duration::from_secs(60);
const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1";
const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb2";
const C: &str = "ccccccccccccccccccccccccccccccccccccccc3";

backends!(
    a_green_head_is_deployed_once_and_a_newer_push_replaces_an_older_one,
    a_success_is_promoted_after_its_soak_unless_overtaken,
    a_kill_before_githubs_answer_still_creates_exactly_once,
    a_missed_push_is_found_and_a_locked_environment_waits,
);

/// staging follows main once `test` passed; production promotes what
/// stayed `soak` in staging. Each step records the sha it deployed.
async fn world(database_url: Option<String>, soak: &str, github: &str) -> World {
    let setup = Setup {
        database_url,
        github: github.to_string(),
        ..Setup::default()
    };
    let soak = soak.to_string();
    World::build(setup, move |sshd, scratch| {
        let step = format!(
            "echo \"$FERRY_ENVIRONMENT $FERRY_SHA\" >> {}/ran; [ \"$FERRY_SHA\" != {C} ]",
            scratch.display()
        );
        let mut t = target(
            REPO,
            "staging",
            &sshd.hosts(),
            &[("deploy", &step)],
            "require_checks = [\"test\"]\nchecks_timeout = \"10m\"\n[target.auto_deploy]\nbranch = \"main\"\n",
        );
        t.push_str(&target(
            REPO,
            "production",
            &sshd.hosts(),
            &[("deploy", &step)],
            &format!("[target.auto_deploy]\nafter = \"staging\"\nsoak = \"{soak}\"\n"),
        ));
        t
    })
    .await
}

fn push(git_ref: &str, after: &str) -> Value {
    let mut v = fixture("push/with-new-branch.payload.json");
    v["ref"] = git_ref.into();
    v["after"] = after.into();
    v["repository"]["full_name"] = REPO.into();
    v.as_object_mut().unwrap().remove("installation");
    v
}

/// The create requests GitHub took, as (environment, ref, description).
fn creates(w: &World) -> Vec<(String, String, String)> {
    w.github
        .creates()
        .iter()
        .map(|c| {
            let f = |k: &str| c.body[k].as_str().unwrap_or_default().to_string();
            (f("environment"), f("ref"), f("description"))
        })
        .collect()
}

fn ran(w: &World) -> Vec<String> {
    std::fs::read_to_string(w.scratch().join("ran"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// The id GitHub gave the create request number `n`, once it was made.
async fn created(w: &World, n: usize) -> i64 {
    eventually("a create request", WAIT, || async {
        w.github.creates().get(n).and_then(|c| c.id)
    })
    .await
}

async fn check_passes(w: &World, sha: &str, conclusion: &str) {
    w.github
        .set_check_run(REPO, sha, "test", "completed", Some(conclusion));
    let event = json!({
        "action": "completed",
        "check_run": {"id": 4, "name": "test", "head_sha": sha, "status": "completed", "conclusion": conclusion},
        "repository": {"full_name": REPO},
    });
    let (code, body) = w.deliver("check_run", &event).await;
    assert_eq!(code, 200, "{body}");
}

fn show_json(w: &World, id: i64) -> Value {
    let out = w.cli(&["show", &id.to_string(), "--json"]);
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

async fn a_green_head_is_deployed_once_and_a_newer_push_replaces_an_older_one(
    database_url: Option<String>,
) {
    let w = world(database_url, "1h", "").await;
    w.github.set_check_run(REPO, A, "test", "in_progress", None);
    w.github.set_check_run(REPO, B, "test", "in_progress", None);
    // Pushes of two heads while checks run: the newer one is the candidate.
    let (code, body) = w.deliver("push", &push("refs/heads/main", A)).await;
    assert_eq!(code, 202, "{body}");
    let (code, body) = w.deliver("push", &push("refs/heads/main", B)).await;
    assert_eq!(code, 202, "{body}");
    // A redelivery, another branch, a tag and a deletion change nothing.
    let (code, body) = w.deliver("push", &push("refs/heads/main", B)).await;
    assert_eq!(
        (code, body.contains("candidate before")),
        (200, true),
        "{body}"
    );
    for (r, after) in [
        ("refs/heads/feature", C),
        ("refs/tags/v1", C),
        ("refs/heads/main", &"0".repeat(40)),
    ] {
        let (code, body) = w.deliver("push", &push(r, after)).await;
        assert_eq!(code, 200, "{r}: {body}");
    }
    let mut deleted = push("refs/heads/main", C);
    deleted["deleted"] = true.into();
    assert_eq!(w.deliver("push", &deleted).await.0, 200);
    check_passes(&w, A, "success").await;
    check_passes(&w, B, "success").await;
    let id = created(&w, 0).await;
    assert_eq!(
        w.final_states(id, WAIT).await.last().unwrap(),
        "success",
        "{:?}",
        w.states(id)
    );
    assert_eq!(
        creates(&w),
        [(
            "staging".to_string(),
            B.to_string(),
            "Auto-deploy of main at bbbbbbb".to_string()
        )]
    );
    assert_eq!(
        w.github.creates()[0].body["required_contexts"],
        json!([]),
        "the checks were read already"
    );
    assert_eq!(ran(&w), [format!("staging {B}")]);
    // What started it, in the command line's words.
    let shown = show_json(&w, id);
    assert_eq!(shown["started_by"]["kind"], "auto-deploy", "{shown}");
    let text = String::from_utf8(w.cli(&["show", &id.to_string()]).stdout).unwrap();
    assert!(text.contains("started   by auto-deploy of main"), "{text}");
    let listed = String::from_utf8(w.cli(&["deployments", "--json"]).stdout).unwrap();
    assert!(listed.contains("\"kind\":\"auto-deploy\""), "{listed}");

    // A failed check: nothing is created, and the journal says why.
    w.github.set_check_run(REPO, C, "test", "in_progress", None);
    assert_eq!(w.deliver("push", &push("refs/heads/main", C)).await.0, 202);
    check_passes(&w, C, "failure").await;
    eventually("the journal's line for the dropped candidate", WAIT, || async {
        w.ferry
            .output()
            .contains("auto-deploy of main at ccccccc to octo-org/web:staging: not deployed: Check 'test' failed on ccccccc")
            .then_some(())
    })
    .await;
    // The same head pushed again is not a candidate twice.
    assert_eq!(w.deliver("push", &push("refs/heads/main", B)).await.0, 200);
    w.settled().await;
    assert_eq!(w.github.creates().len(), 1);
    w.assert_no_violations();
}

/// A deployment delivered to staging by hand, with `sha`.
async fn deliver_staging(w: &World, id: i64, sha: &str) -> String {
    let mut event = common::deployment_event(id, REPO, "staging");
    event["deployment"]["sha"] = sha.into();
    let (code, body) = w.deliver("deployment", &event).await;
    assert_eq!(code, 202, "{body}");
    w.final_states(id, WAIT).await.last().unwrap().clone()
}

async fn a_success_is_promoted_after_its_soak_unless_overtaken(database_url: Option<String>) {
    // Long enough that the overtaking failure below ends inside it.
    let w = world(database_url, "8s", "").await;
    for sha in [A, B, C] {
        w.github
            .set_check_run(REPO, sha, "test", "completed", Some("success"));
    }
    assert_eq!(deliver_staging(&w, 11, A).await, "success");
    let id = created(&w, 0).await;
    assert_eq!(
        creates(&w),
        [(
            "production".to_string(),
            A.to_string(),
            "Promote aaaaaaa from staging".to_string()
        )]
    );
    assert_eq!(w.final_states(id, WAIT).await.last().unwrap(), "success");
    assert_eq!(show_json(&w, id)["started_by"]["kind"], "promotion");
    // A success overtaken by a failure in staging during its soak, and a
    // failure itself: nothing is promoted.
    assert_eq!(deliver_staging(&w, 12, B).await, "success");
    assert_eq!(deliver_staging(&w, 13, C).await, "failure");
    eventually("the journal's line for the overtaken promotion", WAIT, || async {
        w.ferry
            .output()
            .contains("promotion of bbbbbbb from staging to octo-org/web:production: not deployed: deployment 12 is no longer the newest to end in staging: deployment 13 ended failure since")
            .then_some(())
    })
    .await;
    assert_eq!(w.github.creates().len(), 1, "{:?}", creates(&w));
    w.assert_no_violations();
}

async fn a_kill_before_githubs_answer_still_creates_exactly_once(database_url: Option<String>) {
    let replicas = database_url.is_some();
    let mut w = world(database_url, "1h", "").await;
    w.github
        .set_check_run(REPO, A, "test", "completed", Some("success"));
    // GitHub creates the deployment and its answer never comes.
    w.github.hold_creates(true);
    assert_eq!(w.deliver("push", &push("refs/heads/main", A)).await.0, 202);
    let id = created(&w, 0).await;
    w.ferry.kill9();
    w.github.hold_creates(false);
    w.restart().await;
    if replicas {
        // A second replica decides with it from now on.
        let other = w.replica(2).await;
        assert_eq!(w.final_states(id, WAIT).await.last().unwrap(), "success");
        drop(other);
    } else {
        assert_eq!(w.final_states(id, WAIT).await.last().unwrap(), "success");
    }
    // The look after the restart asked GitHub first and found it.
    eventually(
        "the candidate settled as the deployment GitHub has",
        WAIT,
        || async { (show_json(&w, id)["started_by"]["kind"] == "auto-deploy").then_some(()) },
    )
    .await;
    w.settled().await;
    assert_eq!(w.github.creates().len(), 1, "{:?}", creates(&w));
    assert_eq!(ran(&w), [format!("staging {A}")]);
}

async fn a_missed_push_is_found_and_a_locked_environment_waits(database_url: Option<String>) {
    let w = world(database_url, "1h", "reconcile_every = \"1s\"").await;
    let out = w.cli(&["lock", "octo-org/web:staging", "--reason", "release freeze"]);
    assert!(out.status.success(), "{out:?}");
    w.github
        .set_check_run(REPO, A, "test", "completed", Some("success"));
    // No push comes: the head is read from the branch.
    w.github.set_ref("main", A);
    let id = created(&w, 0).await;
    eventually("queued naming the lock", WAIT, || async {
        w.github
            .statuses_of(id)
            .last()
            .filter(|p| p.state() == "queued" && p.description().contains("locked by"))
            .map(drop)
    })
    .await;
    assert!(ran(&w).is_empty());
    // Unchanged heads cost nothing: GitHub answers 304.
    eventually("a 304 for an unchanged head", WAIT, || async {
        (w.github.branch_reads().1 > 0).then_some(())
    })
    .await;
    let out = w.cli(&["unlock", "octo-org/web:staging"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(w.final_states(id, WAIT).await.last().unwrap(), "success");
    w.settled().await;
    assert_eq!(w.github.creates().len(), 1, "{:?}", creates(&w));
    w.assert_no_violations();
}
