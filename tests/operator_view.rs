//! What ferry prints matches what is happening (issue: the operator's
//! view): the description GitHub shows now, machine-readable listings with
//! filters. On both stores where the store is read.

use std::process::{Command, Output};
use std::time::Duration;

use ferry_testkit as common;
use ferry_testkit::backends;

use common::{Setup, World, target};

const REPO: &str = "octo-org/web";
const WAIT: Duration = Duration::from_secs(60);

backends!(
    listings_say_what_github_shows_and_filter_as_json,
    locks_are_listed_as_json_lines,
    show_tells_a_deployments_story_and_why_github_lacks_a_status,
);

async fn world(database_url: Option<String>) -> World {
    let setup = Setup {
        database_url,
        ..Setup::default()
    };
    World::build(setup, |sshd, scratch| {
        let hold = common::hold(scratch);
        let production = target(
            REPO,
            "production",
            &[sshd.host()],
            &[("wait", &format!("{hold}\ntrue"))],
            "",
        );
        let staging = target(REPO, "staging", &[sshd.host()], &[("break", "exit 3")], "");
        format!("{production}\n{staging}")
    })
    .await
}

fn ferry_as(w: &World, args: &[&str]) -> Output {
    Command::new(common::ferry_binary())
        .args(args)
        .arg("--config")
        .arg(&w.ferry.config)
        .env("SUDO_USER", "alice")
        .output()
        .unwrap()
}

fn json_lines(o: &Output) -> Vec<serde_json::Value> {
    assert!(o.status.success(), "{o:?}");
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

async fn listings_say_what_github_shows_and_filter_as_json(database_url: Option<String>) {
    let w = world(database_url).await;
    w.deploy(201, REPO, "staging").await;
    assert_eq!(w.final_states(201, WAIT).await.last().unwrap(), "failure");
    w.deploy(202, REPO, "production").await;
    w.github.wait_state(202, "in_progress", WAIT).await;
    // Running: the listing says what GitHub shows now, not the queued text.
    let table = String::from_utf8_lossy(&ferry_as(&w, &["deployments"]).stdout).into_owned();
    let row = table.lines().find(|l| l.starts_with("202 ")).unwrap();
    assert!(row.contains("Deploying f95f852 to 1 host"), "{table}");
    let all = json_lines(&ferry_as(&w, &["deployments", "--json"]));
    assert_eq!(all.len(), 2, "{all:?}");
    let running = &all[0];
    assert_eq!(running["id"], 202);
    assert_eq!(running["state"], "running");
    assert_eq!(running["environment"], "production");
    assert_eq!(running["ref"], "master");
    assert_eq!(running["task"], "deploy");
    assert_eq!(running["sha"], "f95f852bd8fca8fcc58a9a2d6c842781e32a215e");
    assert!(running["finished_at"].is_null());
    let started = running["started_at"].as_str().unwrap();
    assert!(humantime::parse_rfc3339(started).is_ok(), "{started}");
    for key in ["repository", "description", "creator", "created_at"] {
        assert!(running.get(key).is_some(), "{key} missing: {running}");
    }
    let staging = json_lines(&ferry_as(
        &w,
        &[
            "deployments",
            "--json",
            "--environment",
            "octo-org/web:staging",
        ],
    ));
    assert_eq!(staging.len(), 1);
    assert_eq!(staging[0]["id"], 201);
    let said = staging[0]["description"].as_str().unwrap();
    assert!(
        said.starts_with("Step 'break' failed on 127.0.0.1") && said.ends_with("(exit 3)"),
        "{said}"
    );
    let failed = json_lines(&ferry_as(
        &w,
        &["deployments", "--json", "--state", "failure"],
    ));
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["state"], "failure");
    assert!(failed[0]["finished_at"].is_string());
    let bad = ferry_as(&w, &["deployments", "--state", "done"]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("queued, running, success"),
        "{bad:?}"
    );
    w.release();
    assert_eq!(w.final_states(202, WAIT).await.last().unwrap(), "success");
}

async fn locks_are_listed_as_json_lines(database_url: Option<String>) {
    let w = world(database_url).await;
    assert!(json_lines(&ferry_as(&w, &["locks", "--json"])).is_empty());
    let locked = ferry_as(
        &w,
        &["lock", "octo-org/web:production", "--reason", "db failover"],
    );
    assert!(locked.status.success(), "{locked:?}");
    let locks = json_lines(&ferry_as(&w, &["locks", "--json"]));
    assert_eq!(locks.len(), 1, "{locks:?}");
    let l = &locks[0];
    assert_eq!(
        (
            l["repository"].as_str(),
            l["environment"].as_str(),
            l["kind"].as_str()
        ),
        (Some(REPO), Some("production"), Some("lock"))
    );
    assert_eq!(l["by"], "alice");
    assert_eq!(l["reason"], "db failover");
    assert!(humantime::parse_rfc3339(l["since"].as_str().unwrap()).is_ok());
}

async fn show_tells_a_deployments_story_and_why_github_lacks_a_status(
    database_url: Option<String>,
) {
    let w = world(database_url).await;
    // GitHub answers 502 to every status of 301: show says so.
    w.github
        .refuse(301, common::github::Fault::new(502).message("Bad Gateway"));
    w.deploy(301, REPO, "staging").await;
    let text = common::eventually(
        "show 301 says GitHub's 502 and the failure",
        WAIT,
        || async {
            let out = ferry_as(&w, &["show", "301"]);
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            if text.contains("GitHub answered 502 Bad Gateway") && text.contains("failure") {
                Ok(text)
            } else {
                Err(format!("{out:?}"))
            }
        },
    )
    .await;
    assert!(
        text.starts_with("deployment 301: octo-org/web to staging (task deploy)"),
        "{text}"
    );
    assert!(text.contains("next try at"), "{text}");
    let shown = json_lines(&ferry_as(&w, &["show", "301", "--json"]));
    let statuses = shown[0]["statuses"].as_array().unwrap();
    assert_eq!(statuses[0]["state"], "queued");
    assert_eq!(statuses[0]["on_github"], false);
    assert!(
        statuses[0]["pending"].as_str().unwrap().contains("502"),
        "{shown:?}"
    );

    // A cancelled one: every status on GitHub, the log link, who did it.
    w.deploy(302, REPO, "production").await;
    w.github.wait_state(302, "in_progress", WAIT).await;
    let cancel = ferry_as(&w, &["cancel", "302", "--reason", "wrong build"]);
    assert!(cancel.status.success(), "{cancel:?}");
    let done = w.github.wait_final(302, WAIT).await;
    w.wait_posts_recorded(3.0).await;
    let out = ferry_as(&w, &["show", "302"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{out:?}");
    assert!(
        text.contains("state     cancelled: Cancelled by alice: wrong build"),
        "{text}"
    );
    let log = done.last().unwrap().log_url().unwrap();
    assert!(text.contains(&format!("log       {log}")), "{text}");
    for state in ["queued", "in_progress", "error"] {
        let line = text
            .lines()
            .find(|l| l.contains(&format!(" {state} ")))
            .unwrap_or_else(|| panic!("{state}: {text}"));
        assert!(line.contains("[on GitHub since "), "{line}");
    }
    // The action is recorded by the command at once.
    assert!(
        text.contains("alice  cancel: cancelled deployment 302"),
        "{text}"
    );
    let shown = json_lines(&ferry_as(&w, &["show", "302", "--json"]));
    assert_eq!(shown[0]["log_url"], log);
    assert_eq!(shown[0]["actions"][0]["actor"], "alice");
    assert_eq!(ferry_as(&w, &["show", "999"]).status.code(), Some(1));
    w.release();
}
