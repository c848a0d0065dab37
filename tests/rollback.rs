//! Automatic rollback (docs/configuration.md, "Configure a target"): a deployment whose
//! check fails is undone on the hosts where its steps started, with the
//! version of the environment's newest successful deployment.

use std::time::Duration;

use ferry_testkit as common;
use ferry_testkit::backends;

use common::{Setup, World, deployment_event, loopback, target};

backends!(
    a_failed_check_rolls_back_the_hosts_it_reached_with_rollback_steps,
    without_rollback_steps_the_targets_steps_put_the_good_version_back,
    a_first_failure_has_nothing_to_roll_back_to,
    a_rollback_that_fails_says_where,
    cancel_with_rollback_puts_back_what_the_deployment_changed,
);

const REPO: &str = "octo-org/web";
const WAIT: Duration = Duration::from_secs(60);
/// The octokit example's sha (deployment 1, the good one), and a bad one.
const GOOD: &str = "f95f852bd8fca8fcc58a9a2d6c842781e32a215e";
const BAD: &str = "badbadbadbadbadbadbadbadbadbadbadbadbad0";

/// Three hosts one at a time; the check fails for the bad sha on the
/// second host. `extra` adds `rollback = true` or `[[target.rollback]]`.
async fn world(database_url: Option<String>, extra: &str) -> World {
    world_within(database_url, extra, "2s").await
}

async fn world_within(database_url: Option<String>, extra: &str, within: &str) -> World {
    let setup = Setup {
        sshds: vec![loopback(70, 3)],
        database_url,
        ..Setup::default()
    };
    let (extra, within) = (extra.to_string(), within.to_string());
    World::build(setup, move |sshd, scratch| {
        let second = sshd.displays()[1].clone();
        let s = scratch.display().to_string();
        let extra = extra.replace("SCRATCH", &s);
        target(
            REPO,
            "production",
            &sshd.hosts(),
            &[(
                "deploy",
                &format!("echo \"deploy $FERRY_SHA $FERRY_HOST ${{FERRY_ROLLBACK_OF:-}}\" >> {s}/ran"),
            )],
            &format!(
                "parallel = 1\n{extra}\n[[target.checks]]\nname = \"healthz\"\nrun = '''\n\
                 if [ \"$FERRY_SHA\" = {BAD} ] && [ \"$FERRY_HOST\" = {second} ]; then exit 3; fi\n'''\n\
                 within = \"{within}\"\ninterval = \"1s\"\n"
            ),
        )
    })
    .await
}

async fn deploy(w: &World, id: i64, sha: &str) -> Vec<common::github::Posted> {
    let mut event = deployment_event(id, REPO, "production");
    event["deployment"]["sha"] = sha.into();
    let (code, body) = w.deliver("deployment", &event).await;
    assert_eq!(code, 202, "{body}");
    w.github.wait_final(id, WAIT).await
}

fn lines(w: &World, file: &str) -> Vec<String> {
    std::fs::read_to_string(w.scratch().join(file))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

async fn a_failed_check_rolls_back_the_hosts_it_reached_with_rollback_steps(
    database_url: Option<String>,
) {
    let w = world(
        database_url,
        "[[target.rollback]]\nname = \"switch\"\nrun = 'echo \"rollback $FERRY_SHA $FERRY_ROLLBACK_OF $FERRY_HOST\" >> SCRATCH/rolled'\n",
    )
    .await;
    let good = deploy(&w, 1, GOOD).await;
    assert_eq!(good.last().unwrap().state(), "success", "{good:?}");
    let bad = deploy(&w, 2, BAD).await;
    let last = bad.last().unwrap();
    let hosts = w.sshd.displays();
    assert_eq!(last.state(), "failure", "{bad:?}");
    let description = last.description();
    assert!(
        description.starts_with(&format!("Check 'healthz' failed on {} after", hosts[1]))
            && description.ends_with("; rolled back to f95f852"),
        "{description}"
    );
    assert_eq!(
        lines(&w, "rolled"),
        [
            format!("rollback {GOOD} 2 {}", hosts[0]),
            format!("rollback {GOOD} 2 {}", hosts[1]),
        ],
        "hosts 1 and 2 put back with the good version; host 3 untouched"
    );
    let ran = lines(&w, "ran");
    assert!(
        !ran.iter()
            .any(|l| l.starts_with(&format!("deploy {BAD} {}", hosts[2]))),
        "{ran:?}"
    );
    let log = w.log_text(last.log_url().unwrap()).await;
    assert!(
        log.contains("rollback: putting back f95f852 (deployment 1)"),
        "{log}"
    );
    w.assert_no_violations();
}

async fn without_rollback_steps_the_targets_steps_put_the_good_version_back(
    database_url: Option<String>,
) {
    let w = world(database_url, "rollback = true").await;
    deploy(&w, 1, GOOD).await;
    let first = deploy(&w, 3, BAD).await;
    assert!(
        first
            .last()
            .unwrap()
            .description()
            .ends_with("; rolled back to f95f852"),
        "{first:?}"
    );
    let hosts = w.sshd.displays();
    let ran = lines(&w, "ran");
    let rolled: Vec<&String> = ran.iter().filter(|l| l.ends_with(" 3")).collect();
    assert_eq!(
        rolled,
        [
            &format!("deploy {GOOD} {} 3", hosts[0]),
            &format!("deploy {GOOD} {} 3", hosts[1]),
        ],
        "{ran:?}"
    );
    w.assert_no_violations();
}

async fn a_first_failure_has_nothing_to_roll_back_to(database_url: Option<String>) {
    let w = world(database_url, "rollback = true").await;
    let bad = deploy(&w, 4, BAD).await;
    let last = bad.last().unwrap();
    assert_eq!(last.state(), "failure");
    assert!(
        last.description().ends_with("; nothing to roll back to"),
        "{}",
        last.description()
    );
    w.assert_no_violations();
}

async fn cancel_with_rollback_puts_back_what_the_deployment_changed(database_url: Option<String>) {
    // A long `within`: the cancel, not the check, ends the deployment.
    let w = world_within(
        database_url,
        "[[target.rollback]]\nname = \"switch\"\nrun = 'echo \"rollback $FERRY_SHA $FERRY_ROLLBACK_OF $FERRY_HOST\" >> SCRATCH/rolled'\n",
        "30s",
    )
    .await;
    deploy(&w, 1, GOOD).await;
    // The bad one stops in its check on host 2 (the first host passed):
    // cancel it meanwhile, asking for the rollback.
    let mut event = deployment_event(5, REPO, "production");
    event["deployment"]["sha"] = BAD.into();
    let (code, _) = w.deliver("deployment", &event).await;
    assert_eq!(code, 202);
    let hosts = w.sshd.displays();
    common::eventually("host 2 started", WAIT, || async {
        lines(&w, "ran")
            .iter()
            .any(|l| l.starts_with(&format!("deploy {BAD} {}", hosts[1])))
            .then_some(())
    })
    .await;
    let out = std::process::Command::new(common::ferry_binary())
        .args([
            "cancel",
            "5",
            "--rollback",
            "--reason",
            "bad build",
            "--config",
        ])
        .arg(&w.ferry.config)
        .env("SUDO_USER", "alice")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let done = w.github.wait_final(5, WAIT).await;
    let last = done.last().unwrap();
    assert_eq!(last.state(), "error");
    assert_eq!(
        last.description(),
        "Cancelled by alice: bad build; rolled back to f95f852"
    );
    let rolled = lines(&w, "rolled");
    assert!(
        rolled.contains(&format!("rollback {GOOD} 5 {}", hosts[0])),
        "{rolled:?}"
    );
    w.assert_no_violations();
}

async fn a_rollback_that_fails_says_where(database_url: Option<String>) {
    // The rollback step fails on the first host.
    let w = world(
        database_url,
        "[[target.rollback]]\nname = \"switch\"\nrun = 'case \"$FERRY_HOST\" in 127.0.0.70:*) exit 1;; esac'\n",
    )
    .await;
    deploy(&w, 1, GOOD).await;
    let bad = deploy(&w, 6, BAD).await;
    let last = bad.last().unwrap();
    assert_eq!(last.state(), "failure", "{bad:?}");
    let hosts = w.sshd.displays();
    let description = last.description();
    assert!(
        description.starts_with("Check 'healthz' failed on")
            && description.ends_with(&format!(
                "; rollback to f95f852 failed on {} (exit 1)",
                hosts[0]
            )),
        "{description}"
    );
    assert!(description.chars().count() <= 140);
    w.assert_no_violations();
}

/// The replica running a deployment dies while it rolls back: the other
/// replica settles it once its lease runs out, ends the rollback step left
/// on the host, and runs nothing again.
#[tokio::test(flavor = "multi_thread")]
async fn a_replica_killed_mid_rollback_is_settled_by_the_other_and_nothing_runs_twice() {
    let setup = Setup {
        sshds: vec![loopback(70, 3)],
        database_url: Some(common::postgres::cluster().database()),
        ..Setup::default()
    };
    let mut w = World::build(setup, |sshd, scratch| {
        let second = sshd.displays()[1].clone();
        let s = scratch.display().to_string();
        let hold = common::hold(scratch);
        target(
            REPO,
            "production",
            &sshd.hosts(),
            &[(
                "deploy",
                &format!("echo \"deploy $FERRY_SHA $FERRY_HOST\" >> {s}/ran"),
            )],
            &format!(
                "parallel = 1\n[[target.rollback]]\nname = \"switch\"\nrun = '''\n\
                 echo \"rollback $FERRY_SHA $FERRY_HOST\" >> {s}/rolled\n{hold}\n\
                 echo \"rolled $FERRY_HOST\" >> {s}/rolled\n'''\n\
                 [[target.checks]]\nname = \"healthz\"\nrun = '''\n\
                 if [ \"$FERRY_SHA\" = {BAD} ] && [ \"$FERRY_HOST\" = {second} ]; then exit 3; fi\n'''\n\
                 within = \"1s\"\ninterval = \"1s\"\n"
            ),
        )
    })
    .await;
    let good = deploy(&w, 1, GOOD).await;
    assert_eq!(good.last().unwrap().state(), "success", "{good:?}");
    let mut event = deployment_event(2, REPO, "production");
    event["deployment"]["sha"] = BAD.into();
    let (code, body) = w.deliver("deployment", &event).await;
    assert_eq!(code, 202, "{body}");
    common::eventually("the rollback started", WAIT, || async {
        (!lines(&w, "rolled").is_empty()).then_some(())
    })
    .await;
    // Mid-rollback: its first step waits on the host. The other replica
    // comes up, and the one running the rollback dies.
    let other = w.replica(1).await;
    w.ferry.kill9();
    let done = w.github.wait_final(2, WAIT).await;
    let last = done.last().unwrap();
    assert_eq!(last.state(), "error", "{done:?}");
    w.release();
    // A step that outlived its kill would go on on the host the moment it
    // is released: no event marks that it did not; this gives it the time.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let hosts = w.sshd.displays();
    // One rollback step started and was ended by the other replica (it
    // never went on past the wait); nothing ran twice.
    assert_eq!(
        lines(&w, "rolled"),
        [format!("rollback {GOOD} {}", hosts[0])],
        "the other replica's log: {}",
        other.output()
    );
    let ran = lines(&w, "ran");
    for host in &hosts[..2] {
        let runs = ran
            .iter()
            .filter(|l| **l == format!("deploy {BAD} {host}"))
            .count();
        assert_eq!(runs, 1, "{ran:?}");
    }
    assert!(
        !ran.contains(&format!("deploy {BAD} {}", hosts[2])),
        "{ran:?}"
    );
    let states: Vec<&str> = done.iter().map(|p| p.state()).collect();
    assert_eq!(states, ["queued", "in_progress", "error"], "{done:?}");
    assert_eq!(
        w.github.statuses_of(2).len(),
        3,
        "a status sent twice: {:?}",
        w.github.statuses_of(2)
    );
    w.assert_no_violations();
}
