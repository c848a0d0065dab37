//! The loop around a deployment, its latencies (issue 43): an unlock to
//! the approval of a GitHub Actions run waiting at ferry's protection
//! rule, and a final status to its notification at a sink, each against
//! what it follows in the same run (the `ferry unlock` command's own time;
//! the same status reaching GitHub through the outbox, the other consumer
//! of the same event).

use super::*;
use common::receiver::Receiver;
use common::{AppSetup, eventually};
use serde_json::json;

const ROUNDS: i64 = 15;
const WAIT: Duration = Duration::from_secs(60);

fn signed_ms(d: f64) -> String {
    format!("{d:.1} ms")
}

fn median_f(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// `ferry unlock` of an environment a run waits on, to GitHub taking the
/// run's approval: (after the command returned, the command's own time).
async fn unlock_to_approval() -> (Vec<Duration>, Vec<Duration>) {
    let setup = Setup {
        app: Some(AppSetup {
            id: 77,
            installations: vec![(REPO.into(), 11)],
            token_ttl: Duration::from_secs(3600),
        }),
        env: production_log(),
        ..Setup::default()
    };
    let w = World::build(setup, |sshd, _| {
        let mut t = target(REPO, "production", &sshd.hosts(), &[("run", "true")], "");
        t.push_str("\n[protection]\n");
        t
    })
    .await;
    let env = format!("{REPO}:production");
    let (mut after, mut command) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let run = 700 + round;
        assert!(w.cli(&["lock", &env]).status.success());
        let rule = json!({
            "action": "requested",
            "environment": "production",
            "event": "push",
            "deployment_callback_url": format!(
                "{}/repos/{REPO}/actions/runs/{run}/deployment_protection_rule",
                w.github.url
            ),
            "repository": {"full_name": REPO, "name": "web", "id": 1},
            "sender": {"login": "octocat", "id": 1},
            "installation": {"id": 11},
        });
        assert_eq!(w.deliver("deployment_protection_rule", &rule).await.0, 202);
        eventually("the run told why it waits", WAIT, || async {
            w.github
                .rule_answers()
                .iter()
                .any(|a| a.run_id == run)
                .then_some(())
        })
        .await;
        let started = Instant::now();
        assert!(w.cli(&["unlock", &env]).status.success());
        let returned = Instant::now();
        let approved = eventually("the approval", WAIT, || async {
            w.github
                .rule_answers()
                .into_iter()
                .find(|a| a.run_id == run && a.state.as_deref() == Some("approved"))
                .map(|a| a.at)
        })
        .await;
        after.push(approved.saturating_duration_since(returned));
        command.push(returned - started);
    }
    (after, command)
}

/// A deployment's final status reaching a notification sink, against the
/// same status reaching GitHub: (sink - GitHub) per deployment, in ms.
async fn status_to_notification() -> Vec<f64> {
    let hook = Receiver::start(None).await;
    let setup = Setup {
        env: production_log(),
        ..Setup::default()
    };
    let w = World::build(setup, |sshd, _| {
        let mut t = target(REPO, "production", &sshd.hosts(), &[("run", "true")], "");
        t.push_str(&format!(
            "\n[[notify]]\nname = \"ops\"\nurl = {:?}\n",
            hook.url
        ));
        t
    })
    .await;
    let mut gaps = Vec::new();
    for round in 0..ROUNDS {
        let id = 800 + round;
        w.deploy(id, REPO, "production").await;
        let posted = w.github.wait_final(id, WAIT).await;
        let on_github = posted.last().unwrap().at;
        let notified = eventually("the notification", WAIT, || async {
            hook.received()
                .into_iter()
                .find(|r| r.json()["deployment"]["id"] == id && r.event == "success")
                .map(|r| r.at)
        })
        .await;
        let gap = if notified >= on_github {
            (notified - on_github).as_secs_f64() * 1000.0
        } else {
            -(on_github - notified).as_secs_f64() * 1000.0
        };
        gaps.push(gap);
    }
    gaps
}

pub(crate) async fn around(report: &mut Vec<[String; 5]>) {
    let (after, command) = unlock_to_approval().await;
    let worst = *after.iter().max().unwrap();
    report.push([
        format!("Unlock -> waiting Actions run approved, after `ferry unlock` returned ({ROUNDS} rounds)"),
        format!("{} (worst {})", ms(median(after)), ms(worst)),
        format!("the command itself {}", ms(median(command))),
        String::new(),
        "<= 100 ms".into(),
    ]);
    let gaps = status_to_notification().await;
    let worst = gaps.iter().copied().fold(f64::MIN, f64::max);
    report.push([
        format!("Final status -> its notification at a sink, minus the same status at GitHub ({ROUNDS} deployments)"),
        format!("{} (worst {})", signed_ms(median_f(gaps)), signed_ms(worst)),
        "the GitHub outbox, same event".into(),
        String::new(),
        "<= 50 ms".into(),
    ]);
}
