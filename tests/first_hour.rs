//! What a newcomer and an operator meet in their first hour: a second
//! daemon started by hand beside the service, GitHub out of reach, the
//! words the CLI uses, refused deliveries, `local` hosts.

use ferry_testkit as common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{World, ferry_binary, hold, target};

const REPO: &str = "octo-org/web";
const WAIT: Duration = Duration::from_secs(60);

/// An operator tries a config by hand next to the service: same store,
/// another port. It must refuse at once, naming the directory and the
/// daemon's pid, and leave the running deployment alone.
#[tokio::test]
async fn a_second_serve_on_the_same_store_refuses_and_changes_nothing() {
    let w = World::start(|sshd, scratch| {
        target(
            REPO,
            "production",
            &[sshd.host()],
            &[("hold", &hold(scratch))],
            "",
        )
    })
    .await;
    w.deploy(1, REPO, "production").await;
    w.github.wait_state(1, "in_progress", WAIT).await;
    let port = common::sshd::free_port();
    let config = std::fs::read_to_string(&w.ferry.config)
        .unwrap()
        .replace(&w.ferry.url[7..], &format!("127.0.0.1:{port}"));
    let copy = w.dir.path().join("by-hand.toml");
    std::fs::write(&copy, config).unwrap();

    let started = Instant::now();
    let mut second = Command::new(ferry_binary())
        .args(["serve", "--config"])
        .arg(&copy)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = loop {
        if let Some(s) = second.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > Duration::from_secs(10) {
            let _ = second.kill();
            panic!("the second serve kept running");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let took = started.elapsed();
    let out = second.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!status.success(), "{err}");
    assert!(took < Duration::from_secs(1), "refused after {took:?}");
    let dir = w.dir.path().join("state");
    assert!(err.contains(&dir.display().to_string()), "{err}");
    assert!(err.contains(&format!("pid {}", w.ferry.pid())), "{err}");
    assert!(
        reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
            .await
            .is_err(),
        "the second serve listened"
    );

    // The first one's deployment goes on and succeeds.
    w.release();
    assert_eq!(
        w.final_states(1, WAIT).await,
        ["queued", "in_progress", "success"]
    );
    let log = w.ferry.output();
    assert!(!log.contains("another replica"), "{log}");
}
