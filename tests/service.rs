//! ferry under a service manager: readiness, status, watchdog, stopping,
//! and SIGHUP reloads that never leave a bad config in force.

use ferry_testkit as common;

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use common::{Setup, World, deployment_event, target};

const REPO: &str = "octo-org/web";
const WAIT: Duration = Duration::from_secs(60);

/// Datagrams on the socket until `until` has been seen (or time runs out).
fn messages_until(socket: &UnixDatagram, until: &str, within: Duration, seen: &mut Vec<String>) {
    let deadline = Instant::now() + within;
    let mut buf = vec![0u8; 4096];
    while !seen.iter().any(|m| m.lines().any(|l| l == until)) {
        assert!(Instant::now() < deadline, "never got {until}: {seen:?}");
        if let Ok(n) = socket.recv(&mut buf) {
            seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn readiness_status_watchdog_and_stopping_reach_the_notify_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let setup = Setup {
        env: vec![
            ("NOTIFY_SOCKET".into(), path.display().to_string()),
            ("WATCHDOG_USEC".into(), "400000".into()),
        ],
        ..Setup::default()
    };
    let mut w = World::build(setup, |sshd, _| {
        target(REPO, "production", &[sshd.host()], &[("s", "true")], "")
    })
    .await;
    let mut seen = Vec::new();
    messages_until(&socket, "READY=1", WAIT, &mut seen);
    // READY came after the socket listened: World::build saw /healthz answer.
    assert!(
        seen.iter().any(|m| m.contains("STATUS=serving")),
        "{seen:?}"
    );
    messages_until(&socket, "STATUS=0 running, 0 queued", WAIT, &mut seen);
    let before = seen.iter().filter(|m| m.contains("WATCHDOG=1")).count();
    std::thread::sleep(Duration::from_millis(900));
    messages_until(&socket, "WATCHDOG=1", WAIT, &mut seen);
    let mut buf = vec![0u8; 4096];
    while let Ok(n) = socket.recv(&mut buf) {
        seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    let after = seen.iter().filter(|m| m.contains("WATCHDOG=1")).count();
    assert!(
        after >= before + 3,
        "the watchdog is petted every 200ms: {before} then {after}"
    );

    w.deploy(1, REPO, "production").await;
    w.github.wait_final(1, WAIT).await;
    w.ferry.signal("TERM");
    messages_until(&socket, "STOPPING=1", WAIT, &mut seen);
    assert!(w.ferry.wait(WAIT).success());
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_applies_a_valid_config_and_refuses_a_bad_one() {
    let w = World::start(|sshd, scratch| {
        let hold = common::hold(scratch);
        target(REPO, "production", &[sshd.host()], &[("wait", &hold)], "")
    })
    .await;
    // A deployment runs across both reloads and is not disturbed by them.
    w.deploy(10, REPO, "production").await;
    w.github.wait_state(10, "in_progress", WAIT).await;
    assert_eq!(
        w.deliver("deployment", &deployment_event(11, REPO, "staging"))
            .await
            .0,
        200,
        "no target yet"
    );

    let config = w.ferry.config.clone();
    let original = std::fs::read_to_string(&config).unwrap();
    let with_staging = original.clone()
        + &target(
            REPO,
            "staging",
            &[w.sshd.host()],
            &[("s", "echo staged")],
            "",
        );
    std::fs::write(&config, &with_staging).unwrap();
    w.ferry.signal("HUP");
    common::eventually("the reload logged", WAIT, || async {
        let said = w.ferry.output();
        let reloaded = said
            .lines()
            .any(|l| l.contains("reloaded") && l.contains("targets=2"));
        reloaded.then_some(()).ok_or(said)
    })
    .await;
    let id = 12;
    let (code, body) = w
        .deliver("deployment", &deployment_event(id, REPO, "staging"))
        .await;
    assert_eq!(code, 202, "{body}");
    assert_eq!(
        w.github.wait_final(id, WAIT).await.last().unwrap().state(),
        "success"
    );

    std::fs::write(
        &config,
        with_staging.replace("[runner]", "[runner]\nmax_concurent = 3"),
    )
    .unwrap();
    w.ferry.signal("HUP");
    common::eventually("the refused reload logged", WAIT, || async {
        let said = w.ferry.output();
        said.contains("reload refused").then_some(()).ok_or(said)
    })
    .await;
    assert!(
        w.ferry.output().contains("max_concurent"),
        "the refusal names the key"
    );
    // The config in force is still the last good one.
    w.deploy(100, REPO, "staging").await;
    assert_eq!(
        w.github.wait_final(100, WAIT).await.last().unwrap().state(),
        "success"
    );

    w.release();
    let running = w.github.wait_final(10, WAIT).await;
    assert_eq!(
        running.iter().map(|p| p.state()).collect::<Vec<_>>(),
        ["queued", "in_progress", "success"]
    );
}

/// Sockets systemd hands over (`LISTEN_FDS`) are served where the config
/// names their address; one it does not name, or a descriptor that is not
/// a TCP socket, stops ferry with an error saying which. (Every test world
/// starts ferry this way: see testkit's `ports`.)
#[tokio::test(flavor = "multi_thread")]
async fn sockets_systemd_passes_are_served_and_strange_ones_refused() {
    let w = World::build(Setup::default(), |sshd, _| {
        target(REPO, "production", &sshd.hosts(), &[("deploy", "true")], "")
    })
    .await;
    let said = w.ferry.output();
    assert!(
        said.contains("listening on the socket systemd passed (server.listen)"),
        "{said}"
    );

    // Another ferry on a store of its own, its port handed over, with one
    // socket more or one descriptor that is no socket.
    let own = common::ports::Port::reserve();
    let config = std::fs::read_to_string(&w.ferry.config)
        .unwrap()
        .replacen(&w.ferry.url[7..], &own.addr(), 1)
        .replacen("dir = \"state\"", "dir = \"state-other\"", 1);
    let path = w.dir.path().join("other.toml");
    std::fs::write(&path, config).unwrap();
    let stray = common::ports::Port::reserve();
    let not_a_socket = std::fs::File::open(&path).unwrap();
    let cases: [(&dyn std::os::fd::AsRawFd, String); 2] = [
        (
            &stray.listen(),
            format!(
                "systemd passed a socket on {}, which neither server.listen nor \
                 server.metrics_listen names",
                stray.addr()
            ),
        ),
        (
            &not_a_socket,
            "descriptor 4 that systemd passed is not a listening TCP socket".into(),
        ),
    ];
    for (extra, expected) in cases {
        let listening = own.listen();
        let out = common::ports::hand_over(&common::ferry_binary(), &[&listening, extra])
            .args(["serve", "--config"])
            .arg(&path)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains(&expected), "{err}");
    }
}
