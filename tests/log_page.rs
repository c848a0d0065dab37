//! The log page at `log_url`: HTML for browsers, text on request, live
//! events, escaping, tokens.

use ferry_testkit as common;

use std::time::Duration;

use common::{World, target};

const REPO: &str = "octo-org/web";
const WAIT: Duration = Duration::from_secs(60);

fn world_steps(scratch: &std::path::Path) -> Vec<(&'static str, String)> {
    vec![
        (
            "build",
            "printf '\\033[1;32mcompiled\\033[0m ok\\n'; echo '<script>alert(1)</script>' >&2"
                .to_string(),
        ),
        (
            "migrate",
            format!(
                "echo migrating; touch {}/migrated; exit 3",
                scratch.display()
            ),
        ),
    ]
}

async fn failed_world() -> (World, String) {
    let w = World::start(|sshd, scratch| {
        let steps = world_steps(scratch);
        let steps: Vec<(&str, &str)> = steps.iter().map(|(n, r)| (*n, r.as_str())).collect();
        target(REPO, "production", &[sshd.host()], &steps, "")
    })
    .await;
    w.deploy(77, REPO, "production").await;
    let statuses = w.github.wait_final(77, WAIT).await;
    let url = statuses.last().unwrap().log_url().unwrap().to_string();
    (w, url)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_html_page_shows_header_groups_lines_and_escapes_everything() {
    let (w, url) = failed_world().await;
    let r = w
        .http
        .get(&url)
        .header("accept", "text/html,application/xhtml+xml,*/*;q=0.8")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let h = r.headers().clone();
    assert!(h["content-type"].to_str().unwrap().starts_with("text/html"));
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'")
            && csp.contains("script-src 'self'")
            && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(h["referrer-policy"], "no-referrer");
    let page = r.text().await.unwrap();
    for expected in [
        "octo-org/web",
        "production",
        "<dd>master</dd>",
        ">f95f852<",
        "Codertocat",
        "<dd>deploy</dd>",
        "id=\"state\" class=\"badge failure\">failure<",
        &w.sshd.display(),
        "Step &#39;migrate&#39; failed on",
    ] {
        assert!(page.contains(expected), "missing {expected:?}");
    }
    // No scripts or styles from anywhere else.
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "external reference in page"
    );
    // The remote <script> is text, never markup.
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(!page.contains("<script>alert(1)"));
    // ANSI colours rendered, escape codes gone.
    assert!(
        page.contains("<span class=\"f2 b\">compiled</span> ok"),
        "no colours"
    );
    assert!(!page.contains('\u{1b}'));
    // Grouped by host and step; the failed group open and marked; line anchors.
    let host = w.sshd.display();
    assert!(page.contains(&format!("{host} · build")));
    let failed = page
        .find("class=\"group failed\"")
        .expect("failed group marked");
    assert!(
        page[failed..].starts_with(&format!(
            "class=\"group failed\" data-host=\"{host}\" data-step=\"migrate\" open>"
        )),
        "{}",
        &page[failed..failed + 120]
    );
    assert!(page.contains("exit 3"));
    assert!(page.contains("id=\"L1\"") && page.contains("href=\"#L1\""));
    // Its assets are served by ferry itself.
    for asset in ["log.js", "log.css"] {
        let r = w
            .http
            .get(format!("{}/assets/{asset}", w.ferry.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{asset}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn text_on_request_tokens_and_retention() {
    let (w, url) = failed_world().await;
    for text in [
        w.http
            .get(format!("{url}&format=text"))
            .send()
            .await
            .unwrap(),
        w.http
            .get(&url)
            .header("accept", "text/plain")
            .send()
            .await
            .unwrap(),
        // curl's default, and a script that sends no Accept at all.
        w.http
            .get(&url)
            .header("accept", "*/*")
            .send()
            .await
            .unwrap(),
        w.http.get(&url).send().await.unwrap(),
    ] {
        assert!(
            text.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain")
        );
        let body = text.text().await.unwrap();
        assert!(body.contains("build: <script>alert(1)</script>"), "{body}");
    }
    let token = url.split("token=").nth(1).unwrap().to_string();
    let base = format!("{}/deployments/77", w.ferry.url);
    for bad in [
        format!("{base}/log"),
        format!("{base}/log?token="),
        format!("{base}/log?token={}", "0".repeat(64)),
        format!("{base}/log?token={}", &token[..32]),
        format!("{}/deployments/78/log?token={token}", w.ferry.url),
        format!("{}/deployments/x/log?token={token}", w.ferry.url),
        format!("{base}/events?token=nope"),
    ] {
        assert_eq!(
            w.http.get(&bad).send().await.unwrap().status(),
            404,
            "{bad}"
        );
    }
    assert!(
        !w.ferry.output().contains(&token),
        "the log token reached ferry's own log"
    );

    std::fs::remove_file(w.dir.path().join("state/logs/77.jsonl")).unwrap();
    let page = w.http.get(&url).send().await.unwrap().text().await.unwrap();
    assert!(
        page.contains("removed after storage.log_retention"),
        "{page}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_event_stream_follows_a_running_deployment_to_its_end() {
    let w = World::start(|sshd, scratch| {
        let hold = common::hold(scratch);
        target(
            REPO,
            "production",
            &[sshd.host()],
            &[(
                "wait",
                &format!("echo before\n{hold}\necho after-the-page-loaded"),
            )],
            "",
        )
    })
    .await;
    w.deploy(88, REPO, "production").await;
    w.github.wait_state(88, "in_progress", WAIT).await;
    let url = w.github.statuses_of(88)[1].log_url().unwrap().to_string();
    common::eventually("the running step on the log page", WAIT, || async {
        w.log_text(&url)
            .await
            .contains("wait: before")
            .then_some(())
    })
    .await;
    let page = w
        .http
        .get(&url)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(">before<"));
    assert!(page.contains("data-live=\"true\""));
    let events = page
        .split("data-events=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .replace("&amp;", "&");
    let events_url = format!("{}/deployments/88/{events}", w.ferry.url);
    let mut r = w.http.get(&events_url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    w.release();
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !seen.contains("event: end") {
        let chunk = tokio::time::timeout_at(deadline, r.chunk())
            .await
            .expect("stream ended late")
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(
            &chunk.expect("stream closed before its end event"),
        ));
    }
    assert!(seen.contains("after-the-page-loaded"), "{seen}");
    assert!(
        !seen.contains("before\\n") && !seen.contains(">before<"),
        "lines already on the page were sent again: {seen}"
    );
    assert!(seen.contains("\"state\":\"success\""), "{seen}");
}

#[tokio::test(flavor = "multi_thread")]
async fn ferry_logs_follow_tails_until_the_deployment_ends() {
    let w = World::start(|sshd, scratch| {
        let hold = common::hold(scratch);
        target(
            REPO,
            "production",
            &[sshd.host()],
            &[(
                "wait",
                &format!("echo before\n{hold}\necho after-follow-started"),
            )],
            "",
        )
    })
    .await;
    w.deploy(66, REPO, "production").await;
    w.github.wait_state(66, "in_progress", WAIT).await;
    let follower = std::process::Command::new(common::ferry_binary())
        .args(["logs", "66", "--follow", "--config"])
        .arg(&w.ferry.config)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    w.release();
    let out = tokio::task::spawn_blocking(move || follower.wait_with_output().unwrap())
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(text.contains("wait: before"), "{text}");
    assert!(text.contains("wait: after-follow-started"), "{text}");
    assert!(text.contains("ferry: success: Deployed"), "{text}");
    assert_eq!(
        text.matches("wait: before").count(),
        1,
        "a line printed twice: {text}"
    );
}

/// docs/reference.md: `logs --follow` exits 0 only for a success, so a script can wait
/// for a deployment and act on its result; without `--follow` it prints
/// the log and exits 0 whatever the outcome.
#[tokio::test(flavor = "multi_thread")]
async fn ferry_logs_follow_exits_1_for_a_failed_deployment() {
    let w = World::start(|sshd, _| {
        target(
            REPO,
            "production",
            &[sshd.host()],
            &[("break", "echo about to fail; exit 4")],
            "",
        )
    })
    .await;
    w.deploy(67, REPO, "production").await;
    assert_eq!(w.final_states(67, WAIT).await.last().unwrap(), "failure");
    let followed = w.cli(&["logs", "67", "--follow"]);
    let stderr = String::from_utf8_lossy(&followed.stderr);
    assert_eq!(followed.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("deployment 67 ended in failure"),
        "{stderr}"
    );
    assert!(
        String::from_utf8_lossy(&followed.stdout).contains("break: about to fail"),
        "{followed:?}"
    );
    assert!(w.cli(&["logs", "67"]).status.success());
}

/// What a step writes to stdout and stderr reaches the log in the order it
/// was written, through sshd, the multiplexer and ferry's pipes.
#[tokio::test(flavor = "multi_thread")]
async fn stdout_and_stderr_lines_keep_the_order_they_were_written_in() {
    let script = "i=0; while [ $i -lt 300 ]; do echo out$i; echo err$i >&2; i=$((i+1)); done";
    let w =
        World::start(|sshd, _| target(REPO, "production", &[sshd.host()], &[("talk", script)], ""))
            .await;
    w.deploy(78, REPO, "production").await;
    let statuses = w.github.wait_final(78, WAIT).await;
    assert_eq!(statuses.last().unwrap().state(), "success");
    let log = w
        .log_text(statuses.last().unwrap().log_url().unwrap())
        .await;
    let said: Vec<&str> = log
        .lines()
        .filter(|l| !l.contains("Z ferry "))
        .filter_map(|l| l.split_once(" talk: ").map(|(_, text)| text))
        .collect();
    let expected: Vec<String> = (0..300)
        .flat_map(|i| [format!("out{i}"), format!("err{i}")])
        .collect();
    assert_eq!(said, expected, "{log}");
}
