//! Deliveries that never came: ferry lists each repository's recent
//! deployments (conditionally: most lists are `304`s) and takes the ones it
//! owns, has never seen, that have no status and were created after its
//! store, once. Runs on SQLite and on PostgreSQL, where a second replica
//! looks too.

use ferry_testkit as common;
use ferry_testkit::backends;

use std::time::{Duration, SystemTime};

use serde_json::Value;

use common::{Setup, World, fixture, target};

const REPO: &str = "octo-org/web";
const WAIT: Duration = Duration::from_secs(60);

backends!(a_deployment_whose_webhook_never_came_runs_once);

/// GitHub's deployment object (the octokit example), as its list has it.
fn listed(id: i64, environment: &str, created: SystemTime) -> Value {
    let mut d = fixture("deployment/payload.json")["deployment"].clone();
    d["id"] = id.into();
    d["environment"] = environment.into();
    d["created_at"] = humantime::format_rfc3339_seconds(created)
        .to_string()
        .into();
    d
}

async fn a_deployment_whose_webhook_never_came_runs_once(database_url: Option<String>) {
    let replicas = database_url.is_some();
    let w = World::build(
        Setup {
            database_url,
            github: "reconcile_every = \"1s\"".into(),
            ..Setup::default()
        },
        |sshd, scratch| {
            let mark = format!("echo \"$FERRY_DEPLOYMENT_ID\" >> {}/ran", scratch.display());
            target(REPO, "production", &sshd.hosts(), &[("mark", &mark)], "")
        },
    )
    .await;
    let b = if replicas {
        Some(w.replica(2).await)
    } else {
        None
    };
    let now = SystemTime::now();
    // From before ferry's store: not ferry's to take.
    w.github.add_deployment(
        REPO,
        listed(302, "production", now - Duration::from_secs(3600)),
    );
    // Another agent or a person already gave it a status.
    w.github
        .add_deployment(REPO, listed(303, "production", now));
    w.github.add_foreign_status(REPO, 303, "in_progress");
    // No target owns this environment.
    w.github.add_deployment(REPO, listed(304, "qa", now));
    // The one whose webhook was lost.
    w.github
        .add_deployment(REPO, listed(301, "production", now));

    let done = w.github.wait_final(301, WAIT).await;
    let states: Vec<&str> = done.iter().map(|s| s.state()).collect();
    assert_eq!(states, ["queued", "in_progress", "success"]);
    // Its webhook arrives late after all: a duplicate.
    let (code, body) = w
        .deliver(
            "deployment",
            &common::deployment_event(301, REPO, "production"),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("duplicate"), "{body}");

    // A few more rounds change nothing: each round lists the deployments,
    // a 304 when nothing changed (the ETag), the trace to wait for.
    let (before, _) = w.github.lists();
    common::eventually("more reconciler rounds, mostly 304s", WAIT, || async {
        let (lists, not_modified) = w.github.lists();
        (lists >= before + 4 && not_modified * 2 >= lists).then_some(())
    })
    .await;
    let ran = std::fs::read_to_string(w.scratch().join("ran")).unwrap_or_default();
    assert_eq!(ran, "301\n", "ran once, on one replica");
    assert_eq!(w.states(301), ["queued", "in_progress", "success"]);
    assert!(w.states(302).is_empty());
    assert_eq!(w.states(303), ["in_progress"], "only the other agent's");
    assert!(w.states(304).is_empty());
    let (lists, not_modified) = w.github.lists();
    assert!(lists >= 4, "{lists} lists");
    assert!(
        not_modified * 2 >= lists,
        "{not_modified} of {lists} lists were 304s"
    );
    drop(b);
    w.assert_no_violations();
}
