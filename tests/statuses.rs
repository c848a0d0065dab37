//! Status delivery: retries, restarts, refusals, GitHub App auth, GHES.

use ferry_testkit as common;

use std::time::Duration;

use common::github::Fault;
use common::{AppSetup, Setup, World, deployment_event, target};
use serde_json::json;

const REPO: &str = "octo-org/web";
const WAIT: Duration = Duration::from_secs(90);

fn simple(sshd: &common::Sshd, repo: &str, env: &str) -> String {
    target(repo, env, &[sshd.host()], &[("noop", "echo ok")], "")
}

#[tokio::test(flavor = "multi_thread")]
async fn server_errors_and_a_secondary_rate_limit_are_retried_and_order_kept() {
    let w = World::start(|sshd, _| simple(sshd, REPO, "production")).await;
    w.github.fail(
        61,
        vec![
            Fault::new(500),
            Fault::new(502),
            Fault::new(500),
            Fault::new(403)
                .header("retry-after", "1")
                .message("You have exceeded a secondary rate limit. Please wait a few minutes before you try again."),
        ],
    );
    w.deploy(61, REPO, "production").await;
    w.github.wait_final(61, WAIT).await;
    assert_eq!(w.states(61), ["queued", "in_progress", "success"]);
    let attempts = w.github.attempts(61);
    assert_eq!(
        attempts.len(),
        4 + 3,
        "four refusals, then three statuses: {attempts:?}"
    );
    assert!(
        attempts[4] - attempts[3] >= Duration::from_secs(1),
        "Retry-After: 1 was not honoured"
    );
    w.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread")]
async fn statuses_pending_when_ferry_is_killed_land_after_the_restart() {
    let mut w = World::start(|sshd, scratch| {
        target(
            REPO,
            "production",
            &[sshd.host()],
            &[("mark", &format!("touch {}/done", scratch.display()))],
            "",
        )
    })
    .await;
    w.github.set_down(true);
    w.deploy(71, REPO, "production").await;
    let done = w.scratch().join("done");
    common::eventually("the step ran", WAIT, || async {
        done.exists().then_some(())
    })
    .await;
    // The final status in the outbox, then die with all three pending.
    common::eventually("71's three statuses stored", WAIT, || async {
        let out = w.cli(&["show", "71", "--json"]);
        let shown: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        (shown["statuses"].as_array()?.len() == 3).then_some(())
    })
    .await;
    assert!(w.github.statuses_of(71).is_empty());
    w.ferry.kill9();
    w.github.set_down(false);
    w.restart().await;
    w.github.wait_final(71, WAIT).await;
    assert_eq!(w.states(71), ["queued", "in_progress", "success"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_status_is_not_retried_and_does_not_block_other_deployments() {
    let w =
        World::start(|sshd, _| simple(sshd, REPO, "production") + &simple(sshd, REPO, "staging"))
            .await;
    w.github
        .refuse(81, Fault::new(422).message("Validation Failed"));
    w.deploy(81, REPO, "production").await;
    w.deploy(82, REPO, "staging").await;
    w.github.wait_final(82, WAIT).await;
    assert_eq!(w.states(82), ["queued", "in_progress", "success"]);
    // 81 ran all the same; each of its statuses was tried once and given up.
    common::eventually("81's three statuses tried", WAIT, || async {
        let tried = w.github.attempts(81);
        (tried.len() >= 3).then_some(()).ok_or(format!("{tried:?}"))
    })
    .await;
    // A fourth try would come after the backoff; no event marks that none
    // comes, so this waits out one backoff.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(w.github.attempts(81).len(), 3, "a 422 was retried");
    assert!(w.github.statuses_of(81).is_empty());
    let log = w.ferry.output();
    assert!(
        log.contains("GitHub refused the queued status of deployment 81")
            && log.contains("422 Validation Failed"),
        "{log}"
    );
}

fn with_installation(id: i64, repo: &str, installation: i64) -> serde_json::Value {
    let mut e = deployment_event(id, repo, "production");
    e["installation"] =
        json!({"id": installation, "node_id": "MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9uMQ=="});
    e
}

#[tokio::test(flavor = "multi_thread")]
async fn app_mode_uses_each_installations_token_and_refreshes_it() {
    let setup = Setup {
        app: Some(AppSetup {
            id: 4242,
            installations: vec![(REPO.into(), 11), ("octo-org/api".into(), 22)],
            token_ttl: Duration::from_secs(3600),
        }),
        ..Setup::default()
    };
    let w = World::build(setup, |sshd, _| {
        simple(sshd, REPO, "production") + &simple(sshd, "octo-org/api", "production")
    })
    .await;
    assert_eq!(
        w.deliver("deployment", &with_installation(91, REPO, 11))
            .await
            .0,
        202
    );
    assert_eq!(
        w.deliver("deployment", &with_installation(92, "octo-org/api", 22))
            .await
            .0,
        202
    );
    for id in [91, 92] {
        w.github.wait_final(id, WAIT).await;
        assert_eq!(
            w.states(id),
            ["queued", "in_progress", "success"],
            "deployment {id}"
        );
    }
    let mut issued = w.github.tokens_issued();
    issued.sort();
    assert_eq!(
        issued,
        [11, 22],
        "one token per installation, cached across statuses"
    );

    // GitHub now says the cached token expired: ferry fetches a new one once.
    w.github.expire_tokens();
    assert_eq!(
        w.deliver("deployment", &with_installation(93, REPO, 11))
            .await
            .0,
        202
    );
    w.github.wait_final(93, WAIT).await;
    assert_eq!(w.states(93), ["queued", "in_progress", "success"]);
    assert_eq!(w.github.tokens_issued().len(), 3);
    assert_eq!(w.github.tokens_issued()[2], 11);
    w.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread")]
async fn app_tokens_are_renewed_before_they_expire() {
    // GitHub's tokens live an hour; ferry renews 5 minutes early. A token
    // that lives 5 minutes and 2 seconds is stale for ferry after 2s.
    let setup = Setup {
        app: Some(AppSetup {
            id: 7,
            installations: vec![(REPO.into(), 5)],
            token_ttl: Duration::from_secs(302),
        }),
        ..Setup::default()
    };
    let w = World::build(setup, |sshd, _| simple(sshd, REPO, "production")).await;
    assert_eq!(
        w.deliver("deployment", &with_installation(95, REPO, 5))
            .await
            .0,
        202
    );
    w.github.wait_final(95, WAIT).await;
    assert_eq!(w.github.tokens_issued(), [5]);
    // The token must age past the fake GitHub App's short TTL: a clock,
    // not an event.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        w.deliver("deployment", &with_installation(96, REPO, 5))
            .await
            .0,
        202
    );
    w.github.wait_final(96, WAIT).await;
    assert_eq!(w.states(96), ["queued", "in_progress", "success"]);
    assert_eq!(
        w.github.tokens_issued(),
        [5, 5],
        "renewed ahead of expiry, without a 401"
    );
    w.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread")]
async fn ghes_api_url_with_a_path_prefix() {
    let setup = Setup {
        api_prefix: "/api/v3".into(),
        ..Setup::default()
    };
    let w = World::build(setup, |sshd, _| simple(sshd, REPO, "production")).await;
    assert!(w.github.url.ends_with("/api/v3"));
    w.deploy(97, REPO, "production").await;
    w.github.wait_final(97, WAIT).await;
    assert_eq!(w.states(97), ["queued", "in_progress", "success"]);
    w.assert_no_violations();
}
