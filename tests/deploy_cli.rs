//! `ferry deploy` and `ferry rollback` (docs/operations.md, "Deploy from the
//! command line"): the command asks the running ferry, which creates the deployment
//! on the fake GitHub with its own token; GitHub sends the webhook, and the
//! deployment runs like any other. On SQLite and on PostgreSQL.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use ferry_testkit as common;
use ferry_testkit::backends;

use common::github::Fault;
use common::{Setup, World, deployment_event, target};

const REPO: &str = "octo-org/web";
const ENV: &str = "octo-org/web:production";
const WAIT: Duration = Duration::from_secs(60);
/// The octokit example's sha, and a bad one whose step fails.
const GOOD: &str = "f95f852bd8fca8fcc58a9a2d6c842781e32a215e";
const BAD: &str = "badbadbadbadbadbadbadbadbadbadbadbadbad0";

backends!(
    rollback_follow_deploys_the_last_good_version_and_exits_0,
    a_refused_deploy_says_why_and_force_skips_the_contexts,
    without_a_running_ferry_deploy_says_so_within_5s,
);

/// Half a minute of waiting (the command's own deadline): once, on
/// SQLite. The deadline on PostgreSQL's clock is the store suite's
/// (`store::requests`).
#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_github_creates_nothing_later_on_sqlite() {
    an_unreachable_github_creates_nothing_later(None).await
}

fn setup(database_url: Option<String>) -> Setup {
    Setup {
        database_url,
        ..Setup::default()
    }
}

/// One host; the step records what it deployed and fails for [`BAD`].
async fn world(setup: Setup) -> World {
    World::build(setup, |sshd, scratch| {
        let s = scratch.display();
        target(
            REPO,
            "production",
            &sshd.hosts(),
            &[(
                "deploy",
                &format!(
                    "echo \"$FERRY_SHA $FERRY_PAYLOAD\" >> {s}/ran; [ \"$FERRY_SHA\" != {BAD} ]"
                ),
            )],
            "",
        )
    })
    .await
}

/// `ferry ARGS --config CONFIG` as `who`, off the async runtime (it may
/// wait half a minute).
async fn ferry_as(who: &str, config: &Path, args: &[&str]) -> Output {
    let (who, config) = (who.to_string(), config.to_path_buf());
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        Command::new(common::ferry_binary())
            .args(&args)
            .arg("--config")
            .arg(&config)
            .env("SUDO_USER", &who)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The id a successful command printed first, alone on its line.
fn printed_id(o: &Output) -> i64 {
    let out = String::from_utf8_lossy(&o.stdout);
    out.lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("no id first: {}", text(o)))
}

async fn deliver(w: &World, id: i64, sha: &str, payload: serde_json::Value) -> String {
    let mut event = deployment_event(id, REPO, "production");
    event["deployment"]["sha"] = sha.into();
    event["deployment"]["payload"] = payload;
    let (code, body) = w.deliver("deployment", &event).await;
    assert_eq!(code, 202, "{body}");
    let got = w.github.wait_final(id, WAIT).await;
    got.last().unwrap().state().to_string()
}

fn ran(w: &World) -> Vec<String> {
    std::fs::read_to_string(w.scratch().join("ran"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

async fn rollback_follow_deploys_the_last_good_version_and_exits_0(database_url: Option<String>) {
    let w = world(setup(database_url)).await;
    let config = w.ferry.config.clone();
    // Nothing deployed yet: nothing to roll back to.
    let none = ferry_as("alice", &config, &["rollback", ENV]).await;
    assert_eq!(none.status.code(), Some(1), "{}", text(&none));
    assert!(
        String::from_utf8_lossy(&none.stderr).contains("nothing to roll back to"),
        "{}",
        text(&none)
    );
    let payload = serde_json::json!({"web": {"replicas": 3}});
    assert_eq!(deliver(&w, 1, GOOD, payload.clone()).await, "success");
    assert_eq!(deliver(&w, 2, BAD, serde_json::json!({})).await, "failure");

    let started = Instant::now();
    let out = ferry_as("alice", &config, &["rollback", ENV, "--follow"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let id = printed_id(&out);
    let creates = w.github.creates();
    assert_eq!(creates.len(), 1, "{creates:?}");
    let body = &creates[0].body;
    assert_eq!(creates[0].repo, REPO);
    assert_eq!(body["ref"], GOOD, "{body}");
    assert_eq!(body["required_contexts"], serde_json::json!([]), "{body}");
    assert_eq!(body["auto_merge"], false, "{body}");
    assert_eq!(body["payload"], payload, "{body}");
    assert_eq!(body["task"], "deploy", "{body}");
    assert_eq!(body["environment"], "production", "{body}");
    assert_eq!(body["production_environment"], true, "{body}");
    assert_eq!(body["transient_environment"], false, "{body}");
    assert_eq!(
        body["description"], "Rollback to f95f852 (deployment 1) by alice",
        "{body}"
    );
    // It ran like any other deployment, once, with the good version.
    let states = w.final_states(id, WAIT).await;
    assert_eq!(states, ["queued", "in_progress", "success"], "{states:?}");
    assert_eq!(
        ran(&w).last().map(String::as_str),
        Some(format!("{GOOD} {payload}").as_str()),
        "{:?}",
        ran(&w)
    );
    assert_eq!(ran(&w).len(), 3, "{:?}", ran(&w));
    // The log followed to the end, and GitHub's webhook found it queued.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("success"), "{}", text(&out));
    common::eventually(
        "the webhook of the new deployment",
        Duration::from_secs(10),
        || async {
            w.github
                .hooks_sent()
                .iter()
                .any(|(d, _)| *d == id)
                .then_some(())
        },
    )
    .await;
    let hooks = w.github.hooks_sent();
    assert!(
        hooks.iter().all(|(_, code)| (200..300).contains(code)),
        "{hooks:?}"
    );
    assert!(started.elapsed() < WAIT);
    // The daemon says who did it (the journal's ACTOR=).
    common::eventually(
        "actor=alice in ferry's log",
        Duration::from_secs(5),
        || async {
            let said = w.ferry.output();
            said.contains("actor=alice").then_some(()).ok_or(said)
        },
    )
    .await;
    assert!(w.ferry.output().contains("asked for a rollback of"));
    // The deployment rolled back from says who did it.
    let shown = ferry_as("carol", &config, &["show", "2"]).await;
    let shown = String::from_utf8_lossy(&shown.stdout).into_owned();
    assert!(
        shown.contains(&format!(
            "alice  rollback: rolled octo-org/web:production back from deployment 2 to f95f852 (deployment 1): deployment {id}"
        )),
        "{shown}"
    );
    // The newest is the good version now, and no other version ever
    // succeeded: nothing to roll back to.
    let again = ferry_as("alice", &config, &["rollback", ENV]).await;
    assert_eq!(again.status.code(), Some(1), "{}", text(&again));
    // --to names another deployment of the environment: the bad one too.
    let to = ferry_as("bob", &config, &["rollback", ENV, "--to", "2"]).await;
    assert_eq!(to.status.code(), Some(0), "{}", text(&to));
    let bad_again = printed_id(&to);
    assert_eq!(w.github.creates()[1].body["ref"], BAD);
    assert_eq!(
        w.final_states(bad_again, WAIT)
            .await
            .last()
            .map(String::as_str),
        Some("failure")
    );
    let unknown = ferry_as("bob", &config, &["rollback", ENV, "--to", "77"]).await;
    assert_eq!(unknown.status.code(), Some(1), "{}", text(&unknown));
    w.assert_no_violations();
}

async fn a_refused_deploy_says_why_and_force_skips_the_contexts(database_url: Option<String>) {
    let w = world(setup(database_url)).await;
    let config = w.ferry.config.clone();
    w.github.set_ref("main", GOOD);
    w.github.refuse_creates(Some(
        Fault::new(409).message("Conflict: Commit status checks failed for main."),
    ));
    let refused = ferry_as("alice", &config, &["deploy", ENV, "main"]).await;
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("409 Conflict: Commit status checks failed for main."),
        "{}",
        text(&refused)
    );
    assert!(err.contains("--force"), "{}", text(&refused));
    assert!(refused.stdout.is_empty(), "{}", text(&refused));
    let first = &w.github.creates()[0].body;
    assert!(first.get("required_contexts").is_none(), "{first}");
    assert_eq!(first["description"], "Deploy by alice");

    w.github.refuse_creates(None);
    let forced = ferry_as(
        "alice",
        &config,
        &[
            "deploy",
            ENV,
            "main",
            "--force",
            "--payload",
            r#"{"migrate":true}"#,
        ],
    )
    .await;
    assert_eq!(forced.status.code(), Some(0), "{}", text(&forced));
    let id = printed_id(&forced);
    let body = &w.github.creates()[1].body;
    assert_eq!(body["ref"], "main");
    assert_eq!(body["required_contexts"], serde_json::json!([]));
    assert_eq!(body["payload"], serde_json::json!({"migrate": true}));
    assert!(body.get("production_environment").is_none(), "{body}");
    assert_eq!(
        w.final_states(id, WAIT).await.last().map(String::as_str),
        Some("success")
    );
    assert_eq!(ran(&w), [format!("{GOOD} {{\"migrate\":true}}")]);

    // A ref GitHub does not know: 422 and its message.
    let unknown = ferry_as("alice", &config, &["deploy", ENV, "no-such-branch"]).await;
    assert_eq!(unknown.status.code(), Some(1), "{}", text(&unknown));
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("422 No ref found for: no-such-branch"),
        "{}",
        text(&unknown)
    );
    // Bad input never reaches GitHub.
    let creates = w.github.creates().len();
    for args in [
        &["deploy", ENV, "main", "--payload", "{oops"][..],
        &["deploy", ENV, "main", "--payload", "[1]"][..],
        &["deploy", "octo-org/web:staging", "main"][..],
        &["deploy", ENV, "main", "--task", "deploy:other"][..],
    ] {
        let o = ferry_as("alice", &config, args).await;
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", text(&o));
    }
    assert_eq!(w.github.creates().len(), creates);
    w.assert_no_violations();
}

async fn an_unreachable_github_creates_nothing_later(database_url: Option<String>) {
    let refusing = common::ports::Port::reserve();
    let dead = refusing.url();
    let w = world(Setup {
        api_url: Some(dead.clone()),
        ..setup(database_url)
    })
    .await;
    let config = w.ferry.config.clone();
    let started = Instant::now();
    let out = ferry_as("alice", &config, &["deploy", ENV, "main"]).await;
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("could not be reached"), "{}", text(&out));
    assert!(err.contains("nothing was created"), "{}", text(&out));
    assert!(
        took >= Duration::from_secs(20) && took < Duration::from_secs(40),
        "{took:?}"
    );
    // GitHub is back (the config points at it and ferry reloads): the
    // request the command gave up on is never sent.
    let text_now = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text_now.replace(&dead, &w.github.url)).unwrap();
    w.ferry.signal("HUP");
    common::eventually("the reload", Duration::from_secs(10), || async {
        w.ferry.output().contains("reloaded").then_some(())
    })
    .await;
    // The request withdrawn at its deadline must stay unsent through a few
    // of the requester's rounds, which leave no trace when they find nothing.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(w.github.creates().is_empty(), "{:?}", w.github.creates());
    assert!(ran(&w).is_empty());
}

/// The store's heartbeat tells the command that no ferry runs: killed
/// (its last beat goes stale) or stopped in order (it says it is gone).
/// The request is withdrawn: a ferry started later creates nothing.
async fn without_a_running_ferry_deploy_says_so_within_5s(database_url: Option<String>) {
    let mut w = world(setup(database_url)).await;
    let config = w.ferry.config.clone();
    for how in ["KILL", "TERM"] {
        w.ferry.signal(how);
        w.ferry.wait(WAIT);
        let started = Instant::now();
        let out = ferry_as("alice", &config, &["deploy", ENV, "main"]).await;
        let took = started.elapsed();
        assert_eq!(out.status.code(), Some(1), "{how}: {}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("no ferry is running"), "{how}: {}", text(&out));
        assert!(err.contains("nothing was created"), "{how}: {}", text(&out));
        assert!(took < Duration::from_secs(5), "{how}: {took:?}");
        w.restart().await;
    }
    // With ferry running again, the same command goes through, and it is
    // the only deployment created: the requests withdrawn before (taken
    // first, were they not) never were.
    let out = ferry_as("alice", &config, &["deploy", ENV, GOOD]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(w.github.creates().len(), 1, "{:?}", w.github.creates());
}
