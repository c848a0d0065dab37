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
    let port = common::ports::Port::reserve();
    let config = std::fs::read_to_string(&w.ferry.config)
        .unwrap()
        .replace(&w.ferry.url[7..], &port.addr());
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
    // The store is its owner's alone outside the package's setgid directory.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.join("ferry.db"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    assert!(err.contains(&format!("pid {}", w.ferry.pid())), "{err}");
    assert!(
        reqwest::get(format!("{}/healthz", port.url()))
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

/// `ferry show ID --json`.
fn show_json(w: &World, id: i64) -> serde_json::Value {
    let out = w.cli(&["show", &id.to_string(), "--json"]);
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// GitHub out of reach: deployments run, their statuses wait, and
/// everything an operator reads says so plainly, once; when GitHub is
/// back, the statuses go out and the journal says that too.
#[tokio::test]
async fn github_out_of_reach_is_visible_once_and_its_return_too() {
    let refusing = common::ports::Port::reserve();
    let dead = refusing.url();
    let w = World::build(
        common::Setup {
            api_url: Some(dead.clone()),
            ..common::Setup::default()
        },
        |sshd, _| {
            let mut t = String::new();
            for env in ["production", "staging", "qa"] {
                t += &target(REPO, env, &[sshd.host()], &[("ok", "true")], "");
            }
            t
        },
    )
    .await;
    for (id, env) in [(1, "production"), (2, "staging"), (3, "qa")] {
        w.deploy(id, REPO, env).await;
    }
    // Ran as usual; its statuses tried and retried.
    let shown = common::eventually(
        "1 succeeded, its first status tried twice",
        WAIT,
        || async {
            let shown = show_json(&w, 1);
            let tried = shown["statuses"][0]["attempts"].as_i64().unwrap();
            (shown["state"] == "success" && tried >= 2)
                .then_some(shown.clone())
                .ok_or(shown.to_string())
        },
    )
    .await;
    let first = &shown["statuses"][0];
    assert_eq!(first["on_github"], false, "{shown}");
    assert!(first["next_try_at"].is_string(), "{shown}");
    let error = first["last_error"].as_str().unwrap();
    assert!(error.starts_with("could not reach GitHub"), "{shown}");
    let later = &shown["statuses"][2];
    assert_eq!(later["state"], "success", "{shown}");
    assert_eq!(later["attempts"], 0, "{shown}");
    assert!(later["last_error"].is_null(), "{shown}");

    let text = w.cli(&["show", "1"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("not yet: could not reach GitHub"), "{text}");
    assert!(!text.contains("GitHub answered"), "{text}");
    let listed = w.cli(&["deployments"]);
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.contains("success*"), "{listed}");
    assert!(listed.contains("GitHub does not have"), "{listed}");

    // Counted once a second, in the store.
    common::eventually("the pending gauges", WAIT, || async {
        let pending = w.metric("ferry_statuses_pending").await;
        let oldest = w.metric("ferry_statuses_oldest_pending_seconds").await;
        (pending >= 9.0 && oldest > 0.0).then_some(())
    })
    .await;
    let log = w.ferry.output();
    let down: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("GitHub unreachable since"))
        .collect();
    assert_eq!(down.len(), 1, "{log}");
    assert!(down[0].contains("WARN"), "{log}");
    assert!(
        !log.lines()
            .any(|l| l.contains("WARN") && l.contains("not posted")),
        "{log}"
    );

    // GitHub is back: the statuses go out in order, and the journal says so.
    let config = std::fs::read_to_string(&w.ferry.config).unwrap();
    std::fs::write(&w.ferry.config, config.replace(&dead, &w.github.url)).unwrap();
    w.ferry.signal("HUP");
    for id in 1..=3 {
        assert_eq!(
            w.final_states(id, WAIT).await,
            ["queued", "in_progress", "success"]
        );
    }
    common::eventually("GitHub back, nothing pending", WAIT, || async {
        let back = w.ferry.output().contains("GitHub answers again");
        (back && w.metric("ferry_statuses_pending").await == 0.0).then_some(())
    })
    .await;
    assert_eq!(w.metric("ferry_statuses_oldest_pending_seconds").await, 0.0);
    assert_eq!(show_json(&w, 1)["statuses"][0]["on_github"], true);
    w.assert_no_violations();
}

/// Refused deliveries: a 413 decided from `Content-Length` before the
/// body is read (no `100 Continue` asked for it), naming the limit; a 400
/// naming the field; each logged at warning priority with its delivery id.
#[tokio::test]
async fn refused_deliveries_say_why_and_are_logged_with_their_id() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let w =
        World::start(|sshd, _| target(REPO, "production", &[sshd.host()], &[("ok", "true")], ""))
            .await;
    let addr = &w.ferry.url["http://".len()..];
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /webhook HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         X-GitHub-Event: deployment\r\nX-GitHub-Delivery: too-big-1\r\n\
         X-Hub-Signature-256: sha256=00\r\nExpect: 100-continue\r\n\
         Content-Length: {}\r\n\r\n",
        30 * 1024 * 1024
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    // The whole answer, without a byte of the body sent: its head, then
    // the text its Content-Length says.
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        loop {
            let n = tcp.read(&mut buf).await.unwrap();
            answer.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&answer).to_string();
            if n == 0 || (text.contains("\r\n\r\n") && text.contains("MiB")) {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("answered without the body");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(!answer.contains("100 Continue"), "{answer}");
    assert!(answer.contains("25 MiB"), "{answer}");

    let mut event = common::deployment_event(7, REPO, "production");
    event["deployment"]["id"] = "seven".into();
    let (code, text) = w.deliver_as("deployment", &event, "bad-field-1").await;
    assert_eq!(code, 400, "{text}");
    assert!(text.contains("deployment.id"), "{text}");
    assert!(!text.contains("column"), "{text}");
    let (code, _) = w
        .post(
            &[
                ("x-github-event", "deployment".into()),
                ("x-github-delivery", "unsigned-1".into()),
            ],
            b"{}".to_vec(),
        )
        .await;
    assert_eq!(code, 401);

    let log = w.ferry.output();
    for (id, code) in [
        ("too-big-1", "413"),
        ("bad-field-1", "400"),
        ("unsigned-1", "401"),
    ] {
        assert!(
            log.lines()
                .any(|l| l.contains("WARN") && l.contains(id) && l.contains(code)),
            "{id}: {log}"
        );
    }
    assert!(w.github.statuses().is_empty());
}

/// The README's quickstart, literally: ferry on the example config (its
/// port, state directory and GitHub pointed at the test's own), then
/// `scripts/try-deployment` as the README runs it; the deployment ends
/// `success` on `local` and its log link answers.
#[tokio::test]
async fn the_quickstart_reaches_a_successful_deployment() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let config_dir = dir.path().join("config");
    let example = common::example_config(&config_dir);
    // The token GitHub (the fake) takes, where the placeholder was.
    std::fs::write(
        config_dir.join("example/github-token"),
        common::github::TOKEN,
    )
    .unwrap();
    let github = common::github::FakeGitHub::start("").await;
    let port = common::ports::Port::reserve();
    let text = example
        .replace("127.0.0.1:8080", &port.addr())
        .replace("https://api.github.com", &github.url)
        .replace("../target/ferry-example-state", "state");
    let config = config_dir.join("ferry.example.toml");
    std::fs::write(&config, text).unwrap();
    let ferry = common::Ferry::start(config.clone(), &[&port], dir.path().join("ferry.log")).await;

    let out = Command::new(root.join("scripts/try-deployment"))
        .args(["--url", &format!("{}/webhook", port.url())])
        .arg("--secret-file")
        .arg(config_dir.join("example/webhook-secret"))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("ferry answered 202"), "{said}");
    let log_url = said
        .lines()
        .find_map(|l| l.strip_prefix("log: "))
        .unwrap_or_else(|| panic!("no log link: {said}"))
        .to_string();
    let id: i64 = said
        .lines()
        .find_map(|l| {
            l.strip_prefix("deployment ")?
                .split(' ')
                .next()?
                .parse()
                .ok()
        })
        .unwrap();

    let line = common::eventually("the quickstart's deployment succeeded", WAIT, || async {
        let out = Command::new(ferry_binary())
            .args(["deployments", "--json", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        let listed = String::from_utf8_lossy(&out.stdout);
        let line: serde_json::Value =
            serde_json::from_str(listed.lines().next().unwrap_or("{}")).unwrap();
        if line["id"] == id && line["state"] == "success" {
            Ok(line)
        } else {
            Err(format!("{listed}\n{}", ferry.output()))
        }
    })
    .await;
    assert_eq!(line["environment"], "staging", "{line}");
    let page = reqwest::Client::new()
        .get(&log_url)
        .header("accept", "text/plain")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let log = page.text().await.unwrap();
    assert!(log.contains("released main"), "{log}");
    assert!(log.contains("success"), "{log}");
    let states: Vec<String> = github
        .wait_final(id, WAIT)
        .await
        .iter()
        .map(|s| s.state().to_string())
        .collect();
    assert_eq!(states, ["queued", "in_progress", "success"]);
}

/// What a `kill -9` left in the SSH control directory (ferry's ssh_config
/// and connection directories whose master is gone) goes at the next
/// start; what a live process holds stays.
#[tokio::test]
async fn ssh_control_files_left_by_a_crash_are_removed_at_the_next_start() {
    let runtime = tempfile::tempdir().unwrap();
    let dir = runtime.path();
    // A pid no process has: above the kernel's pid_max.
    let dead = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .unwrap()
        .trim()
        .parse::<u64>()
        .unwrap()
        + 1;
    std::fs::write(dir.join(format!("ssh_config.{dead}.0")), "").unwrap();
    std::fs::write(dir.join(format!("ssh_config.{}.0", std::process::id())), "").unwrap();
    std::fs::create_dir(dir.join(".ssh-connectionOLD")).unwrap();
    let old = Command::new("touch")
        .args(["-d", "2 hours ago"])
        .arg(dir.join(".ssh-connectionOLD"))
        .status()
        .unwrap();
    assert!(old.success());
    let _w = World::build(
        common::Setup {
            env: vec![("RUNTIME_DIRECTORY".into(), dir.display().to_string())],
            ..common::Setup::default()
        },
        |sshd, _| target(REPO, "production", &[sshd.host()], &[("ok", "true")], ""),
    )
    .await;
    assert!(!dir.join(format!("ssh_config.{dead}.0")).exists());
    assert!(!dir.join(".ssh-connectionOLD").exists());
    assert!(
        dir.join(format!("ssh_config.{}.0", std::process::id()))
            .exists()
    );
}
