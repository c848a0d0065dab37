//! Gating GitHub Actions deployments (docs/github.md): a run waiting at
//! ferry's deployment protection rule is approved at once in a free
//! environment, told why it waits in a locked one and approved once after
//! the unlock (by `ferry unlock` or a lock's `--for` running out), through
//! a `kill -9` and with replicas. On both stores, as a GitHub App.

use std::time::Duration;

use ferry_testkit as common;
use ferry_testkit::backends;

use common::{AppSetup, Setup, World, eventually, target};
use serde_json::Value;

const REPO: &str = "octo-org/web";
const WAIT: Duration = Duration::from_secs(60);

backends!(
    a_free_environment_is_approved_at_once_and_a_locked_one_after_its_unlock,
    a_wait_survives_a_kill_and_a_lock_for_lifts_it,
);

async fn world(database_url: Option<String>) -> World {
    let setup = Setup {
        database_url,
        app: Some(AppSetup {
            id: 77,
            installations: vec![(REPO.into(), 11)],
            token_ttl: Duration::from_secs(3600),
        }),
        ..Setup::default()
    };
    World::build(setup, |sshd, _| {
        let mut t = target(REPO, "production", &sshd.hosts(), &[("run", "true")], "");
        t.push_str("\n[protection]\n");
        t
    })
    .await
}

/// A `deployment_protection_rule` `requested` event for run `run`, in the
/// shape of octokit's schema (tests/data/github/schemas/).
fn rule(w: &World, run: i64, environment: &str) -> Value {
    common::github::protection::rule_event(&w.github.url, REPO, run, environment)
}

/// The answers GitHub took for `run`: (state, comment).
fn answers(w: &World, run: i64) -> Vec<(Option<String>, String)> {
    w.github
        .rule_answers()
        .into_iter()
        .filter(|a| a.run_id == run)
        .map(|a| (a.state, a.comment))
        .collect()
}

async fn approved(w: &World, run: i64) {
    eventually(&format!("run {run} approved"), WAIT, || async {
        answers(w, run)
            .iter()
            .any(|(s, _)| s.as_deref() == Some("approved"))
            .then_some(())
    })
    .await;
}

async fn a_free_environment_is_approved_at_once_and_a_locked_one_after_its_unlock(
    database_url: Option<String>,
) {
    let w = world(database_url).await;
    // A GitHub that answers 502 first: the approval is tried again.
    w.github.fail_rule_answers(1);
    let (code, body) = w
        .deliver("deployment_protection_rule", &rule(&w, 501, "production"))
        .await;
    assert_eq!(code, 202, "{body}");
    approved(&w, 501).await;
    assert_eq!(answers(&w, 501).len(), 1, "{:?}", answers(&w, 501));
    // A callback elsewhere never gets the token.
    let mut elsewhere = rule(&w, 502, "production");
    elsewhere["deployment_callback_url"] =
        "https://evil.example.com/repos/octo-org/web/actions/runs/502/deployment_protection_rule"
            .into();
    let (code, body) = w.deliver("deployment_protection_rule", &elsewhere).await;
    assert_eq!(code, 400, "{body}");
    // Locked: told why, once, then approved once after the unlock.
    let out = w.cli(&[
        "lock",
        "octo-org/web:production",
        "--reason",
        "incident 123",
    ]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        w.deliver("deployment_protection_rule", &rule(&w, 503, "production"))
            .await
            .0,
        202
    );
    // The same event again is answered once.
    assert_eq!(
        w.deliver("deployment_protection_rule", &rule(&w, 503, "production"))
            .await
            .0,
        200
    );
    let report = eventually("a report on run 503", WAIT, || async {
        answers(&w, 503).first().cloned()
    })
    .await;
    assert_eq!(report.0, None, "a report has no state: {report:?}");
    assert!(report.1.contains("production is locked by"), "{report:?}");
    assert!(report.1.contains("incident 123"), "{report:?}");
    let locks = String::from_utf8_lossy(&w.cli(&["locks"]).stdout).to_string();
    assert!(
        locks.contains("waiting: GitHub Actions run 503 of octo-org/web"),
        "{locks}"
    );
    let json = String::from_utf8_lossy(&w.cli(&["locks", "--json"]).stdout).to_string();
    assert!(json.contains("\"run_id\":503"), "{json}");
    w.settled().await;
    assert_eq!(
        answers(&w, 503).len(),
        1,
        "reported once: {:?}",
        answers(&w, 503)
    );
    let out = w.cli(&["unlock", "octo-org/web:production"]);
    assert!(out.status.success(), "{out:?}");
    approved(&w, 503).await;
    w.settled().await;
    assert_eq!(answers(&w, 503).len(), 2, "{:?}", answers(&w, 503));
    assert!(
        w.metric("ferry_protection_answers_total{result=\"approved\"}")
            .await
            >= 2.0
    );
    w.assert_no_violations();
}

async fn a_wait_survives_a_kill_and_a_lock_for_lifts_it(database_url: Option<String>) {
    let replicas = database_url.is_some();
    let mut w = world(database_url).await;
    let out = w.cli(&["lock", "octo-org/web:production", "--reason", "freeze"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        w.deliver("deployment_protection_rule", &rule(&w, 601, "production"))
            .await
            .0,
        202
    );
    eventually("a report on run 601", WAIT, || async {
        answers(&w, 601).first().cloned()
    })
    .await;
    // Unlocked while no ferry runs: honoured at the next start.
    w.ferry.kill9();
    let out = w.cli(&["unlock", "octo-org/web:production"]);
    assert!(out.status.success(), "{out:?}");
    w.restart().await;
    let other = if replicas {
        Some(w.replica(2).await)
    } else {
        None
    };
    approved(&w, 601).await;
    // A lock for a while: the run waits, then is approved once it lifts.
    let out = w.cli(&["lock", "octo-org/web:production", "--for", "3s"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        w.deliver("deployment_protection_rule", &rule(&w, 602, "production"))
            .await
            .0,
        202
    );
    approved(&w, 602).await;
    let got = answers(&w, 602);
    assert_eq!(got.len(), 2, "a report, then the approval: {got:?}");
    assert_eq!(got[0].0, None);
    w.settled().await;
    assert_eq!(
        answers(&w, 601).iter().filter(|(s, _)| s.is_some()).count(),
        1,
        "approved once across the restart and replicas"
    );
    drop(other);
    w.assert_no_violations();
}
