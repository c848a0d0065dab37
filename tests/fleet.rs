//! SSH for real fleets: rolling batches, many hosts, strict host keys,
//! bastions, clean cancellation, bounded output.

use ferry_testkit as common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Setup, World, alive, loopback, target};

const REPO: &str = "octo-org/web";
const WAIT: Duration = Duration::from_secs(120);

/// A step that records when it ran on which host, and sleeps `secs`.
fn timed(scratch: &Path, secs: &str) -> String {
    let t = scratch.join("timeline").display().to_string();
    format!(
        "echo \"$FERRY_HOST start $(date +%s%N)\" >> {t}\nsleep {secs}\necho \"$FERRY_HOST end $(date +%s%N)\" >> {t}"
    )
}

/// (host, start, end) per run, from the timeline.
fn runs(scratch: &Path) -> Vec<(String, u128, u128)> {
    let text = std::fs::read_to_string(scratch.join("timeline")).unwrap_or_default();
    let mut starts = std::collections::HashMap::new();
    let mut runs = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let at: u128 = f[2].parse().unwrap();
        if f[1] == "start" {
            starts.insert(f[0].to_string(), at);
        } else {
            runs.push((f[0].to_string(), starts[f[0]], at));
        }
    }
    runs
}

fn most_at_once(runs: &[(String, u128, u128)]) -> usize {
    let mut events: Vec<(u128, i32)> = runs
        .iter()
        .flat_map(|(_, s, e)| [(*s, 1), (*e, -1)])
        .collect();
    // At a tie an end comes first: a host that ends as another starts is not overlap.
    events.sort();
    let (mut now, mut most) = (0i32, 0i32);
    for (_, d) in events {
        now += d;
        most = most.max(now);
    }
    most as usize
}

#[tokio::test(flavor = "multi_thread")]
async fn five_hosts_two_at_a_time() {
    let setup = Setup {
        sshds: vec![loopback(2, 5)],
        ..Setup::default()
    };
    let w = World::build(setup, |sshd, scratch| {
        target(
            REPO,
            "production",
            &sshd.hosts(),
            &[("roll", &timed(scratch, "0.4"))],
            "parallel = 2",
        )
    })
    .await;
    w.deploy(1, REPO, "production").await;
    let statuses = w.github.wait_final(1, WAIT).await;
    assert_eq!(statuses.last().unwrap().state(), "success", "{statuses:?}");
    assert!(
        statuses
            .last()
            .unwrap()
            .description()
            .contains("to 5 hosts")
    );
    let runs = runs(&w.scratch());
    assert_eq!(runs.len(), 5, "{runs:?}");
    assert_eq!(most_at_once(&runs), 2, "{runs:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failure_on_host_2_of_5_stops_the_hosts_after_it() {
    let setup = Setup {
        sshds: vec![loopback(2, 5)],
        ..Setup::default()
    };
    let w = World::build(setup, |sshd, scratch| {
        let second = sshd.displays()[1].clone();
        let ran = scratch.join("ran").display().to_string();
        target(
            REPO,
            "production",
            &sshd.hosts(),
            &[("migrate", &format!("echo \"$FERRY_HOST\" >> {ran}\nif [ \"$FERRY_HOST\" = {second} ]; then exit 4; fi"))],
            "parallel = 1",
        )
    })
    .await;
    w.deploy(2, REPO, "production").await;
    let statuses = w.github.wait_final(2, WAIT).await;
    let last = statuses.last().unwrap();
    let hosts = w.sshd.displays();
    assert_eq!(last.state(), "failure");
    assert_eq!(
        last.description(),
        format!("Step 'migrate' failed on {} (exit 4)", hosts[1])
    );
    let ran = std::fs::read_to_string(w.scratch().join("ran")).unwrap();
    assert_eq!(
        ran,
        format!("{}\n{}\n", hosts[0], hosts[1]),
        "hosts 3 to 5 must never start"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn thirty_hosts_at_once_with_hashed_known_hosts() {
    let setup = Setup {
        sshds: vec![loopback(2, 15), loopback(17, 15)],
        hashed_known_hosts: true,
        ..Setup::default()
    };
    let w = World::build_fleet(setup, |sshds, scratch| {
        let hosts: Vec<String> = sshds.iter().flat_map(|s| s.hosts()).collect();
        assert_eq!(hosts.len(), 30);
        let done = scratch.join("done").display().to_string();
        target(
            REPO,
            "production",
            &hosts,
            &[
                ("one", "true"),
                ("two", &format!("echo \"$FERRY_HOST\" >> {done}")),
                ("three", "true"),
            ],
            "",
        )
    })
    .await;
    w.deploy(3, REPO, "production").await;
    let statuses = w.github.wait_final(3, WAIT).await;
    let last = statuses.last().unwrap();
    assert_eq!(last.state(), "success", "{}", last.description());
    assert!(
        last.description().contains("to 30 hosts"),
        "{}",
        last.description()
    );
    let done = std::fs::read_to_string(w.scratch().join("done")).unwrap();
    assert_eq!(done.lines().count(), 30);
}

#[tokio::test(flavor = "multi_thread")]
async fn closed_and_silent_ports_are_errors_naming_the_host_within_connect_timeout() {
    // Nothing listens on `closed`; `silent` accepts and never says a word.
    let refusing = common::ports::Port::reserve();
    let closed = refusing.port;
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let setup = Setup {
        connect_timeout: "2s".into(),
        ..Setup::default()
    };
    let w = World::build(setup, |sshd, _| {
        target(
            REPO,
            "closed",
            &[format!("{}@127.0.0.1:{closed}", sshd.user)],
            &[("s", "true")],
            "",
        ) + &target(
            REPO,
            "silent",
            &[format!("{}@127.0.0.1:{silent_port}", sshd.user)],
            &[("s", "true")],
            "",
        )
    })
    .await;
    let started = Instant::now();
    w.deploy(4, REPO, "closed").await;
    let statuses = w.github.wait_final(4, WAIT).await;
    assert_eq!(w.states(4), ["queued", "error"]);
    assert_eq!(
        statuses[1].description(),
        format!(
            "Cannot connect to 127.0.0.1:{closed}: connection refused: nothing listens on the SSH port"
        )
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    let started = Instant::now();
    w.deploy(5, REPO, "silent").await;
    let statuses = w.github.wait_final(5, WAIT).await;
    assert_eq!(w.states(5), ["queued", "error"]);
    let description = statuses[1].description();
    assert!(
        description.starts_with(&format!("Cannot connect to 127.0.0.1:{silent_port}: ")),
        "{description}"
    );
    assert!(description.contains("timed out"), "{description}");
    // connect_timeout, plus the margin ferry gives the whole handshake.
    assert!(
        started.elapsed() < Duration::from_secs(2 + 5 + 2),
        "{:?}",
        started.elapsed()
    );
    drop(silent);
}

#[tokio::test(flavor = "multi_thread")]
async fn proxy_jump_through_a_bastion_from_ssh_config_file() {
    let setup = Setup {
        // The bastion on 127.0.0.1, the web host alone on 127.0.0.40.
        sshds: vec![loopback(1, 1), loopback(40, 1)],
        sshd_log_level: "VERBOSE".into(),
        ssh: "config_file = \"bastion.conf\"".into(),
        ..Setup::default()
    };
    let w = World::build_fleet(setup, |sshds, scratch| {
        let (bastion, web) = (sshds[0], sshds[1]);
        let conf = format!(
            "Host web-internal\n    HostName 127.0.0.40\n    Port {}\n    User {}\n    ProxyJump {}@127.0.0.1:{}\n",
            web.port, web.user, bastion.user, bastion.port
        );
        std::fs::write(scratch.parent().unwrap().join("bastion.conf"), conf).unwrap();
        target(REPO, "production", &["web-internal".to_string()], &[("hello", "echo \"via the bastion on $FERRY_HOST\"")], "")
    })
    .await;
    w.deploy(6, REPO, "production").await;
    let statuses = w.github.wait_final(6, WAIT).await;
    let last = statuses.last().unwrap();
    assert_eq!(last.state(), "success", "{}", last.description());
    let bastion_log = std::fs::read_to_string(w.sshd.dir.join("sshd.log")).unwrap();
    assert!(
        bastion_log.contains("Accepted publickey"),
        "the bastion saw no login: {bastion_log}"
    );
    let web_log = std::fs::read_to_string(w.fleet[0].dir.join("sshd.log")).unwrap();
    assert!(web_log.contains("Accepted publickey"), "{web_log}");
    let page = w.log_text(last.log_url().unwrap()).await;
    assert!(page.contains("via the bastion on web-internal"), "{page}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_host_cancels_running_hosts_and_leaves_no_remote_process() {
    let setup = Setup {
        sshds: vec![loopback(2, 2)],
        ..Setup::default()
    };
    let w = World::build(setup, |sshd, scratch| {
        let first = sshd.displays()[0].clone();
        target(
            REPO,
            "production",
            &sshd.hosts(),
            &[(
                "work",
                &format!(
                    "if [ \"$FERRY_HOST\" = {first} ]; then\n{hang}\nfi\nsleep 1\nexit 9",
                    hang = common::hang(scratch)
                ),
            )],
            "",
        )
    })
    .await;
    w.deploy(7, REPO, "production").await;
    let statuses = w.github.wait_final(7, WAIT).await;
    let hosts = w.sshd.displays();
    assert_eq!(
        statuses.last().unwrap().description(),
        format!("Step 'work' failed on {} (exit 9)", hosts[1])
    );
    assert!(
        w.scratch().join("shell.pid").exists(),
        "host 1 never started its step"
    );
    assert!(
        !alive(&w.scratch().join("shell.pid")),
        "host 1's step survived"
    );
    assert!(
        !alive(&w.scratch().join("child.pid")),
        "host 1's background child survived"
    );
}

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_megabytes_of_output_are_truncated_in_bounded_memory() {
    let w = World::start(|sshd, _| {
        target(
            REPO,
            "production",
            &[sshd.host()],
            &[
                (
                    "flood",
                    "head -c 50000000 /dev/zero | tr '\\0' x | fold -w 100",
                ),
                ("after", "echo still running after the flood"),
            ],
            "",
        )
    })
    .await;
    let before = peak_rss_kib(w.ferry.pid());
    w.deploy(8, REPO, "production").await;
    let statuses = w.github.wait_final(8, WAIT).await;
    let last = statuses.last().unwrap();
    assert_eq!(last.state(), "success", "{}", last.description());
    let peak = peak_rss_kib(w.ferry.pid());
    assert!(
        peak < before + 64 * 1024,
        "ferry grew from {before} KiB to {peak} KiB"
    );
    let log_file = w.dir.path().join("state/logs/8.jsonl");
    let size = std::fs::metadata(&log_file).unwrap().len();
    assert!(
        size < ferry::logs::MAX_OUTPUT_BYTES + 64 * 1024,
        "log is {size} bytes"
    );
    let page = w.log_text(last.log_url().unwrap()).await;
    assert!(page.contains("output truncated"), "no truncation note");
    assert!(
        page.contains("after: step started"),
        "ferry's own lines go on after the cap"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn check_hosts_prints_a_table_and_fails_if_any_host_fails() {
    let refusing = common::ports::Port::reserve();
    let closed = refusing.port;
    let setup = Setup {
        sshds: vec![loopback(2, 2)],
        ..Setup::default()
    };
    let w = World::build(setup, |sshd, _| {
        let mut hosts = sshd.hosts();
        hosts.push(format!("{}@127.0.0.1:{closed}", sshd.user));
        target(REPO, "production", &hosts, &[("s", "true")], "")
            + &target(REPO, "staging", &sshd.hosts()[..1], &[("s", "true")], "")
    })
    .await;
    let out = w.cli(&["check-hosts"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{table}");
    let line = |needle: &str| {
        table
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle}: {table}"))
            .to_string()
    };
    // Each host with the fingerprint of the key ferry trusts for it.
    let trusted = std::process::Command::new("ssh-keygen")
        .arg("-lf")
        .arg(w.dir.path().join("known_hosts"))
        .output()
        .unwrap();
    let trusted = String::from_utf8_lossy(&trusted.stdout)
        .split_whitespace()
        .find(|w| w.starts_with("SHA256:"))
        .unwrap()
        .to_string();
    for host in w.sshd.displays() {
        let l = line(&host);
        assert!(l.contains(" ok ") && l.contains("ms"), "{l}");
        assert!(l.contains(&trusted), "{l}");
    }
    let bad = line(&format!("127.0.0.1:{closed}"));
    assert!(
        bad.contains("FAILED") && bad.contains("connection refused") && !bad.contains("SHA256:"),
        "{bad}"
    );
    // One target's hosts only: all good.
    let out = w.cli(&["check-hosts", "--target", "octo-org/web:staging"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// The log of a finished deployment.
async fn log_of(w: &World, id: i64) -> String {
    let statuses = w.github.wait_final(id, WAIT).await;
    let last = statuses.last().unwrap();
    assert_eq!(last.state(), "success", "{statuses:?}");
    w.log_text(last.log_url().unwrap()).await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_next_deployment_reuses_the_open_connection_unless_it_died() {
    let w =
        World::start(|sshd, _| target(REPO, "production", &[sshd.host()], &[("noop", "true")], ""))
            .await;
    w.deploy(1, REPO, "production").await;
    let first = log_of(&w, 1).await;
    assert!(first.contains("connected in"), "{first}");
    assert_eq!(w.sshd.connections(), 1, "kept open for the next deployment");
    w.deploy(2, REPO, "production").await;
    let second = log_of(&w, 2).await;
    assert!(
        second.contains("reusing the connection left open"),
        "{second}"
    );
    assert_eq!(w.sshd.connections(), 1);
    // The host ends the connection while it is idle: the next deployment
    // finds it dead and opens a new one instead of failing.
    w.sshd.drop_connections();
    common::eventually("the host's connections gone", WAIT, || async {
        (w.sshd.connections() == 0).then_some(())
    })
    .await;
    // The master hears of it a moment later; a deployment then is not
    // what this test is about.
    tokio::time::sleep(Duration::from_millis(300)).await;
    w.deploy(3, REPO, "production").await;
    let third = log_of(&w, 3).await;
    assert!(third.contains("connected in"), "{third}");
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_connections_close_after_idle_timeout() {
    let setup = Setup {
        ssh: "idle_timeout = \"1s\"".into(),
        ..Setup::default()
    };
    let w = World::build(setup, |sshd, _| {
        target(REPO, "production", &[sshd.host()], &[("noop", "true")], "")
    })
    .await;
    w.deploy(1, REPO, "production").await;
    log_of(&w, 1).await;
    common::eventually(
        "the idle connection closed",
        Duration::from_secs(10),
        || async { (w.sshd.connections() == 0).then_some(()) },
    )
    .await;
    w.deploy(2, REPO, "production").await;
    let second = log_of(&w, 2).await;
    assert!(second.contains("connected in"), "{second}");
}

/// A connection left open that can no longer start a session (here: sshd's
/// MaxSessions is taken by another session on it; in life, a host that
/// rebooted before the master noticed) must not fail the deployment: nothing
/// ran, so ferry starts over on a new connection.
#[tokio::test(flavor = "multi_thread")]
async fn a_step_that_cannot_start_on_a_kept_connection_starts_on_a_new_one() {
    let runtime = tempfile::tempdir().unwrap();
    let setup = Setup {
        sshd_config: "MaxSessions 1".into(),
        env: vec![(
            "RUNTIME_DIRECTORY".into(),
            runtime.path().display().to_string(),
        )],
        ..Setup::default()
    };
    let w = World::build(setup, |sshd, scratch| {
        let mark = scratch.join("ran").display().to_string();
        target(
            REPO,
            "production",
            &[sshd.host()],
            &[("mark", &format!("echo \"$FERRY_DEPLOYMENT_ID\" >> {mark}"))],
            "",
        )
    })
    .await;
    w.deploy(1, REPO, "production").await;
    log_of(&w, 1).await;
    // Take the one session the kept connection may have.
    let master = std::fs::read_dir(runtime.path())
        .unwrap()
        .filter_map(|e| Some(e.ok()?.path().join("master")))
        .find(|p| p.exists())
        .expect("the kept connection's control socket");
    // Its own name, so that no other sleep is taken for it.
    let sleep = format!("sleep 60.{}", std::process::id());
    let mut holder = std::process::Command::new("ssh")
        .arg("-S")
        .arg(&master)
        .args(["-o", "BatchMode=yes", "-T", "none", &sleep])
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap();
    common::eventually(
        "the holding session started",
        Duration::from_secs(10),
        || async {
            std::process::Command::new("pgrep")
                .args(["-f", &format!("^{sleep}$")])
                .stdout(std::process::Stdio::null())
                .status()
                .unwrap()
                .success()
                .then_some(())
        },
    )
    .await;
    w.deploy(2, REPO, "production").await;
    let second = log_of(&w, 2).await;
    let _ = holder.kill();
    let _ = holder.wait();
    assert!(
        second.contains("reusing the connection left open"),
        "{second}"
    );
    assert!(
        second.contains("the connection left open is gone"),
        "{second}"
    );
    assert!(second.contains("connected in"), "{second}");
    assert_eq!(
        std::fs::read_to_string(w.scratch().join("ran")).unwrap(),
        "1\n2\n",
        "each deployment ran its step once"
    );
}
