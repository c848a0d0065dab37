//! Freeze windows (docs/configuration.md, "Freeze windows"): during a `[[freeze]]` window the
//! environments it matches act as locked by "freeze NAME", until the window
//! ends or an operator lifts it for one environment. On both stores.

use std::process::{Command, Output};
use std::time::Duration;

use ferry_testkit as common;
use ferry_testkit::backends;

use common::{Setup, World, target};
use jiff::{Timestamp, ToSpan, tz::TimeZone};

const REPO: &str = "octo-org/web";
const ENV: &str = "octo-org/web:production";
const WAIT: Duration = Duration::from_secs(60);
/// Not UTC, and far from it: the window is computed in its own zone.
const ZONE: &str = "Asia/Tokyo";

backends!(
    a_freeze_in_force_holds_until_an_operator_lifts_it,
    a_deploy_unlock_from_github_lifts_the_freeze,
    a_freeze_in_the_past_holds_nothing,
);

/// `DAY HH:MM` in `ZONE`, `minutes` from now.
fn local(minutes: i64) -> String {
    let t = Timestamp::now() + minutes.minutes();
    t.to_zoned(TimeZone::get(ZONE).unwrap())
        .strftime("%a %H:%M")
        .to_string()
}

async fn world(database_url: Option<String>, freeze: &str) -> World {
    let setup = Setup {
        database_url,
        ..Setup::default()
    };
    let freeze = freeze.to_string();
    World::build(setup, move |sshd, scratch| {
        let steps = target(
            REPO,
            "production",
            &[sshd.host()],
            &[(
                "mark",
                &format!("echo \"$FERRY_DEPLOYMENT_ID\" >> {}/ran", scratch.display()),
            )],
            "",
        );
        format!("{steps}\n{freeze}")
    })
    .await
}

fn ferry_as(who: &str, w: &World, args: &[&str]) -> Output {
    Command::new(common::ferry_binary())
        .args(args)
        .arg("--config")
        .arg(&w.ferry.config)
        .env("SUDO_USER", who)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A freeze whose window runs from an hour ago to two hours from now, and
/// its end as `DAY HH:MM` (read once: a minute may turn meanwhile).
fn in_force() -> (String, String) {
    let until = local(120);
    let freeze = format!(
        "[[freeze]]\nname = \"weekend\"\nrepositories = [\"octo-org/*\"]\nenvironments = [\"prod*\"]\n\
         weekly = [\"{} - {until}\"]\ntimezone = \"{ZONE}\"\n",
        local(-60),
    );
    (freeze, until)
}

async fn a_freeze_in_force_holds_until_an_operator_lifts_it(database_url: Option<String>) {
    let (freeze, until) = in_force();
    let w = world(database_url, &freeze).await;
    w.deploy(91, REPO, "production").await;
    w.github.wait_state(91, "queued", WAIT).await;
    let queued = w.github.statuses_of(91);
    let description = queued[0].description();
    assert!(
        description.starts_with("Waiting: production is frozen until ")
            && description.contains(&until)
            && description.ends_with("JST (weekend)"),
        "{description}"
    );
    // Held, as a lock holds: nothing runs.
    w.settled().await;
    assert_eq!(w.states(91), ["queued"]);
    let locks = stdout(&ferry_as("alice", &w, &["locks"]));
    assert!(
        locks.contains(ENV) && locks.contains("freeze weekend") && locks.contains("frozen until"),
        "{locks}"
    );
    // The operator lets this environment through; the window still stands.
    let lifted = ferry_as("alice", &w, &["unlock", ENV]);
    assert!(lifted.status.success(), "{lifted:?}");
    assert!(
        stdout(&lifted).contains("lifted freeze weekend for octo-org/web:production"),
        "{lifted:?}"
    );
    let states = w.final_states(91, WAIT).await;
    assert_eq!(states, ["queued", "in_progress", "success"]);
    // Lifted until the window ends: the next deployment goes too, and
    // there is nothing left to unlock.
    w.deploy(92, REPO, "production").await;
    assert_eq!(w.final_states(92, WAIT).await.last().unwrap(), "success");
    assert!(!stdout(&ferry_as("alice", &w, &["locks"])).contains("freeze weekend"));
    assert_eq!(
        ferry_as("alice", &w, &["unlock", ENV]).status.code(),
        Some(1)
    );
    w.assert_no_violations();
}

async fn a_deploy_unlock_from_github_lifts_the_freeze(database_url: Option<String>) {
    let w = world(database_url, &in_force().0).await;
    w.deploy(94, REPO, "production").await;
    w.github.wait_state(94, "queued", WAIT).await;
    let mut unlock = common::deployment_event(95, REPO, "production");
    unlock["deployment"]["task"] = "deploy:unlock".into();
    let (code, body) = w.deliver("deployment", &unlock).await;
    assert_eq!(code, 202, "{body}");
    let done = w.github.wait_final(95, WAIT).await;
    let last = done.last().unwrap();
    assert_eq!(last.state(), "success");
    assert!(
        last.description().starts_with("Lifted by ")
            && last.description().contains(": freeze weekend until "),
        "{}",
        last.description()
    );
    assert_eq!(w.final_states(94, WAIT).await.last().unwrap(), "success");
    w.assert_no_violations();
}

async fn a_freeze_in_the_past_holds_nothing(database_url: Option<String>) {
    let freeze = format!(
        "[[freeze]]\nname = \"last-year\"\ndates = [\"2025-12-23 00:00 - 2026-01-04 08:00\"]\ntimezone = \"{ZONE}\"\n"
    );
    let w = world(database_url, &freeze).await;
    w.deploy(93, REPO, "production").await;
    let states = w.final_states(93, WAIT).await;
    assert_eq!(states, ["queued", "in_progress", "success"]);
    assert!(
        !w.github.statuses_of(93)[0].description().contains("frozen"),
        "{:?}",
        w.github.statuses_of(93)
    );
    let locks = stdout(&ferry_as("alice", &w, &["locks"]));
    assert!(locks.contains("no environment is locked"), "{locks}");
    let checked = stdout(&w.cli(&["check-config"]));
    assert!(checked.contains("freeze last-year"), "{checked}");
    assert!(checked.contains("no window ahead"), "{checked}");
}
