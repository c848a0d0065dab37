//! The Grafana dashboard and the alerting rules in `contrib/`, against a
//! real Prometheus scraping a ferry that ran a few deployments on
//! `server.metrics_listen`: every panel's query returns data, every rule
//! evaluates without error, `promtool` passes the rules, and no query
//! names a metric ferry does not export.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use ferry_testkit as common;
use serde_json::Value;

use common::prometheus::{Prometheus, binary};
use common::receiver::Receiver;
use common::{Setup, World, deployment_event, eventually, target};

const REPO: &str = "octo-org/web";
const WAIT: Duration = Duration::from_secs(60);
const GOOD: &str = "f95f852bd8fca8fcc58a9a2d6c842781e32a215e";
const BAD: &str = "badbadbadbadbadbadbadbadbadbadbadbadbad0";

fn contrib(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("contrib")
        .join(path)
}

/// Each panel's queries, with Grafana's variables as a dashboard showing
/// everything over the last 10 minutes would fill them in.
fn panel_queries() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(contrib("grafana/ferry.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&text).unwrap();
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().into_iter().flatten() {
            let expr = crate::dashboard_picture::fill(t["expr"].as_str().unwrap());
            assert!(!expr.contains('$'), "a variable left in {expr}");
            out.push((panel["title"].as_str().unwrap().to_string(), expr));
        }
    }
    assert!(out.len() >= 15, "{out:?}");
    out
}

/// The metric names an expression uses (histogram series by family).
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = expr;
    while let Some(at) = rest.find("ferry_") {
        let word: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let family = ["_bucket", "_count", "_sum"]
            .iter()
            .find_map(|s| word.strip_suffix(s))
            .unwrap_or(&word);
        names.insert(family.to_string());
        rest = &rest[at + word.len()..];
    }
    names
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_and_the_rules_work_against_a_real_prometheus() {
    let hook = Receiver::start(None).await;
    let setup = Setup {
        metrics_listen: true,
        ..Setup::default()
    };
    let w = World::build(setup, |sshd, _| {
        let step = [("deploy", &*format!("[ \"$FERRY_SHA\" != {BAD} ]"))];
        let mut t = target(REPO, "production", &sshd.hosts(), &step, "");
        t.push_str(&format!(
            "\n[[notify]]\nname = \"ops\"\nurl = {:?}\n",
            hook.url
        ));
        t
    })
    .await;
    // Prometheus watches from before the first deployment, as it would.
    let rules = contrib("prometheus/ferry-rules.yml");
    let metrics_at = w.metrics_url();
    let prometheus = Prometheus::start(&metrics_at["http://".len()..], &rules).await;
    eventually("a scrape before anything ran", WAIT, || async {
        let a = prometheus
            .query("ferry_deployments_finished_total{state=\"success\"} == 0")
            .await;
        (!a["data"]["result"].as_array()?.is_empty()).then_some(())
    })
    .await;
    let committed = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(3);
    w.github.set_commit(REPO, GOOD, &committed.to_string());
    // A success, a failure, the success that recovered from it.
    for (id, sha) in [(81, GOOD), (82, BAD), (83, GOOD)] {
        let mut event = deployment_event(id, REPO, "production");
        event["deployment"]["sha"] = sha.into();
        let (code, body) = w.deliver("deployment", &event).await;
        assert_eq!(code, 202, "{body}");
        w.github.wait_final(id, WAIT).await;
    }

    // /metrics is on metrics_listen only.
    let main = w
        .http
        .get(format!("{}/metrics", w.ferry.url))
        .send()
        .await
        .unwrap();
    assert_eq!(main.status(), 404);
    let exported = eventually("both lead times on /metrics", WAIT, || async {
        let text = w.metrics_text(&metrics_at).await;
        // Both successes' lead times, and every end counted (the two are
        // recorded by different consumers).
        let has = |name: &str, extra: &str, value: &str| {
            text.lines().any(|l| {
                l.starts_with(name)
                    && l.contains("environment=\"production\"")
                    && l.contains(extra)
                    && l.ends_with(value)
            })
        };
        let ready = has("ferry_lead_time_seconds_count", "", " 2")
            && has(
                "ferry_deployments_finished_total",
                "state=\"success\"",
                " 2",
            )
            && has(
                "ferry_deployments_finished_total",
                "state=\"failure\"",
                " 1",
            )
            && has("ferry_recovery_seconds_count", "", " 1");
        ready.then_some(text)
    })
    .await;
    let families: BTreeSet<String> = exported
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .flat_map(metric_names)
        .collect();

    let checked = std::process::Command::new(binary("promtool"))
        .args(["check", "rules"])
        .arg(&rules)
        .output()
        .unwrap();
    assert!(checked.status.success(), "{checked:?}");
    let rules_text = std::fs::read_to_string(&rules).unwrap();

    // Every metric named is one ferry exports.
    for (title, expr) in panel_queries() {
        for name in metric_names(&expr) {
            assert!(
                families.contains(&name),
                "panel {title:?} queries {name}, which ferry does not export: {families:?}"
            );
        }
    }
    for name in metric_names(&rules_text) {
        assert!(
            families.contains(&name),
            "a rule uses {name}, which ferry does not export"
        );
    }

    // Prometheus saw the ends happen, and a few scrapes since: a rate over
    // a minute has two samples.
    eventually("the lead times scraped", WAIT, || async {
        let a = prometheus
            .query("ferry_lead_time_seconds_count{environment=\"production\"} == 2")
            .await;
        (!a["data"]["result"].as_array()?.is_empty()).then_some(())
    })
    .await;
    let since = jiff::Timestamp::now().as_second() + 3;
    eventually("three scrapes since", WAIT, || async {
        let a = prometheus
            .query(&format!("timestamp(up{{job=\"ferry\"}}) > {since}"))
            .await;
        (!a["data"]["result"].as_array()?.is_empty()).then_some(())
    })
    .await;
    let mut values = std::collections::HashMap::new();
    for (title, expr) in panel_queries() {
        let answer = prometheus.query(&expr).await;
        assert_eq!(
            answer["status"], "success",
            "panel {title:?}: {expr}: {answer}"
        );
        let result = answer["data"]["result"].as_array().unwrap();
        assert!(!result.is_empty(), "panel {title:?} has no data: {expr}");
        values.insert(title, result[0]["value"][1].as_str().unwrap().to_string());
    }
    // DORA's four, as Prometheus computes them from what it scraped: two
    // successes and a failure in the last 10 minutes, a recovery, lead
    // times of about three hours.
    let value = |title: &str| values[title].parse::<f64>().unwrap();
    assert!(
        value("Deployment frequency") >= 2.0 * 144.0 - 1e-6,
        "{values:?}"
    );
    assert!(
        (value("Change failure rate") - 1.0 / 3.0).abs() < 1e-6,
        "{values:?}"
    );
    let lead = value("Change lead time (median)");
    assert!((3600.0..=4.0 * 3600.0).contains(&lead), "{values:?}");
    assert!(
        value("Failed deployment recovery time (median)").is_finite(),
        "{values:?}"
    );
    // Each rule evaluated, without error.
    let groups = eventually("every rule evaluated", WAIT, || async {
        let answer = prometheus.rules().await;
        let groups = answer["data"]["groups"].as_array()?.clone();
        let rules: Vec<&Value> = groups
            .iter()
            .flat_map(|g| g["rules"].as_array().into_iter().flatten())
            .collect();
        let evaluated = rules.len() == 5
            && rules.iter().all(|r| {
                r["lastEvaluation"]
                    .as_str()
                    .is_some_and(|t| !t.starts_with("0001"))
            });
        evaluated.then_some(groups)
    })
    .await;
    for g in &groups {
        for r in g["rules"].as_array().unwrap() {
            assert_eq!(r["health"], "ok", "{r}");
            assert!(r["lastError"].as_str().unwrap_or("").is_empty(), "{r}");
        }
    }
    // Healthy ferry, nothing waiting: nothing fires.
    let firing: Vec<&Value> = groups
        .iter()
        .flat_map(|g| g["rules"].as_array().into_iter().flatten())
        .filter(|r| r["state"] == "firing")
        .collect();
    assert!(firing.is_empty(), "{firing:?}");

    // The picture in docs/operations.md (scripts/dashboard-picture).
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(contrib("grafana/ferry.json")).unwrap())
            .unwrap();
    let page = crate::dashboard_picture::render(&prometheus, &dashboard).await;
    assert!(page.contains("Change failure rate"), "{page}");
    let png = crate::dashboard_picture::shoot(&page).await;
    assert!(png.starts_with(b"\x89PNG"));
    let path = std::env::var_os("FERRY_DASHBOARD_PNG")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png"));
    std::fs::write(&path, &png).unwrap();
    eprintln!("the dashboard's panels: {}", path.display());
}
