//! Notifications (issue: notifications): a signed webhook and a Slack
//! channel hear what happens, in order, stored before they are sent, and a
//! sink that is slow or down holds up nothing else. Against the real
//! binary, a real receiver that verifies signatures, and a fake Slack
//! checked against Slack's description of its methods; on both stores.

use std::time::Duration;

use ferry_testkit as common;
use ferry_testkit::backends;
use ferry_testkit::receiver::Receiver;
use ferry_testkit::slack::{FakeSlack, Fault};
use serde_json::Value;

use common::{Setup, World, eventually, target};

const REPO: &str = "octo-org/web";
const WAIT: Duration = Duration::from_secs(60);
const SECRET: &str = "notify-secret";
const SHA: &str = "f95f852bd8fca8fcc58a9a2d6c842781e32a215e";

backends!(
    a_deployment_is_one_slack_message_and_signed_webhooks_in_order,
    a_failed_try_is_sent_again_with_the_same_delivery_and_body,
    a_sink_that_hangs_holds_up_no_deployment_and_no_other_sink,
    slack_errors_are_retried_or_given_up_naming_the_fix,
    notifications_pending_at_kill_9_are_sent_after_the_restart,
);

/// `[[notify]]` tables for `sinks`, each `(name, body)`; secret files and
/// the Slack token written to `scratch`.
fn sinks(scratch: &std::path::Path, sinks: &[(&str, String)]) -> String {
    std::fs::write(scratch.join("notify-secret"), format!("{SECRET}\n")).unwrap();
    std::fs::write(
        scratch.join("slack-token"),
        format!("{}\n", common::slack::TOKEN),
    )
    .unwrap();
    sinks
        .iter()
        .map(|(name, body)| {
            let body = body
                .replace(
                    "SECRET_FILE",
                    &format!("{:?}", scratch.join("notify-secret")),
                )
                .replace("TOKEN_FILE", &format!("{:?}", scratch.join("slack-token")));
            format!("\n[[notify]]\nname = {name:?}\n{body}\n")
        })
        .collect()
}

fn webhook(r: &Receiver, extra: &str) -> String {
    format!("url = {:?}\nsecret_file = SECRET_FILE\n{extra}", r.url)
}

fn slack(s: &FakeSlack, channel: &str) -> String {
    format!(
        "slack_token_file = TOKEN_FILE\nchannel = {channel:?}\nslack_api_url = {:?}",
        s.url
    )
}

async fn world(
    database_url: Option<String>,
    steps: &str,
    notify: impl FnOnce(&std::path::Path) -> String,
) -> World {
    let setup = Setup {
        database_url,
        ..Setup::default()
    };
    let steps = steps.to_string();
    World::build(setup, move |sshd, scratch| {
        let production = target(REPO, "production", &[sshd.host()], &[("run", &steps)], "");
        let staging = target(REPO, "staging", &[sshd.host()], &[("run", "true")], "");
        format!("{production}\n{staging}\n{}", notify(scratch))
    })
    .await
}

/// The `ferry show --json` of a deployment.
fn show(w: &World, id: i64) -> Value {
    let out = w.cli(&["show", &id.to_string(), "--json"]);
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The events a receiver got answered for, of one deployment, in order.
fn events_of(r: &Receiver, id: i64) -> Vec<String> {
    r.delivered()
        .iter()
        .filter(|x| x.json()["deployment"]["id"] == id)
        .map(|x| x.event.clone())
        .collect()
}

/// Waits until `r` holds a request it has not answered.
async fn a_try_in_flight(r: &Receiver) {
    eventually("a try is in flight", WAIT, || async {
        r.received().iter().any(|x| x.answered == 0).then_some(())
    })
    .await;
}

/// No notification was received twice (by its delivery id).
fn assert_each_once(received: &[common::receiver::Received]) {
    let mut ids: Vec<&str> = received.iter().map(|r| r.delivery.as_str()).collect();
    ids.sort();
    let n = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), n, "a notification sent twice: {received:?}");
}

async fn a_deployment_is_one_slack_message_and_signed_webhooks_in_order(
    database_url: Option<String>,
) {
    let hook = Receiver::start(Some(SECRET)).await;
    let staging_only = Receiver::start(Some(SECRET)).await;
    let s = FakeSlack::start().await;
    let (h, so, sl) = (hook.clone(), staging_only.clone(), s.clone());
    let w = world(database_url, "true", move |scratch| {
        sinks(
            scratch,
            &[
                ("ops-hook", webhook(&h, "")),
                ("ops-slack", slack(&sl, "C0123456789")),
                (
                    "staging-only",
                    webhook(&so, "environments = [\"staging\"]\nevents = [\"success\"]"),
                ),
            ],
        )
    })
    .await;
    let check = w.cli(&["check-config"]);
    let said = String::from_utf8_lossy(&check.stdout);
    assert!(
        said.contains("notify ops-slack (Slack channel C0123456789): in_progress, success, failure, error, locked, unlocked"),
        "{said}"
    );
    w.deploy(41, REPO, "production").await;
    assert_eq!(w.final_states(41, WAIT).await.last().unwrap(), "success");
    let got = eventually(
        "the webhook hears in_progress and success",
        WAIT,
        || async { (events_of(&hook, 41).len() >= 2).then(|| hook.delivered()) },
    )
    .await;
    // The default events: not queued. In order, each signed, each its own id.
    assert_eq!(events_of(&hook, 41), ["in_progress", "success"]);
    for r in &got {
        assert_eq!(r.signed, Some(true), "{r:?}");
        assert_eq!(r.content_type, "application/json");
        assert!(r.user_agent.starts_with("ferry/"), "{r:?}");
        assert_eq!(r.json()["delivery"], r.delivery.as_str());
        assert_eq!(r.json()["event"], r.event.as_str());
    }
    assert_ne!(got[0].delivery, got[1].delivery);
    let body = got[1].json();
    assert_eq!(body["repository"], REPO);
    assert_eq!(body["environment"], "production");
    assert_eq!(body["actor"], Value::Null);
    let d = &body["deployment"];
    assert_eq!(d["id"], 41);
    assert_eq!(d["sha"], SHA);
    assert_eq!(d["ref"], "master");
    assert_eq!(d["task"], "deploy");
    assert_eq!(d["state"], "success");
    assert!(
        d["description"]
            .as_str()
            .unwrap()
            .starts_with("Deployed f95f852"),
        "{d}"
    );
    assert!(
        d["log_url"]
            .as_str()
            .unwrap()
            .contains("/deployments/41/log?token="),
        "{d}"
    );
    assert!(
        d["finished_at"].is_string() && d["started_at"].is_string(),
        "{d}"
    );
    assert!(got[0].json()["deployment"]["finished_at"].is_null());

    // Slack: one message, updated in place from "deploying" to "deployed".
    let message = eventually("Slack shows the deployment deployed", WAIT, || async {
        s.messages("C0123456789")
            .into_iter()
            .find(|m| m.text.contains("deployed"))
    })
    .await;
    assert_eq!(
        s.messages("C0123456789").len(),
        1,
        "{:?}",
        s.messages("C0123456789")
    );
    assert!(
        message.text.contains("octo-org/web production"),
        "{}",
        message.text
    );
    assert!(message.text.contains("f95f852"), "{}", message.text);
    assert!(
        message.text.contains("/deployments/41/log?token="),
        "{}",
        message.text
    );
    assert_eq!(message.history.len(), 1);
    assert!(
        message.history[0].contains("deploying"),
        "{:?}",
        message.history
    );
    assert!(message.blocks.is_some());

    // A lock and an unlock: environment events, who and why.
    let out = w.cli(&[
        "lock",
        &format!("{REPO}:production"),
        "--reason",
        "incident 7",
    ]);
    assert!(out.status.success(), "{out:?}");
    let out = w.cli(&["unlock", &format!("{REPO}:production")]);
    assert!(out.status.success(), "{out:?}");
    let locks = eventually(
        "the webhook hears the lock and the unlock",
        WAIT,
        || async {
            let l: Vec<_> = hook
                .delivered()
                .into_iter()
                .filter(|r| r.json()["deployment"].is_null())
                .collect();
            (l.len() >= 2).then_some(l)
        },
    )
    .await;
    assert_eq!(locks[0].event, "locked");
    assert_eq!(locks[1].event, "unlocked");
    let me = locks[0].json()["actor"].as_str().unwrap().to_string();
    assert!(!me.is_empty());
    assert_eq!(locks[0].json()["reason"], "incident 7");
    assert_eq!(locks[1].json()["actor"], me.as_str());
    let posted = eventually("Slack shows the lock and the unlock", WAIT, || async {
        let m = s.messages("C0123456789");
        (m.len() >= 3).then_some(m)
    })
    .await;
    assert!(
        posted[1]
            .text
            .starts_with(":lock: octo-org/web production locked by"),
        "{}",
        posted[1].text
    );
    assert!(
        posted[1].text.ends_with(": incident 7"),
        "{}",
        posted[1].text
    );
    assert!(posted[2].text.contains("unlocked"), "{}", posted[2].text);

    // The staging-only sink heard nothing of production: its fan-out was
    // in the same transactions as the others', which are done.
    w.deploy(42, REPO, "staging").await;
    assert_eq!(w.final_states(42, WAIT).await.last().unwrap(), "success");
    let staged = eventually("the staging sink hears staging's success", WAIT, || async {
        let d = staging_only.delivered();
        (!d.is_empty()).then_some(d)
    })
    .await;
    assert_eq!(staged.len(), 1, "{staged:?}");
    assert_eq!(staged[0].event, "success");
    assert_eq!(staged[0].json()["deployment"]["id"], 42);

    // show lists each notification and what became of it.
    let shown = show(&w, 41);
    let n = shown["notifications"].as_array().unwrap();
    assert_eq!(n.len(), 4, "{n:?}");
    assert!(n.iter().all(|n| n["state"] == "delivered"), "{n:?}");
    assert_eq!(n[0]["sink"], "ops-hook");
    assert_eq!(n[0]["event"], "in_progress");
    let text = String::from_utf8_lossy(&w.cli(&["show", "41"]).stdout).into_owned();
    assert!(text.contains("notifications:"), "{text}");
    assert!(text.contains("ops-slack"), "{text}");
    assert!(text.contains("delivered at"), "{text}");
    assert!(
        w.metric("ferry_notifications_total{sink=\"ops-hook\",result=\"delivered\"}")
            .await
            >= 4.0
    );
    s.assert_no_violations();
    w.assert_no_violations();
}

async fn a_failed_try_is_sent_again_with_the_same_delivery_and_body(database_url: Option<String>) {
    let hook = Receiver::start(Some(SECRET)).await;
    hook.answer_next(&[500]);
    let h = hook.clone();
    let w = world(database_url, "true", move |scratch| {
        sinks(
            scratch,
            &[("ops-hook", webhook(&h, "events = [\"success\"]"))],
        )
    })
    .await;
    w.deploy(51, REPO, "production").await;
    assert_eq!(w.final_states(51, WAIT).await.last().unwrap(), "success");
    let tries = eventually("the success is delivered after a 500", WAIT, || async {
        let r = hook.received();
        (r.len() >= 2).then_some(r)
    })
    .await;
    assert_eq!(tries.len(), 2, "{tries:?}");
    assert_eq!((tries[0].answered, tries[1].answered), (500, 200));
    assert_eq!(tries[0].delivery, tries[1].delivery);
    assert_eq!(tries[0].body, tries[1].body, "the same bytes on every try");
    assert_eq!(tries[1].signed, Some(true));
    let n = &show(&w, 51)["notifications"][0];
    assert_eq!(n["state"], "delivered", "{n}");
    assert_eq!(n["attempts"], 2, "{n}");
    assert_eq!(n["last_error"].as_str().unwrap(), "HTTP 500", "{n}");
    // A 4xx other than 408 and 429 gives up at once, with a warning.
    hook.answer_next(&[410]);
    w.deploy(52, REPO, "production").await;
    assert_eq!(w.final_states(52, WAIT).await.last().unwrap(), "success");
    let n = eventually("the 410 is given up", WAIT, || async {
        let n = show(&w, 52)["notifications"][0].clone();
        (n["state"] == "given_up").then_some(n)
    })
    .await;
    assert_eq!(n["last_error"], "HTTP 410", "{n}");
    assert_eq!(hook.received().len(), 3);
    assert!(
        w.ferry
            .output()
            .contains("gave up notifying ops-hook of success of deployment 52: HTTP 410"),
        "{}",
        w.ferry.output()
    );
    assert!(
        w.metric("ferry_notifications_total{sink=\"ops-hook\",result=\"retried\"}")
            .await
            >= 1.0
    );
}

async fn a_sink_that_hangs_holds_up_no_deployment_and_no_other_sink(database_url: Option<String>) {
    let hung = Receiver::start(None).await;
    hung.hang();
    let fine = Receiver::start(Some(SECRET)).await;
    let (h, f) = (hung.clone(), fine.clone());
    let w = world(database_url, "true", move |scratch| {
        sinks(
            scratch,
            &[
                ("hung", format!("url = {:?}", h.url)),
                ("fine", webhook(&f, "")),
            ],
        )
    })
    .await;
    for id in 61..=66 {
        w.deploy(id, REPO, "production").await;
        assert_eq!(w.final_states(id, WAIT).await.last().unwrap(), "success");
    }
    // Every deployment finished and GitHub has every status, while the
    // hung sink never answered; the other sink heard everything.
    eventually("the fine sink hears every success", WAIT, || async {
        (fine
            .delivered()
            .iter()
            .filter(|r| r.event == "success")
            .count()
            == 6)
            .then_some(())
    })
    .await;
    assert!(hung.received().iter().all(|r| r.answered == 0));
    assert!(!hung.received().is_empty(), "the hung sink was tried");
    let n = show(&w, 61)["notifications"].clone();
    let hung_ones: Vec<&Value> = n
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["sink"] == "hung")
        .collect();
    assert!(hung_ones.iter().all(|n| n["state"] != "delivered"), "{n}");
    // In order: the hung sink holds a deployment's later events behind
    // its first, never sends them past it.
    for r in hung.received() {
        let d = r.json()["deployment"]["id"].as_i64().unwrap();
        let first = hung
            .received()
            .into_iter()
            .find(|x| x.json()["deployment"]["id"] == d)
            .unwrap();
        assert_eq!(first.event, "in_progress", "{r:?}");
    }
    // Counted in the store every few seconds.
    eventually(
        "the gauge counts the hung sink's notifications",
        WAIT,
        || async {
            (w.metric("ferry_notifications_pending{sink=\"hung\"}").await >= 1.0).then_some(())
        },
    )
    .await;
}

async fn slack_errors_are_retried_or_given_up_naming_the_fix(database_url: Option<String>) {
    let s = FakeSlack::start().await;
    s.outside("C0OUTSIDE");
    s.fail_next(&[Fault::RateLimited { secs: 1 }]);
    let sl = s.clone();
    let w = world(database_url, "true", move |scratch| {
        sinks(
            scratch,
            &[
                (
                    "ops-slack",
                    format!("{}\nevents = [\"success\"]", slack(&sl, "C1")),
                ),
                (
                    "outside",
                    format!("{}\nevents = [\"success\"]", slack(&sl, "C0OUTSIDE")),
                ),
            ],
        )
    })
    .await;
    w.deploy(71, REPO, "production").await;
    assert_eq!(w.final_states(71, WAIT).await.last().unwrap(), "success");
    let shown = eventually("both sinks settle", WAIT, || async {
        let n = show(&w, 71)["notifications"].clone();
        n.as_array()
            .unwrap()
            .iter()
            .all(|n| n["state"] == "delivered" || n["state"] == "given_up")
            .then_some(n)
    })
    .await;
    let of = |sink: &str| {
        shown
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["sink"] == sink)
            .unwrap()
            .clone()
    };
    let outside = of("outside");
    assert_eq!(outside["state"], "given_up", "{shown}");
    assert!(
        outside["last_error"]
            .as_str()
            .unwrap()
            .contains("Slack answered not_in_channel: invite the app to the channel"),
        "{outside}"
    );
    // The rate limit was waited out; whichever sink met it got there.
    assert_eq!(of("ops-slack")["state"], "delivered", "{shown}");
    assert_eq!(s.messages("C1").len(), 1);
    let log = w.ferry.output();
    let line = log
        .lines()
        .find(|l| l.contains("gave up notifying outside"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(line.contains("ERROR"), "{line}");
    s.assert_no_violations();
}

async fn notifications_pending_at_kill_9_are_sent_after_the_restart(database_url: Option<String>) {
    let hook = Receiver::start(Some(SECRET)).await;
    // Refused at first, then never answered: some wait for a retry, some
    // are in flight when ferry is killed.
    hook.answer_next(&[503]);
    let h = hook.clone();
    let mut w = world(database_url, "true", move |scratch| {
        sinks(scratch, &[("ops-hook", webhook(&h, ""))])
    })
    .await;
    w.deploy(81, REPO, "production").await;
    assert_eq!(w.final_states(81, WAIT).await.last().unwrap(), "success");
    eventually("the first try is refused", WAIT, || async {
        (!hook.received().is_empty()).then_some(())
    })
    .await;
    hook.hang();
    w.deploy(82, REPO, "production").await;
    assert_eq!(w.final_states(82, WAIT).await.last().unwrap(), "success");
    a_try_in_flight(&hook).await;
    w.restart().await;
    hook.recover();
    let delivered = eventually(
        "every event is delivered after the restart",
        WAIT,
        || async {
            let ok = [81, 82]
                .iter()
                .all(|&id| events_of(&hook, id) == ["in_progress", "success"]);
            ok.then(|| hook.delivered())
        },
    )
    .await;
    assert_each_once(&delivered);
}

/// Two replicas on one PostgreSQL: each notification is sent by one of
/// them while both run, and none is lost when one is killed while a send
/// may be in flight.
#[tokio::test(flavor = "multi_thread")]
async fn replicas_send_each_notification_once_and_lose_none_to_a_kill() {
    let hook = Receiver::start(Some(SECRET)).await;
    let h = hook.clone();
    let url = common::postgres::cluster().database();
    let w = world(Some(url), "true", move |scratch| {
        sinks(
            scratch,
            &[("ops-hook", webhook(&h, "environments = [\"staging\"]"))],
        )
    })
    .await;
    let mut b = w.replica(2).await;
    let ids: Vec<i64> = (91..=96).collect();
    for (i, &id) in ids.iter().enumerate() {
        let to = if i % 2 == 0 { &w.ferry } else { &b };
        let event = common::deployment_event(id, REPO, "staging");
        let code = common::deliver_to(&w.http, &to.url, &event, &format!("d-{id}")).await;
        assert_eq!(code, 202);
        assert_eq!(w.final_states(id, WAIT).await.last().unwrap(), "success");
    }
    let delivered = eventually("every event is delivered", WAIT, || async {
        ids.iter()
            .all(|&id| events_of(&hook, id) == ["in_progress", "success"])
            .then(|| hook.received())
    })
    .await;
    assert_each_once(&delivered);

    // A send in flight, then one replica is killed.
    hook.hang();
    w.deploy(97, REPO, "staging").await;
    assert_eq!(w.final_states(97, WAIT).await.last().unwrap(), "success");
    a_try_in_flight(&hook).await;
    b.kill9();
    hook.recover();
    eventually("the survivor delivers it", WAIT, || async {
        (events_of(&hook, 97) == ["in_progress", "success"]).then_some(())
    })
    .await;
}
