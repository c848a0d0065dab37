//! The edges an incident hits: a crash while a host does not answer, a
//! host that stops answering mid-step, and the steering commands on the
//! config as packaged. Each test runs on SQLite and on PostgreSQL.

use ferry_testkit as common;
use ferry_testkit::backends;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{Setup, World, alive, running, target};

const REPO: &str = "octo-org/web";
const WAIT: Duration = Duration::from_secs(60);

backends!(
    a_crash_while_the_host_does_not_answer_holds_the_environment,
    a_host_that_stops_answering_mid_step_is_lost_and_held,
    steering_works_on_the_packaged_config_and_is_logged,
);

/// Each deployment's step: notes any earlier step still alive (an
/// overlap), records its own shell's pid, ignores SIGHUP (as a careless
/// step does), and deployment 1's then runs until it is killed.
const STEP: &str = r#"for f in SCRATCH/pid-*; do
  [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null && echo "overlap $f" >> SCRATCH/ran
done
echo $$ > SCRATCH/pid-$FERRY_DEPLOYMENT_ID
echo "$FERRY_DEPLOYMENT_ID" >> SCRATCH/ran
trap '' HUP
if [ "$FERRY_DEPLOYMENT_ID" = 1 ]; then sleep 600; fi"#;

async fn world(database_url: Option<String>, ssh: &str) -> World {
    World::build(
        Setup {
            database_url,
            ssh: ssh.to_string(),
            connect_timeout: "2s".into(),
            ..Setup::default()
        },
        |sshd, scratch| {
            let step = STEP.replace("SCRATCH", &scratch.display().to_string());
            target(REPO, "production", &sshd.hosts(), &[("run", &step)], "")
        },
    )
    .await
}

fn ran(w: &World) -> String {
    std::fs::read_to_string(w.scratch().join("ran")).unwrap_or_default()
}

/// Waits until the store knows deployment `id`'s running step, read as
/// the next `ferry serve` will read it.
async fn step_remembered(w: &World, database_url: Option<String>, id: i64) {
    use ferry::store::{DeploymentId, SharedStore};
    let store: SharedStore = match database_url {
        Some(url) => std::sync::Arc::new(
            ferry::store::postgres::PgStore::connect(&url)
                .await
                .unwrap(),
        ),
        None => std::sync::Arc::new(
            ferry::store::sqlite::SqliteStore::open(&w.dir.path().join("state"))
                .await
                .unwrap(),
        ),
    };
    common::eventually("the step remembered in the store", WAIT, || async {
        let steps = store.remote_steps(DeploymentId(id)).await.ok()?;
        (!steps.is_empty()).then_some(())
    })
    .await;
    store.close().await;
}

async fn wait_for(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    common::eventually(what, within, || {
        let done = done().then_some(());
        async move { done }
    })
    .await;
}

fn signal(pids: &[u32], sig: &str) {
    for pid in pids {
        let _ = Command::new("kill")
            .args([&format!("-{sig}"), &pid.to_string()])
            .status();
    }
}

/// Every sshd process below the listener: the ones serving connections
/// (not the steps they run).
fn sshd_sessions(listener: u32) -> Vec<u32> {
    let mut found = Vec::new();
    let mut look = vec![listener];
    while let Some(parent) = look.pop() {
        let out = Command::new("pgrep")
            .args(["-P", &parent.to_string()])
            .output()
            .unwrap();
        for pid in String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.trim().parse::<u32>().ok())
        {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if comm.trim() == "sshd" {
                found.push(pid);
                look.push(pid);
            }
        }
    }
    found
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

async fn a_crash_while_the_host_does_not_answer_holds_the_environment(db: Option<String>) {
    let mut w = world(db.clone(), "").await;
    let pid1 = w.scratch().join("pid-1");
    w.deploy(1, REPO, "production").await;
    wait_for("step 1 running", WAIT, || running(&pid1) == Some(true)).await;
    // The step's process group reaches the store just after the step
    // starts: a crash before that leaves nothing to end (or to hold).
    step_remembered(&w, db, 1).await;

    // The host stops answering new connections, and ferry is killed.
    signal(&[w.sshd.pid()], "STOP");
    let started = Instant::now();
    w.restart().await;
    let serving = started.elapsed();
    assert!(
        serving < Duration::from_secs(2),
        "served {serving:?} after the restart: recovery must not come before intake"
    );
    let t = Instant::now();
    w.deploy(2, REPO, "production").await;
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());

    // The interrupted deployment is settled; its step could not be ended,
    // so production is held.
    let one = w.github.wait_final(1, WAIT).await;
    assert_eq!(one.last().unwrap().state(), "error", "{one:?}");
    let locks = w.cli(&["locks"]);
    let listed = String::from_utf8_lossy(&locks.stdout).to_string();
    assert!(
        listed.contains(&format!(
            "held: cannot end the step of deployment 1 on {} yet",
            w.sshd.display()
        )),
        "{}",
        text(&locks)
    );
    // A deployment arriving now says why it waits.
    w.deploy(3, REPO, "production").await;
    w.github.wait_state(3, "queued", WAIT).await;
    let queued = w.github.statuses_of(3)[0].description().to_string();
    assert!(
        queued.contains("production is held: cannot end the step of deployment 1"),
        "{queued}"
    );
    w.settled().await;
    assert_eq!(w.states(3), ["queued"], "nothing starts while held");
    assert!(alive(&pid1), "the old step still runs");

    // The host answers again: ferry ends the old step, then runs the next.
    signal(&[w.sshd.pid()], "CONT");
    let three = w.github.wait_final(3, WAIT).await;
    assert_eq!(three.last().unwrap().state(), "success", "{three:?}");
    assert!(!alive(&pid1), "the old step was ended");
    assert!(!ran(&w).contains("overlap"), "{}", ran(&w));
    let locks = w.cli(&["locks"]);
    assert!(
        String::from_utf8_lossy(&locks.stdout).contains("no environment is locked"),
        "{}",
        text(&locks)
    );
    w.assert_no_violations();
}

async fn a_host_that_stops_answering_mid_step_is_lost_and_held(db: Option<String>) {
    let w = world(db, "keepalive = \"1s\"").await;
    let pid1 = w.scratch().join("pid-1");
    w.deploy(1, REPO, "production").await;
    wait_for("step 1 running", WAIT, || running(&pid1) == Some(true)).await;

    // The connection's sshd freezes: the host answers no keepalive.
    let frozen = sshd_sessions(w.sshd.pid());
    assert!(!frozen.is_empty());
    signal(&frozen, "STOP");
    let t = Instant::now();
    let one = w.github.wait_final(1, WAIT).await;
    let took = t.elapsed();
    let last = one.last().unwrap();
    assert_eq!(last.state(), "error", "{one:?}");
    assert_eq!(
        last.description(),
        format!(
            "Lost the connection to {} during step 'run'",
            w.sshd.display()
        )
    );
    assert!(took < Duration::from_secs(10), "lost after {took:?}");

    // Nothing else starts there until that step is ended.
    w.deploy(2, REPO, "production").await;
    signal(&frozen, "CONT");
    let two = w.github.wait_final(2, WAIT).await;
    assert_eq!(two.last().unwrap().state(), "success", "{two:?}");
    assert!(!alive(&pid1), "the lost step was ended");
    assert!(!ran(&w).contains("overlap"), "{}", ran(&w));
    let log = w.log_text(last.log_url().unwrap()).await;
    assert!(log.contains("answered none of 3 keepalives"), "{log}");
    assert!(!log.contains("remote process has terminated"), "{log}");
    w.assert_no_violations();
}

/// The packaged config's secrets as systemd hands them over, and a
/// half-edited target beside the one in use.
fn packaged_config(w: &World) -> PathBuf {
    let config = std::fs::read_to_string(&w.ferry.config)
        .unwrap()
        .replace(
            "webhook_secret_file = \"secret\"",
            "webhook_secret_file = \"${CREDENTIALS_DIRECTORY}/webhook-secret\"",
        )
        .replace(
            "token_file = \"token\"",
            "token_file = \"${CREDENTIALS_DIRECTORY}/github-token\"",
        )
        + "\n[[target]]\nrepository = \"octo-org/api\"\nenvironment = \"staging\"\nhosts = [\"nowhere\"]\ncolour = \"half-edited\"\n";
    let path = w.dir.path().join("packaged.toml");
    std::fs::write(&path, config).unwrap();
    path
}

fn ferry(config: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(common::ferry_binary());
    c.args(args)
        .arg("--config")
        .arg(config)
        .env_remove("CREDENTIALS_DIRECTORY")
        .env_remove("SUDO_USER")
        .env_remove("USER")
        .env_remove("LOGNAME");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

async fn steering_works_on_the_packaged_config_and_is_logged(db: Option<String>) {
    let w = world(db, "").await;
    let config = packaged_config(&w);
    let env = "octo-org/web:production";
    let lock = ferry(
        &config,
        &["lock", env, "--reason", "incident 7"],
        &[("SUDO_USER", "alice")],
    );
    assert!(lock.status.success(), "{}", text(&lock));
    let locks = ferry(&config, &["locks"], &[]);
    assert!(locks.status.success(), "{}", text(&locks));
    assert!(
        String::from_utf8_lossy(&locks.stdout).contains("alice"),
        "{}",
        text(&locks)
    );
    w.deploy(1, REPO, "production").await;
    w.github.wait_state(1, "queued", WAIT).await;
    // Without SUDO_USER, USER or LOGNAME: the login name of the uid.
    let me = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout).unwrap();
    let me = me.trim();
    let cancel = ferry(&config, &["cancel", "1", "--reason", "bad build"], &[]);
    assert!(cancel.status.success(), "{}", text(&cancel));
    let one = w.github.wait_final(1, WAIT).await;
    let last = one.last().unwrap();
    assert_eq!(last.state(), "error");
    assert_eq!(last.description(), format!("Cancelled by {me}: bad build"));
    assert!(
        !last.description().contains("uid "),
        "{}",
        last.description()
    );
    assert!(
        last.log_url().is_some(),
        "the outbox adds the log link: {last:?}"
    );
    let unlock = ferry(&config, &["unlock", env], &[("SUDO_USER", "bob")]);
    assert!(unlock.status.success(), "{}", text(&unlock));
    let listed = ferry(&config, &["deployments"], &[]);
    assert!(listed.status.success(), "{}", text(&listed));

    // The running ferry writes each action to its log, naming who.
    let log = common::eventually("the audit lines", Duration::from_secs(10), || async {
        let log = w.ferry.output();
        let found = log.contains("alice locked octo-org/web:production: incident 7")
            && log.contains(&format!(
                "{me} cancelled deployment 1 of octo-org/web:production"
            ))
            && log.contains("bob unlocked octo-org/web:production");
        found.then_some(log.clone()).ok_or(log)
    })
    .await;
    assert!(
        log.contains("actor=alice") || log.contains("actor=\"alice\""),
        "{log}"
    );

    // A closed output ends a command quietly.
    let piped = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "for i in 1 2 3 4 5 6 7 8; do cat /dev/null; done; \
             {} deployments --limit 500 --config {} 2>{} | head -c 1 >/dev/null",
            common::ferry_binary().display(),
            config.display(),
            w.dir.path().join("pipe.err").display()
        ))
        .status()
        .unwrap();
    assert!(piped.success());
    let err = std::fs::read_to_string(w.dir.path().join("pipe.err")).unwrap();
    assert!(!err.contains("panicked"), "{err}");
    w.assert_no_violations();
}

/// Raises this process's open-file limit, for thousands of client sockets.
fn more_open_files(n: u64) {
    // SAFETY: getrlimit/setrlimit on a value we own.
    unsafe {
        let mut l = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut l), 0);
        if l.rlim_cur < n {
            l.rlim_cur = n.min(l.rlim_max);
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &l), 0);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_and_slow_clients_never_hold_up_a_delivery() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    more_open_files(8192);
    let w = world(None, "").await;
    let addr = w.ferry.url.trim_start_matches("http://").to_string();
    let mut idle = Vec::new();
    for _ in 0..2000 {
        let mut c = tokio::net::TcpStream::connect(&addr).await.unwrap();
        c.write_all(b"POST /webhook HTTP/1.1\r\nHost: ferry\r\nContent-Type: appl")
            .await
            .unwrap();
        idle.push(c);
    }
    let opened = Instant::now();
    let t = Instant::now();
    w.deploy(5, REPO, "production").await;
    // Held behind the idle clients it would wait for their 10 s header
    // timeout; 5 s leaves room for a CI machine busy with other tests.
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "a delivery waited {:?} behind 2,000 idle clients",
        t.elapsed()
    );
    w.github.wait_state(5, "success", WAIT).await;
    // Each half-sent head is cut off after 10 s.
    for c in &mut idle {
        let mut buf = [0u8; 512];
        // 10 s, and 20 more for closing 2,000 sockets on a busy box.
        let left = Duration::from_secs(30).saturating_sub(opened.elapsed());
        match tokio::time::timeout(left, c.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {
                // An answer (408) is fine too; the close must follow.
                let closed = tokio::time::timeout(Duration::from_secs(2), c.read(&mut buf)).await;
                assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "not closed");
            }
            Ok(_) => {}
            Err(_) => panic!("a half-sent request head was still open after 30 s"),
        }
    }
    assert!(
        opened.elapsed() >= Duration::from_secs(9),
        "closed after {:?}: before the 10 s docs/reference.md gives",
        opened.elapsed()
    );
    assert_eq!(w.health().await.0, 200);
    w.assert_no_violations();
}

/// A tmpfs mounted for the test, lazily unmounted however it ends.
struct Tmpfs(PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_gets_503s_and_loses_nothing_accepted() {
    if !common::is_root() {
        eprintln!("skipped: mounting a tmpfs needs root (CI runs as root)");
        return;
    }
    let mut w = World::build(Setup::default(), |sshd, scratch| {
        let hold = common::hold(scratch);
        target(
            REPO,
            "production",
            &sshd.hosts(),
            &[("run", &format!("echo started\n{hold}\necho done"))],
            "supersede = false",
        )
    })
    .await;
    // The store on a small disk of its own: a fresh one, as after an
    // install on that disk.
    let state = w.dir.path().join("state");
    w.ferry.kill9();
    std::fs::create_dir_all(&state).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=24m", "tmpfs"])
        .arg(&state)
        .status()
        .unwrap();
    assert!(mounted.success());
    let _tmpfs = Tmpfs(state.clone());
    w.restart().await;
    w.deploy(1, REPO, "production").await;
    w.github.wait_state(1, "in_progress", WAIT).await;

    let fill = state.join("fill");
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=1M"])
        .arg(format!("of={}", fill.display()))
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    // The probe notices within a second.
    let noticed = Instant::now();
    let why = common::eventually("/healthz 503", Duration::from_secs(5), || async {
        let (code, why) = w.health().await;
        if code == 503 {
            Ok(why)
        } else {
            Err(format!("{code} {why}"))
        }
    })
    .await;
    assert!(
        noticed.elapsed() < Duration::from_millis(1500),
        "{:?}",
        noticed.elapsed()
    );
    assert!(why.contains("disk full"), "{why}");
    let event = common::deployment_event(2, REPO, "production");
    let redeliver = || w.deliver_as("deployment", &event, "while-full");
    let t = Instant::now();
    let (code, body) = redeliver().await;
    assert_eq!(code, 503, "{body}");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());

    // Deployment 1 ends while the disk is full, then space comes back.
    w.release();
    // Deployment 1 tries to record its end while the disk is still full,
    // and says that it will try again.
    common::eventually("a failed write of deployment 1's end", WAIT, || async {
        w.ferry
            .output()
            .contains("cannot record the final state of deployment 1")
            .then_some(())
    })
    .await;
    std::fs::remove_file(&fill).unwrap();
    w.wait_healthy(WAIT).await;
    // GitHub's "Redeliver".
    let (code, body) = redeliver().await;
    assert_eq!(code, 202, "{body}");
    for id in [1, 2] {
        let states = w.final_states(id, WAIT).await;
        assert_eq!(states, ["queued", "in_progress", "success"], "{id}");
    }
    w.ferry.kill9();
    w.assert_no_violations();
}
