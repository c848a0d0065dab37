//! Delivery metrics end to end, on both stores: a scripted history
//! (successes, a failure a success recovered from, a cancel, a rollback,
//! a review app) gives `ferry stats` and `/metrics` their figures; each
//! commit time is read once, and again after GitHub comes back.

use std::time::Duration;

use ferry_testkit as common;
use ferry_testkit::backends;
use serde_json::Value;

use common::github::Fault;
use common::{Setup, World, deployment_event, eventually, target};

const REPO: &str = "octo-org/web";
const ENV: &str = "octo-org/web:production";
const WAIT: Duration = Duration::from_secs(60);
const GOOD: &str = "f95f852bd8fca8fcc58a9a2d6c842781e32a215e";
const BAD: &str = "badbadbadbadbadbadbadbadbadbadbadbadbad0";
const NEW: &str = "0123456789abcdef0123456789abcdef01234567";

backends!(a_scripted_history_gives_stats_and_metrics,);

async fn world(database_url: Option<String>) -> World {
    let setup = Setup {
        database_url,
        ..Setup::default()
    };
    World::build(setup, |sshd, _| {
        let step = [("deploy", &*format!("[ \"$FERRY_SHA\" != {BAD} ]"))];
        let mut t = target(REPO, "production", &sshd.hosts(), &step, "");
        t.push_str(&target(REPO, "review-*", &sshd.hosts(), &step, ""));
        t
    })
    .await
}

async fn deliver(w: &World, id: i64, env: &str, sha: &str) -> String {
    let mut event = deployment_event(id, REPO, env);
    event["deployment"]["sha"] = sha.into();
    let (code, body) = w.deliver("deployment", &event).await;
    assert_eq!(code, 202, "{body}");
    let got = w.github.wait_final(id, WAIT).await;
    got.last().unwrap().state().to_string()
}

/// A series of `/metrics` by its name and labels, in any order, summed
/// over the replicas; 0 while it does not exist.
async fn series(w: &World, urls: &[String], name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut sum = 0.0;
    for url in urls {
        sum += series_of(w, url, name, labels).await;
    }
    sum
}

async fn series_of(w: &World, base: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let text = w.metrics_text(base).await;
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .find(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

fn stats(w: &World, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["stats", "--json"];
    all.extend_from_slice(args);
    let out = w.cli(&all);
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// When deployment `id` ended, in seconds since the epoch, as
/// `ferry show --json` says (to the second).
fn ended_at(w: &World, id: i64) -> f64 {
    let out = w.cli(&["show", &id.to_string(), "--json"]);
    let show: Value = serde_json::from_slice(&out.stdout).unwrap();
    let at: jiff::Timestamp = show["finished_at"].as_str().unwrap().parse().unwrap();
    at.as_millisecond() as f64 / 1000.0
}

async fn a_scripted_history_gives_stats_and_metrics(database_url: Option<String>) {
    let replicated = database_url.is_some();
    let w = world(database_url).await;
    // With replicas, each end is counted once, by one of them: the sums
    // below are over both.
    let replica = if replicated {
        Some(w.replica(1).await)
    } else {
        None
    };
    let mut urls = vec![w.ferry.url.clone()];
    urls.extend(replica.iter().map(|r| r.url.clone()));
    let urls = &urls;
    let prod = [("repository", REPO), ("environment", "production")];
    let committed = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(2);
    w.github.set_commit(REPO, GOOD, &committed.to_string());
    w.github.set_commit(REPO, NEW, &committed.to_string());
    // GitHub cannot answer the first read: it is tried again.
    w.github.fail_commits(Some(Fault::new(502)));
    assert_eq!(deliver(&w, 71, "production", GOOD).await, "success");
    eventually("a commit read", WAIT, || async {
        (!w.github.commit_reads().is_empty()).then_some(())
    })
    .await;
    w.github.fail_commits(None);
    let lead = "ferry_lead_time_seconds_count";
    eventually("71's lead time", WAIT, || async {
        (series(&w, urls, lead, &prod).await == 1.0).then_some(())
    })
    .await;
    assert_eq!(deliver(&w, 72, "production", BAD).await, "failure");
    assert_eq!(deliver(&w, 73, "production", NEW).await, "success");
    // A cancel is neither a deployment nor a failure.
    assert!(w.cli(&["lock", ENV]).status.success());
    let (code, _) = w
        .deliver("deployment", &deployment_event(74, REPO, "production"))
        .await;
    assert_eq!(code, 202);
    assert!(w.cli(&["cancel", "74"]).status.success());
    assert!(w.cli(&["unlock", ENV]).status.success());
    let rollback = w.cli(&["rollback", ENV, "--to", "71"]);
    assert!(rollback.status.success(), "{rollback:?}");
    let id: i64 = String::from_utf8_lossy(&rollback.stdout)
        .lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .unwrap();
    let states = w.final_states(id, WAIT).await;
    assert_eq!(states.last().unwrap(), "success", "{states:?}");
    assert_eq!(deliver(&w, 76, "review-7", GOOD).await, "success");
    eventually("every lead time", WAIT, || async {
        (series(&w, urls, lead, &prod).await == 3.0).then_some(())
    })
    .await;

    // Each commit read once: GOOD's first read failed and was tried
    // again; 72's sha, unknown to GitHub, once; the rollback and the
    // review app shipped GOOD again and were not asked for.
    let reads = w.github.commit_reads();
    let of = |sha: &str| reads.iter().filter(|(_, s)| s == sha).count();
    assert_eq!((of(GOOD), of(BAD), of(NEW)), (2, 1, 1), "{reads:?}");

    let all = stats(&w, &[]);
    assert_eq!(all.len(), 2, "production and the review apps: {all:?}");
    let p = stats(&w, &["--environment", ENV]);
    assert_eq!(p.len(), 1, "{p:?}");
    let p = &p[0];
    assert_eq!(p["repository"], REPO);
    assert_eq!(p["environment"], "production");
    assert_eq!(p["deployments"], 4, "{p}");
    assert_eq!(p["successes"], 3, "{p}");
    assert_eq!(p["failures"], 1, "{p}");
    assert_eq!(p["rollbacks"], 1, "{p}");
    assert_eq!(p["change_failure_rate"], 0.25, "{p}");
    assert!(
        (p["per_day"].as_f64().unwrap() - 3.0 / 30.0).abs() < 1e-9,
        "{p}"
    );
    let recovery = ended_at(&w, 73) - ended_at(&w, 72);
    let got = p["recovery_median_s"].as_f64().unwrap();
    assert!((got - recovery).abs() <= 1.0, "{got} vs {recovery}");
    // One commit time for all three: the median is the middle one's (73).
    let lead_73 = ended_at(&w, 73) - committed.as_millisecond() as f64 / 1000.0;
    let got = p["lead_time_median_s"].as_f64().unwrap();
    assert!((got - lead_73).abs() <= 1.0, "{got} vs {lead_73}");
    let review = all.iter().find(|s| s["environment"] == "review-7").unwrap();
    assert_eq!(review["deployments"], 1);
    assert!(review["recovery_median_s"].is_null(), "{review}");
    assert!(stats(&w, &["--since", "1s"]).len() <= 2);

    // `show` says the commit's time, and a success's lead time.
    let shown: Value = serde_json::from_slice(&w.cli(&["show", "71", "--json"]).stdout).unwrap();
    assert!(shown["committed_at"].is_string(), "{shown}");
    let text = String::from_utf8_lossy(&w.cli(&["show", "71"]).stdout).to_string();
    assert!(text.contains("  commit    committed "), "{text}");
    assert!(text.contains("(lead time 2h"), "{text}");
    let unknown: Value = serde_json::from_slice(&w.cli(&["show", "72", "--json"]).stdout).unwrap();
    assert!(
        unknown["committed_at"].is_null(),
        "GitHub has no such commit: {unknown}"
    );

    let table = String::from_utf8_lossy(&w.cli(&["stats"]).stdout).to_string();
    assert!(table.contains("25%"), "{table}");
    assert!(table.contains("review-7"), "{table}");

    let finished = "ferry_deployments_finished_total";
    let count = |state: &'static str, env: &'static str| {
        let w = &w;
        async move {
            series(
                w,
                urls,
                finished,
                &[("repository", REPO), ("environment", env), ("state", state)],
            )
            .await
        }
    };
    // The ends are counted in the order they happened: the review app's,
    // the last, counted means every one before it is too.
    eventually("the ends counted", WAIT, || async {
        (count("success", "review-*").await == 1.0).then_some(())
    })
    .await;
    assert_eq!(count("success", "production").await, 3.0);
    assert_eq!(count("failure", "production").await, 1.0);
    assert_eq!(count("cancelled", "production").await, 1.0);
    assert_eq!(count("error", "production").await, 0.0);
    // Review apps are one series, under their target's glob (above).
    assert_eq!(
        series(&w, urls, "ferry_recovery_seconds_count", &prod).await,
        1.0
    );
    assert_eq!(
        series(&w, urls, "ferry_deployment_duration_seconds_count", &prod).await,
        4.0
    );
    w.assert_no_violations();
    drop(replica);
}
