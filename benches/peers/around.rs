//! The loop around a deployment, its latencies (issue 43): an unlock to
//! the approval of a GitHub Actions run waiting at ferry's protection
//! rule, and a final status to its notification at a sink, each against
//! what it follows in the same run (the `ferry unlock` command's own time;
//! the same status reaching GitHub through the outbox, the other consumer
//! of the same event).

use super::*;
use common::github::comments::Pull;
use common::receiver::Receiver;
use common::{AppSetup, eventually, fixture};
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
        let rule = common::github::protection::rule_event(&w.github.url, REPO, run, "production");
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

/// Polls `check` every millisecond: when it first held.
async fn seen(mut check: impl FnMut() -> bool) -> Instant {
    let deadline = Instant::now() + WAIT;
    while !check() {
        assert!(Instant::now() < deadline, "never seen");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Instant::now()
}

/// A `.deploy` comment on a pull request to the `eyes` reaction, and to
/// GitHub asked to create the deployment (the fake answers the role and
/// pull request reads at once).
async fn comment_to_reaction_and_create() -> (Vec<Duration>, Vec<Duration>) {
    let setup = Setup {
        env: production_log(),
        ..Setup::default()
    };
    let w = World::build(setup, |sshd, _| {
        let mut t = target(REPO, "staging", &sshd.hosts(), &[("run", "true")], "");
        t.push_str("\n[commands]\ndefault_environment = \"staging\"\n");
        t
    })
    .await;
    w.github.set_role("alice", "write");
    w.github.set_pull(
        42,
        Pull {
            state: "open".into(),
            head_sha: "dddddddddddddddddddddddddddddddddddddd42".into(),
            head_repository: REPO.into(),
        },
    );
    let (mut eyes, mut created) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let id = 900 + round;
        let mut v = fixture("issue_comment/created.payload.json");
        v["issue"]["number"] = 42.into();
        v["issue"]["pull_request"] =
            json!({"url": format!("https://api.github.com/repos/{REPO}/pulls/42")});
        v["comment"]["id"] = id.into();
        v["comment"]["body"] = ".deploy".into();
        v["comment"]["user"]["login"] = "alice".into();
        v["repository"]["full_name"] = REPO.into();
        let before = w.github.creates().len();
        let sent = Instant::now();
        assert_eq!(w.deliver("issue_comment", &v).await.0, 202);
        let reacted = seen(|| w.github.reactions().iter().any(|(c, _)| *c == id)).await;
        let create = eventually("the creation", WAIT, || async {
            w.github.creates().get(before).map(|c| (c.at, c.id))
        })
        .await;
        eyes.push(reacted - sent);
        created.push(create.0.saturating_duration_since(sent));
        if let Some(deployment) = create.1 {
            w.github.wait_final(deployment, WAIT).await;
        }
    }
    (eyes, created)
}

/// A passing `check_run` for a waiting auto-deploy candidate to GitHub
/// asked to create its deployment; and the floor: the same checks read
/// and create done by a client of its own against the same fake.
async fn check_to_create() -> (Vec<Duration>, Vec<Duration>) {
    let setup = Setup {
        env: production_log(),
        ..Setup::default()
    };
    let w = World::build(setup, |sshd, _| {
        target(
            REPO,
            "staging",
            &sshd.hosts(),
            &[("run", "true")],
            "require_checks = [\"test\"]\n[target.auto_deploy]\nbranch = \"main\"\n",
        )
    })
    .await;
    let (mut ferry, mut floor) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let sha = format!("{:040x}", 0xa0_0000 + round);
        w.github
            .set_check_run(REPO, &sha, "test", "in_progress", None);
        let mut push = fixture("push/with-new-branch.payload.json");
        push["ref"] = "refs/heads/main".into();
        push["after"] = sha.clone().into();
        push["repository"]["full_name"] = REPO.into();
        push.as_object_mut().unwrap().remove("installation");
        let reads = w.github.check_reads();
        assert_eq!(w.deliver("push", &push).await.0, 202);
        // The candidate's first look found the check pending.
        seen(|| w.github.check_reads() > reads).await;
        let before = w.github.creates().len();
        w.github
            .set_check_run(REPO, &sha, "test", "completed", Some("success"));
        let event = json!({
            "action": "completed",
            "check_run": {"id": 4, "name": "test", "head_sha": sha, "status": "completed", "conclusion": "success"},
            "repository": {"full_name": REPO},
        });
        let sent = Instant::now();
        assert_eq!(w.deliver("check_run", &event).await.0, 200);
        let create = eventually("the creation", WAIT, || async {
            w.github.creates().get(before).map(|c| (c.at, c.id))
        })
        .await;
        ferry.push(create.0.saturating_duration_since(sent));
        if let Some(id) = create.1 {
            w.github.wait_final(id, WAIT).await;
        }
        floor.push(script(&w, &sha).await);
    }
    (ferry, floor)
}

/// What a script would do on the same signal: read the sha's check runs
/// and combined status, then ask for the deployment (of an environment no
/// target owns, so that nothing runs).
async fn script(w: &World, sha: &str) -> Duration {
    let get = |path: String| {
        w.http
            .get(format!("{}/repos/{REPO}/{path}", w.github.url))
            .bearer_auth(common::github::TOKEN)
            .header("Accept", "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28")
            .header("User-Agent", "bench")
    };
    let start = Instant::now();
    let runs = get(format!("commits/{sha}/check-runs?per_page=100"));
    let status = get(format!("commits/{sha}/status?per_page=100"));
    let (a, b) = tokio::join!(runs.send(), status.send());
    let _ = (a.unwrap().bytes().await, b.unwrap().bytes().await);
    let created = w
        .http
        .post(format!("{}/repos/{REPO}/deployments", w.github.url))
        .bearer_auth(common::github::TOKEN)
        .header("Accept", "application/vnd.github+json")
        .header("X-GitHub-Api-Version", "2022-11-28")
        .header("User-Agent", "bench")
        .json(
            &json!({"ref": sha, "environment": "bench-floor", "auto_merge": false,
            "required_contexts": [], "payload": {}, "task": "deploy",
            "description": "floor"}),
        )
        .send()
        .await
        .unwrap();
    let _ = created.bytes().await;
    start.elapsed()
}

pub(crate) async fn around(report: &mut Vec<[String; 5]>) {
    let (ferry, floor) = check_to_create().await;
    let (f, fl) = (median(ferry.clone()), median(floor.clone()));
    report.push([
        format!("Passing `check_run` -> auto-deploy asked of GitHub ({ROUNDS} shas)"),
        format!("{} (worst {})", ms(f), ms(*ferry.iter().max().unwrap())),
        format!(
            "script: the same reads and create {} (best {})",
            ms(fl),
            ms(*floor.iter().min().unwrap())
        ),
        format!("+{}", ms(f.saturating_sub(fl))),
        "<= 50 ms beyond the reads".into(),
    ]);
    let (eyes, created) = comment_to_reaction_and_create().await;
    report.push([
        format!("`.deploy` comment -> `eyes` reaction ({ROUNDS} comments)"),
        format!(
            "{} (worst {})",
            ms(median(eyes.clone())),
            ms(*eyes.iter().max().unwrap())
        ),
        "local fake GitHub answering at once".into(),
        String::new(),
        "<= 300 ms".into(),
    ]);
    report.push([
        format!("`.deploy` comment -> GitHub asked to create the deployment ({ROUNDS} comments)"),
        format!(
            "{} (worst {})",
            ms(median(created.clone())),
            ms(*created.iter().max().unwrap())
        ),
        "the role and pull request reads included".into(),
        String::new(),
        "<= 500 ms".into(),
    ]);
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
