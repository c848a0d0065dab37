//! The live log page in a real browser (Debian's headless Chromium).

use ferry_testkit as common;

use std::time::Duration;

use common::browser::Browser;
use common::{World, target};

const REPO: &str = "octo-org/web";

#[tokio::test(flavor = "multi_thread")]
async fn the_log_page_updates_live_and_runs_no_injected_script() {
    let w = World::start(|sshd, scratch| {
        let hold = common::hold(scratch);
        target(
            REPO,
            "production",
            &[sshd.host()],
            &[
                (
                    "build",
                    "printf '\\033[1;32m✔ compiled\\033[0m 42 files\\n'\n\
                     printf '\\033[33mwarning:\\033[0m unused variable\\n' >&2\n\
                     echo '<script>window.__xss = 1</script>'\n\
                     echo '<img src=x onerror=\"window.__xss = 2\">'",
                ),
                (
                    "deploy",
                    &format!("echo before\n{hold}\necho after-the-page-loaded\necho restarted web"),
                ),
            ],
            "",
        )
    })
    .await;
    w.deploy(99, REPO, "production").await;
    w.github
        .wait_state(99, "in_progress", Duration::from_secs(60))
        .await;
    let url = w.github.statuses_of(99)[1].log_url().unwrap().to_string();
    common::eventually(
        "the first step's line in the log",
        Duration::from_secs(60),
        || async {
            w.log_text(&url)
                .await
                .contains("deploy: before")
                .then_some(())
        },
    )
    .await;

    let mut b = Browser::start().await;
    b.navigate(&url).await;
    let text = "document.body.innerText";
    assert_eq!(b.eval(&format!("{text}.includes('before')")).await, true);
    assert_eq!(
        b.eval(&format!("{text}.includes('after-the-page-loaded')"))
            .await,
        false
    );
    assert_eq!(
        b.eval("document.getElementById('state').textContent").await,
        "running"
    );
    b.eval("window.__samePage = 42").await;
    let took = "document.querySelectorAll('.took')[3].textContent";
    let took_at_load = b.eval(took).await;

    // A line printed after the page loaded appears without a reload.
    w.release();
    b.wait_for(
        &format!("{text}.includes('after-the-page-loaded')"),
        Duration::from_secs(5),
    )
    .await;
    b.wait_for(
        "document.getElementById('state').textContent === 'success'",
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(b.eval("window.__samePage").await, 42, "the page reloaded");
    assert_eq!(
        b.eval("document.getElementById('state').className").await,
        "badge success"
    );
    let labels = "Array.from(document.querySelectorAll('.exit')).map(e => e.textContent).join(',')";
    assert_eq!(
        b.eval(labels).await,
        ",,exit 0,exit 0",
        "ferry, connect, build, deploy"
    );
    assert_ne!(
        b.eval(took).await,
        took_at_load,
        "the deploy group's duration follows its lines"
    );

    // The injected markup is shown as text and never ran.
    assert_eq!(b.eval("typeof window.__xss").await, "undefined");
    assert_eq!(
        b.eval(&format!(
            "{text}.includes('<script>window.__xss = 1</script>')"
        ))
        .await,
        true
    );
    assert_eq!(
        b.eval("document.querySelectorAll('#log img, #log script').length")
            .await,
        0
    );
    // Colours rendered.
    assert_eq!(b.eval("getComputedStyle(document.querySelector('.f2')).fontWeight >= 600 || !!document.querySelector('.f2.b')").await, true);

    let png = b.screenshot().await;
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("log-page.png");
    std::fs::write(&path, &png).unwrap();
    eprintln!("screenshot of the finished page: {}", path.display());
    assert!(png.starts_with(b"\x89PNG"));
}

/// At 1200 px no label wraps away from its value, however many hosts, and
/// a collapsed step group shows that it opens.
#[tokio::test(flavor = "multi_thread")]
async fn at_1200_px_labels_stay_with_their_values_and_groups_show_a_marker() {
    let setup = common::Setup {
        sshds: vec![common::loopback(120, 14)],
        ..common::Setup::default()
    };
    let w = World::build(setup, |sshd, _| {
        target(REPO, "production", &sshd.hosts(), &[("noop", "true")], "")
    })
    .await;
    w.deploy(98, REPO, "production").await;
    let done = w.github.wait_final(98, Duration::from_secs(60)).await;
    let url = done.last().unwrap().log_url().unwrap().to_string();
    let mut b = Browser::start().await;
    b.call(
        "Emulation.setDeviceMetricsOverride",
        serde_json::json!({"width": 1200, "height": 900, "deviceScaleFactor": 1, "mobile": false}),
    )
    .await;
    b.navigate(&url).await;
    assert_eq!(b.eval("window.innerWidth").await, 1200);
    // Long enough to wrap: fourteen hosts.
    assert_eq!(
        b.eval("document.querySelector('.hosts dd').getClientRects().length > 0 && document.querySelector('.hosts dd').offsetHeight > 20").await,
        true,
        "the hosts value should be long enough to wrap at 1200 px"
    );
    let beside = "Array.from(document.querySelectorAll('header dl > div')).every(p => {
        const t = p.querySelector('dt').getBoundingClientRect();
        const d = p.querySelector('dd').getClientRects()[0];
        return Math.abs(t.top - d.top) < 2 && d.left > t.left;
    })";
    assert_eq!(
        b.eval("document.querySelectorAll('header dl > div > dt').length")
            .await,
        8
    );
    assert_eq!(
        b.eval(beside).await,
        true,
        "a label wrapped away from its value"
    );
    // Collapsed groups (a finished, successful deployment's steps) have a
    // marker, and an open one another.
    let marker = |selector: &str| {
        format!("getComputedStyle(document.querySelector('{selector}'), '::before').content")
    };
    let closed = b.eval(&marker("details.group:not([open]) > summary")).await;
    let open = b.eval(&marker("details.group[open] > summary")).await;
    assert_eq!(closed, "\"▸\"", "{closed}");
    assert_eq!(open, "\"▾\"", "{open}");
}
