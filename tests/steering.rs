//! An operator steering ferry during an incident: environment locks (from
//! the command line and from GitHub's `deploy:lock` / `deploy:unlock`) and
//! cancel. Each test runs on SQLite and on PostgreSQL; the last ones run
//! two replicas.

use ferry_testkit as common;
use ferry_testkit::backends;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{Ferry, Setup, World, deployment_event, loopback, pid_alive, target};

const REPO: &str = "octo-org/web";
const WAIT: Duration = Duration::from_secs(60);

backends!(
    a_lock_holds_new_deployments_until_unlocked,
    deploy_lock_and_unlock_from_github,
    cancel_ends_a_waiting_and_a_running_deployment,
    cancel_refuses_unknown_and_finished_deployments,
    bad_names_and_unowned_environments_are_refused,
);

/// `ferry ARGS --config CONFIG` as `who` (through sudo, as operators do).
fn ferry_as(who: &str, config: &Path, args: &[&str]) -> Output {
    Command::new(common::ferry_binary())
        .args(args)
        .arg("--config")
        .arg(config)
        .env("SUDO_USER", who)
        .output()
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

async fn world(database_url: Option<String>, setup: Setup, steps: &str, extra: &str) -> World {
    let (steps, extra) = (steps.to_string(), extra.to_string());
    World::build(
        Setup {
            database_url,
            ..setup
        },
        move |sshd, scratch| {
            let steps = steps.replace("SCRATCH", &scratch.display().to_string());
            target(
                REPO,
                "production",
                &sshd.hosts(),
                &[("run", &steps)],
                &extra,
            ) + &target(REPO, "staging", &sshd.hosts(), &[("run", "true")], "")
        },
    )
    .await
}

/// A step that records which deployment ran it.
const MARK: &str = "echo \"$FERRY_DEPLOYMENT_ID\" >> SCRATCH/ran";

fn ran(w: &World) -> String {
    std::fs::read_to_string(w.scratch().join("ran")).unwrap_or_default()
}

async fn a_lock_holds_new_deployments_until_unlocked(database_url: Option<String>) {
    let w = world(database_url, Setup::default(), MARK, "").await;
    let config = &w.ferry.config;
    let out = ferry_as(
        "alice",
        config,
        &[
            "lock",
            "octo-org/web:production",
            "--reason",
            "database migration",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));

    w.deploy(1, REPO, "production").await;
    w.github.wait_state(1, "queued", WAIT).await;
    let queued = &w.github.statuses_of(1)[0];
    assert!(
        queued.description().contains("locked by alice")
            && queued.description().contains("database migration"),
        "{}",
        queued.description()
    );
    // Another environment of the same repository is not held.
    w.deploy(2, REPO, "staging").await;
    w.github.wait_state(2, "success", WAIT).await;
    w.settled().await;
    assert_eq!(w.states(1), ["queued"], "a locked environment runs nothing");
    assert_eq!(ran(&w), "");

    // The waiting deployment's log says why it waits.
    let log = w.cli(&["logs", "1"]);
    assert!(
        String::from_utf8_lossy(&log.stdout).contains("production is locked by alice"),
        "{}",
        text(&log)
    );

    let again = ferry_as("bob", config, &["lock", "octo-org/web:production"]);
    assert_eq!(again.status.code(), Some(1), "{}", text(&again));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already locked by alice"),
        "{}",
        text(&again)
    );
    let list = ferry_as("bob", config, &["locks"]);
    let listed = String::from_utf8_lossy(&list.stdout);
    assert!(
        listed.contains("octo-org/web:production")
            && listed.contains("alice")
            && listed.contains("database migration"),
        "{listed}"
    );
    assert_eq!(w.metric("ferry_environments_locked").await, 1.0);

    let unlocked = Instant::now();
    let out = ferry_as("bob", config, &["unlock", "octo-org/web:production"]);
    assert!(out.status.success(), "{}", text(&out));
    w.github.wait_state(1, "in_progress", WAIT).await;
    assert!(
        unlocked.elapsed() < Duration::from_secs(5),
        "the waiting deployment starts soon after the unlock"
    );
    w.github.wait_state(1, "success", WAIT).await;
    assert_eq!(ran(&w), "1\n");
    let list = ferry_as("bob", config, &["locks"]);
    assert!(String::from_utf8_lossy(&list.stdout).contains("no environment is locked"));
    w.assert_no_violations();
}

/// A `deploy:lock` / `deploy:unlock` deployment event by Codertocat (the
/// octokit example's creator).
fn lock_event(id: i64, task: &str) -> serde_json::Value {
    let mut e = deployment_event(id, REPO, "production");
    e["deployment"]["task"] = task.into();
    e["deployment"]["description"] = "incident 42".into();
    e
}

async fn deploy_lock_and_unlock_from_github(database_url: Option<String>) {
    let w = world(database_url, Setup::default(), MARK, "").await;
    let (code, body) = w
        .deliver("deployment", &lock_event(10, "deploy:lock"))
        .await;
    assert_eq!(code, 202, "{body}");
    let done = w.github.wait_final(10, WAIT).await;
    assert_eq!(done.len(), 1, "success at once, nothing before: {done:?}");
    assert_eq!(done[0].state(), "success");
    assert_eq!(done[0].body["auto_inactive"], false, "{:?}", done[0].body);
    assert!(done[0].description().contains("Codertocat"));

    // A deployment arriving now waits, and is not superseded by the
    // lock tasks around it.
    w.deploy(11, REPO, "production").await;
    w.github.wait_state(11, "queued", WAIT).await;
    assert!(
        w.github.statuses_of(11)[0]
            .description()
            .contains("locked by Codertocat"),
        "{:?}",
        w.github.statuses_of(11)
    );

    let (code, _) = w
        .deliver("deployment", &lock_event(12, "deploy:lock"))
        .await;
    assert_eq!(code, 202);
    let again = w.github.wait_final(12, WAIT).await;
    assert_eq!(again.last().unwrap().state(), "failure");
    assert!(
        again.last().unwrap().description().contains("Codertocat"),
        "{:?}",
        again
    );
    // A redelivery changes nothing.
    let (code, _) = w
        .deliver_as("deployment", &lock_event(12, "deploy:lock"), "redelivered")
        .await;
    assert_eq!(code, 200);

    let (code, _) = w
        .deliver("deployment", &lock_event(13, "deploy:unlock"))
        .await;
    assert_eq!(code, 202);
    let unlocked = w.github.wait_final(13, WAIT).await;
    assert_eq!(unlocked.last().unwrap().state(), "success");
    assert_eq!(unlocked.last().unwrap().body["auto_inactive"], false);

    let states = w.github.wait_final(11, WAIT).await;
    let states: Vec<&str> = states.iter().map(|s| s.state()).collect();
    assert_eq!(states, ["queued", "in_progress", "success"]);
    assert_eq!(ran(&w), "11\n", "lock tasks run no steps");
    w.assert_no_violations();
}

/// Two hosts, one at a time; each step records its host and process group,
/// then waits long.
const LONG: &str = "echo \"$FERRY_HOST\" >> SCRATCH/started\n\
                    echo $$ > \"SCRATCH/pid-$FERRY_DEPLOYMENT_ID\"\n\
                    sleep 300";

fn two_hosts() -> Setup {
    Setup {
        sshds: vec![loopback(2, 2)],
        ..Setup::default()
    }
}

/// The remote step `pid` ends within 5 s of a cancel.
async fn gone_within_5s(pid: &str) {
    common::eventually(
        "the remote step gone after the cancel",
        Duration::from_secs(5),
        || async { (!pid_alive(pid)).then_some(()) },
    )
    .await;
}

async fn cancel_ends_a_waiting_and_a_running_deployment(database_url: Option<String>) {
    let w = world(
        database_url,
        two_hosts(),
        LONG,
        "parallel = 1\nsupersede = false",
    )
    .await;
    let config = &w.ferry.config;
    w.deploy(20, REPO, "production").await;
    w.deploy(21, REPO, "production").await;
    let pid = common::written(&w.scratch().join("pid-20"), WAIT).await;
    assert!(pid_alive(&pid));

    // The waiting one: ended at once, never runs.
    let out = ferry_as(
        "carol",
        config,
        &["cancel", "21", "--reason", "wrong branch"],
    );
    assert!(out.status.success(), "{}", text(&out));
    let end = w.github.wait_final(21, WAIT).await;
    let states: Vec<&str> = end.iter().map(|s| s.state()).collect();
    assert_eq!(states, ["queued", "error"]);
    assert_eq!(end[1].description(), "Cancelled by carol: wrong branch");

    // The running one: its step is killed within a second or two, and the
    // second host never starts.
    let long_reason = "x".repeat(200);
    let cancelled = Instant::now();
    let out = ferry_as("carol", config, &["cancel", "20", "--reason", &long_reason]);
    assert!(out.status.success(), "{}", text(&out));
    let end = w.github.wait_final(20, WAIT).await;
    assert!(
        cancelled.elapsed() < Duration::from_secs(5),
        "took {:?}",
        cancelled.elapsed()
    );
    let last = end.last().unwrap();
    assert_eq!(last.state(), "error");
    assert!(last.description().starts_with("Cancelled by carol: xxx"));
    assert!(last.description().chars().count() <= 140);
    gone_within_5s(&pid).await;
    let started = std::fs::read_to_string(w.scratch().join("started")).unwrap();
    assert_eq!(
        started.lines().count(),
        1,
        "later hosts never start: {started}"
    );
    // The log keeps the whole reason.
    let log = w.log_text(last.log_url().unwrap()).await;
    assert!(
        log.contains(&format!("Cancelled by carol: {long_reason}")),
        "{log}"
    );
    let never = w.log_text(end_log_url(&w, 21).as_str()).await;
    assert!(
        never.contains("Cancelled by carol: wrong branch"),
        "{never}"
    );

    let list = w.cli(&["deployments"]);
    let listed = String::from_utf8_lossy(&list.stdout);
    let row = |id: &str| {
        listed
            .lines()
            .find(|l| l.starts_with(id))
            .unwrap_or_default()
            .to_string()
    };
    assert!(row("20 ").contains("cancelled"), "{listed}");
    assert!(row("21 ").contains("cancelled"), "{listed}");
    // One word in the table, `--state` and `--json`.
    let only = w.cli(&["deployments", "--state", "cancelled", "--json"]);
    assert!(only.status.success(), "{only:?}");
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&only.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ids: Vec<i64> = lines.iter().map(|d| d["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, [21, 20], "{lines:?}");
    assert!(lines.iter().all(|d| d["state"] == "cancelled"), "{lines:?}");
    let errors = w.cli(&["deployments", "--state", "error"]);
    let errors = String::from_utf8_lossy(&errors.stdout);
    assert!(!errors.contains("cancelled"), "{errors}");
    // Counted in the store once a second.
    common::eventually(
        "ferry_deployments_cancelled_total 2",
        Duration::from_secs(5),
        || async {
            let n = w.metric("ferry_deployments_cancelled_total").await;
            (n == 2.0).then_some(()).ok_or(n.to_string())
        },
    )
    .await;
    w.assert_no_violations();
}

fn end_log_url(w: &World, id: i64) -> String {
    w.github
        .statuses_of(id)
        .iter()
        .rev()
        .find_map(|s| s.log_url().map(str::to_string))
        .expect("a status with a log_url")
}

async fn cancel_refuses_unknown_and_finished_deployments(database_url: Option<String>) {
    let w = world(database_url, Setup::default(), MARK, "").await;
    w.deploy(30, REPO, "production").await;
    w.github.wait_state(30, "success", WAIT).await;
    let config = &w.ferry.config;
    let unknown = ferry_as("dave", config, &["cancel", "99"]);
    assert_eq!(unknown.status.code(), Some(1), "{}", text(&unknown));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no deployment 99"));
    let done = ferry_as("dave", config, &["cancel", "30"]);
    assert_eq!(done.status.code(), Some(1), "{}", text(&done));
    assert!(
        String::from_utf8_lossy(&done.stderr).contains("ended already (success)"),
        "{}",
        text(&done)
    );
    assert_eq!(w.states(30), ["queued", "in_progress", "success"]);
}

async fn bad_names_and_unowned_environments_are_refused(database_url: Option<String>) {
    let w = world(database_url, Setup::default(), MARK, "").await;
    let config = &w.ferry.config;
    for bad in [
        "production",
        "octo-org:production",
        "octo-org/web:",
        "/web:production",
    ] {
        let out = ferry_as("erin", config, &["lock", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", text(&out));
        assert!(String::from_utf8_lossy(&out.stderr).contains("REPO:ENV"));
    }
    let out = ferry_as("erin", config, &["lock", "octo-org/api:production"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no target owns octo-org/api:production")
            && err.contains("octo-org/web:production"),
        "{err}"
    );
    let locks = ferry_as("erin", config, &["locks"]);
    assert!(String::from_utf8_lossy(&locks.stdout).contains("no environment is locked"));
}

// ---- two replicas on PostgreSQL ---------------------------------------------

async fn deliver(w: &World, to: &Ferry, id: i64) {
    let code = common::deliver_to(
        &w.http,
        &to.url,
        &deployment_event(id, REPO, "production"),
        &format!("d-{id}"),
    )
    .await;
    assert_eq!(code, 202);
}

#[tokio::test(flavor = "multi_thread")]
async fn with_replicas_a_lock_and_a_cancel_reach_the_other_replica() {
    let url = common::postgres::cluster().database();
    let w = world(
        Some(url.clone()),
        Setup::default(),
        LONG,
        "supersede = false",
    )
    .await;
    let b = w.replica(2).await;
    // Locked through the first replica's config, delivered to the second.
    let out = ferry_as(
        "alice",
        &w.ferry.config,
        &["lock", "octo-org/web:production"],
    );
    assert!(out.status.success(), "{}", text(&out));
    deliver(&w, &b, 40).await;
    w.settled().await;
    w.settled_on(&b).await;
    assert_eq!(w.states(40), ["queued"]);
    assert!(w.github.statuses_of(40)[0].description().contains("alice"));
    let out = ferry_as("alice", &b.config, &["unlock", "octo-org/web:production"]);
    assert!(out.status.success(), "{}", text(&out));
    let pid = common::written(&w.scratch().join("pid-40"), WAIT).await;

    // Cancelled through the replica that does not run it.
    let running_on_b = common::postgres::holder(&url, 40).await;
    let other = if running_on_b == Some(b.pid()) {
        &w.ferry
    } else {
        &b
    };
    let out = ferry_as("alice", &other.config, &["cancel", "40"]);
    assert!(out.status.success(), "{}", text(&out));
    let end = w.github.wait_final(40, WAIT).await;
    assert_eq!(end.last().unwrap().description(), "Cancelled by alice");
    gone_within_5s(&pid).await;
}

// ---- root and the daemon's files ----------------------------------------------

/// Root runs the CLI, user ferry the daemon: on SQLite the CLI works as the
/// owner of `storage.dir`, so nothing it leaves there is root's.
#[tokio::test(flavor = "multi_thread")]
async fn the_cli_run_as_root_leaves_no_root_owned_files_in_storage() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    if !common::is_root() {
        eprintln!("skipped: needs root (CI runs the tests as root)");
        return;
    }
    let mut w = world(None, Setup::default(), MARK, "").await;
    w.deploy(50, REPO, "production").await;
    w.github.wait_state(50, "success", WAIT).await;
    // One waiting, so that cancelling it writes its log (a new file).
    let config = w.ferry.config.clone();
    let out = ferry_as("root", &config, &["lock", "octo-org/web:production"]);
    assert!(out.status.success(), "{}", text(&out));
    w.deploy(51, REPO, "production").await;
    w.github.wait_state(51, "queued", WAIT).await;
    // The daemon is down (so SQLite's -wal and -shm are gone), and its
    // files belong to another user, as under the packaged unit.
    w.ferry.signal("TERM");
    w.ferry.wait(WAIT);
    let state = w.dir.path().join("state");
    std::fs::set_permissions(w.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let chown = Command::new("chown")
        .args(["-R", "nobody:nogroup"])
        .arg(&state)
        .status()
        .unwrap();
    assert!(chown.success());
    for args in [
        &["deployments"][..],
        &["logs", "50"],
        &["locks"],
        &["cancel", "51"],
        &["unlock", "octo-org/web:production"],
        &["lock", "octo-org/web:production"],
        &["cancel", "50"],
    ] {
        let out = ferry_as("root", &config, args);
        assert!(
            out.status.code().is_some_and(|c| c <= 1),
            "{args:?}: {}",
            text(&out)
        );
    }
    let mut roots = Vec::new();
    let mut dirs = vec![state];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.uid() == 0 {
                roots.push(path.clone());
            }
            if meta.is_dir() {
                dirs.push(path);
            }
        }
    }
    assert!(roots.is_empty(), "root-owned: {roots:?}");
    let log = w.dir.path().join("state/logs/51.jsonl");
    assert!(
        log.exists(),
        "the cancel wrote no log for the waiting deployment"
    );
}

/// Under the packaged unit `storage.dir` is setgid for group ferry, whose
/// members write the database too: it (and its -wal, -shm) must be
/// group-writable although SQLite makes files 0644 less the umask.
#[tokio::test(flavor = "multi_thread")]
async fn a_setgid_storage_dir_gets_a_group_writable_database() {
    use ferry::store::Locks;
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o2770)).unwrap();
    let store = ferry::store::sqlite::SqliteStore::open(dir.path())
        .await
        .unwrap();
    let lock = ferry::store::EnvLock {
        repository: REPO.into(),
        environment: "production".into(),
        holder: "t".into(),
        reason: String::new(),
        since: ferry::store::Timestamp::EPOCH,
        until: None,
    };
    assert_eq!(store.lock(&lock).await.unwrap(), None);
    for name in ["ferry.db", "ferry.db-wal", "ferry.db-shm"] {
        let mode = std::fs::metadata(dir.path().join(name))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o060, 0o060, "{name}: {mode:o}");
    }
}

/// GitHub's repository names ignore case: a deployment of `Octo-Org/Web`
/// is the `octo-org/web` target's, stored under the config's spelling, and
/// a lock taken in yet another case holds it.
#[tokio::test(flavor = "multi_thread")]
async fn a_repository_named_in_another_case_is_the_targets() {
    let w =
        World::start(|sshd, _| target(REPO, "production", &sshd.hosts(), &[("run", "true")], ""))
            .await;
    let env = format!("{REPO}:production");
    // Locked as someone types it: the same environment.
    assert!(w.cli(&["lock", "OCTO-ORG/web:production"]).status.success());
    w.deploy(91, "Octo-Org/Web", "production").await;
    w.github
        .wait_state(91, "queued", Duration::from_secs(30))
        .await;
    w.settled().await;
    assert_eq!(w.states(91), ["queued"], "held by the lock");
    let listed = w.cli(&["deployments", "--json"]);
    let line: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(line["repository"], REPO, "{line}");
    assert!(w.cli(&["unlock", &env]).status.success());
    let states = w.final_states(91, WAIT).await;
    assert_eq!(states.last().unwrap(), "success", "{states:?}");
    w.assert_no_violations();
}
