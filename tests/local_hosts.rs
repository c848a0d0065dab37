//! `hosts = ["local"]`: steps on ferry's own host, as ferry's user, with
//! what the SSH path has (docs/configuration.md, "Configure a target"): the variables, the
//! log, the home directory, a timeout and a cancel that kill the step's
//! process group, and a crash whose leftover step the next start ends.
//! None of ferry's own environment (its secrets) reaches a step.

use ferry_testkit as common;

use std::time::Duration;

use common::{Setup, World, alive, hang, running, target};

const REPO: &str = "octo-org/web";
const WAIT: Duration = Duration::from_secs(60);

fn local(
    steps: &[(&str, &str)],
    extra: &str,
) -> impl FnOnce(&common::sshd::Sshd, &std::path::Path) -> String {
    let steps: Vec<(String, String)> = steps
        .iter()
        .map(|(n, r)| (n.to_string(), r.to_string()))
        .collect();
    let extra = extra.to_string();
    move |_, scratch| {
        let steps: Vec<(String, String)> = steps
            .into_iter()
            .map(|(n, r)| (n, r.replace("SCRATCH", &scratch.display().to_string())))
            .collect();
        let steps: Vec<(&str, &str)> = steps
            .iter()
            .map(|(n, r)| (n.as_str(), r.as_str()))
            .collect();
        target(REPO, "production", &["local".to_string()], &steps, &extra)
    }
}

async fn world(steps: &[(&str, &str)], extra: &str) -> World {
    World::build(
        Setup {
            env: vec![("FERRY_TEST_SECRET".into(), "do-not-leak".into())],
            ..Setup::default()
        },
        local(steps, extra),
    )
    .await
}

async fn wait_for(file: &std::path::Path) {
    let what = format!("{} written", file.display());
    common::eventually(&what, WAIT, || async { running(file).map(drop) }).await
}

/// SIGHUP, and waits until ferry has said "reloaded" `n` times.
async fn reload(w: &World, n: usize) {
    w.ferry.signal("HUP");
    common::eventually("reloaded", WAIT, || async {
        (w.ferry.output().matches("reloaded").count() >= n).then_some(())
    })
    .await
}

#[tokio::test]
async fn a_local_step_gets_the_variables_the_home_directory_and_no_secret() {
    let w = world(
        &[(
            "env",
            "pwd > SCRATCH/pwd\nenv > SCRATCH/env\necho \"deploying $FERRY_SHA\"",
        )],
        "",
    )
    .await;
    w.deploy(1, REPO, "production").await;
    let statuses = w.github.wait_final(1, WAIT).await;
    let states: Vec<&str> = statuses.iter().map(|s| s.state()).collect();
    assert_eq!(states, ["queued", "in_progress", "success"]);
    let env = std::fs::read_to_string(w.scratch().join("env")).unwrap();
    for line in [
        "FERRY_DEPLOYMENT_ID=1",
        "FERRY_REPOSITORY=octo-org/web",
        "FERRY_ENVIRONMENT=production",
        "FERRY_TASK=deploy",
        "FERRY_HOST=local",
        "FERRY_SHA=f95f852bd8fca8fcc58a9a2d6c842781e32a215e",
        "FERRY_PRODUCTION=true",
        "FERRY_TRANSIENT=false",
    ] {
        assert!(env.lines().any(|l| l == line), "{line} not in:\n{env}");
    }
    assert!(
        env.lines().any(|l| l.starts_with("FERRY_LOG_URL=http")),
        "{env}"
    );
    assert!(
        !env.contains("do-not-leak"),
        "ferry's environment leaked:\n{env}"
    );
    let home = env
        .lines()
        .find_map(|l| l.strip_prefix("HOME="))
        .expect("HOME is set");
    let pwd = std::fs::read_to_string(w.scratch().join("pwd")).unwrap();
    assert_eq!(pwd.trim(), home, "runs in the home directory");
    let log = w.log_text(statuses[2].log_url().unwrap()).await;
    assert!(
        log.contains("deploying f95f852bd8fca8fcc58a9a2d6c842781e32a215e"),
        "{log}"
    );
    w.assert_no_violations();
}

#[tokio::test]
async fn a_timed_out_or_cancelled_local_step_is_killed_with_its_children() {
    let w = world(&[("hang", "HANG")], "timeout = \"2s\"").await;
    // The hanging step, written into the config for this world's scratch.
    let config = std::fs::read_to_string(&w.ferry.config).unwrap();
    std::fs::write(&w.ferry.config, config.replace("HANG", &hang(&w.scratch()))).unwrap();
    reload(&w, 1).await;
    w.deploy(2, REPO, "production").await;
    let statuses = w.github.wait_final(2, WAIT).await;
    let last = statuses.last().unwrap();
    assert_eq!(last.state(), "failure");
    assert_eq!(
        last.description(),
        "Timed out after 2s in step 'hang' on local"
    );
    common::assert_hang_ended(&w.scratch());

    // Cancelled (no timeout this time).
    for pid in ["shell.pid", "child.pid"] {
        std::fs::remove_file(w.scratch().join(pid)).unwrap();
    }
    let config = std::fs::read_to_string(&w.ferry.config).unwrap();
    std::fs::write(&w.ferry.config, config.replace("timeout = \"2s\"", "")).unwrap();
    reload(&w, 2).await;
    w.deploy(3, REPO, "production").await;
    wait_for(&w.scratch().join("child.pid")).await;
    let out = w.cli(&["cancel", "3", "--reason", "test"]);
    assert!(out.status.success(), "{out:?}");
    let statuses = w.github.wait_final(3, WAIT).await;
    assert_eq!(statuses.last().unwrap().state(), "error");
    common::assert_hang_ended(&w.scratch());
}

#[tokio::test]
async fn a_local_step_left_by_a_crash_is_ended_at_the_next_start() {
    let mut w = world(&[("hang", "HANG")], "").await;
    let config = std::fs::read_to_string(&w.ferry.config).unwrap();
    std::fs::write(&w.ferry.config, config.replace("HANG", &hang(&w.scratch()))).unwrap();
    w.restart().await;
    w.deploy(4, REPO, "production").await;
    wait_for(&w.scratch().join("child.pid")).await;
    w.ferry.kill9();
    assert!(
        alive(&w.scratch().join("child.pid")),
        "a crash leaves the step running"
    );
    w.restart().await;
    let statuses = w.github.wait_final(4, WAIT).await;
    let last = statuses.last().unwrap();
    assert_eq!(last.state(), "error");
    assert!(
        last.description().starts_with("Interrupted"),
        "{}",
        last.description()
    );
    common::eventually("the leftover step ended", WAIT, || async {
        (!alive(&w.scratch().join("shell.pid")) && !alive(&w.scratch().join("child.pid")))
            .then_some(())
    })
    .await;
}
