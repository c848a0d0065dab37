//! `GET /metrics`: Prometheus text that moves when deployments run.

use ferry_testkit as common;

use std::collections::HashMap;
use std::time::Duration;

use common::github::Fault;
use common::{World, deployment_event, target};

/// Parses Prometheus text format: `name{labels} value` samples, `#` comments.
/// Panics on anything else, naming the line.
fn parse(text: &str) -> HashMap<String, f64> {
    let mut samples = HashMap::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix("# ") {
            let kind = comment.split_whitespace().next().unwrap_or_default();
            assert!(matches!(kind, "HELP" | "TYPE"), "bad comment: {line}");
            if kind == "TYPE" {
                let t = comment.split_whitespace().nth(2).unwrap_or_default();
                assert!(
                    matches!(t, "counter" | "gauge" | "histogram" | "summary" | "untyped"),
                    "bad type: {line}"
                );
            }
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value: {line}"));
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name: {line}"
        );
        if name_end < series.len() {
            assert!(series.ends_with('}'), "unclosed labels: {line}");
        }
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value: {line}"));
        samples.insert(series.to_string(), value);
    }
    samples
}

async fn scrape(w: &World) -> HashMap<String, f64> {
    let r = w
        .http
        .get(format!("{}/metrics", w.ferry.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    parse(&r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_parse_and_move_when_a_deployment_runs() {
    let w = World::start(|sshd, _| {
        target(
            "octo-org/web",
            "production",
            &[sshd.host()],
            &[("noop", "true")],
            "",
        )
    })
    .await;
    let before = scrape(&w).await;
    let get = |m: &HashMap<String, f64>, k: &str| m.get(k).copied().unwrap_or(0.0);
    assert_eq!(
        get(&before, r#"ferry_deployments_total{state="success"}"#),
        0.0
    );

    w.github.fail(3, vec![Fault::new(502)]);
    assert_eq!(
        w.deliver(
            "deployment",
            &deployment_event(3, "octo-org/web", "production")
        )
        .await
        .0,
        202
    );
    assert_eq!(
        w.deliver("ping", &common::fixture("ping/payload.json"))
            .await
            .0,
        200
    );
    w.github.wait_final(3, Duration::from_secs(60)).await;
    // The outbox records the post just after GitHub answers it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = scrape(&w).await;
    assert_eq!(
        get(&after, r#"ferry_deployments_total{state="success"}"#),
        1.0
    );
    assert_eq!(
        get(
            &after,
            r#"ferry_webhook_deliveries_total{event="deployment",result="accepted"}"#
        ),
        1.0
    );
    assert_eq!(
        get(
            &after,
            r#"ferry_webhook_deliveries_total{event="ping",result="ignored"}"#
        ),
        1.0
    );
    assert_eq!(
        get(&after, r#"ferry_status_posts_total{result="sent"}"#),
        3.0
    );
    assert_eq!(
        get(&after, r#"ferry_status_posts_total{result="retried"}"#),
        1.0
    );
    assert_eq!(get(&after, "ferry_ssh_connect_seconds_count"), 1.0);
    // The delivery metrics count the end from the event stream, a moment
    // after the runner recorded it.
    let duration = r#"ferry_deployment_duration_seconds_count{repository="octo-org/web",environment="production"}"#;
    let finished = r#"ferry_deployments_finished_total{repository="octo-org/web",environment="production",state="success"}"#;
    common::eventually("the end counted", Duration::from_secs(30), || async {
        let now = scrape(&w).await;
        (get(&now, duration) == 1.0 && get(&now, finished) == 1.0).then_some(())
    })
    .await;
    assert!(after.contains_key("ferry_deployments_queued"), "{after:?}");
    assert!(after.contains_key("ferry_deployments_running"), "{after:?}");
}
