//! Checks between batches (docs/configuration.md, "Configure a target"): after a host's
//! steps, each `[[target.checks]]` runs there until it passes or `within`
//! runs out; the next batch starts only once the batch passed.

use std::time::Duration;

use ferry_testkit as common;
use ferry_testkit::backends;

use common::{Setup, Sshd, World, loopback, target};

backends!(
    a_check_that_never_passes_on_host_2_stops_the_rollout,
    a_check_that_passes_on_its_third_try_lets_the_rollout_go_on,
);

const REPO: &str = "octo-org/web";
const WAIT: Duration = Duration::from_secs(60);

/// Three hosts one at a time; each step records its host; the check
/// `script` follows with `within` and `interval`.
async fn world(
    database_url: Option<String>,
    script: impl Fn(&Sshd, &std::path::Path) -> String,
    within: &str,
) -> World {
    let setup = Setup {
        sshds: vec![loopback(60, 3)],
        database_url,
        ..Setup::default()
    };
    World::build(setup, |sshd, scratch| {
        let ran = scratch.join("ran").display().to_string();
        let check = script(sshd, scratch);
        target(
            REPO,
            "production",
            &sshd.hosts(),
            &[("deploy", &format!("echo \"$FERRY_HOST\" >> {ran}"))],
            &format!(
                "parallel = 1\n[[target.checks]]\nname = \"healthz\"\nrun = '''\n{check}\n'''\nwithin = \"{within}\"\ninterval = \"1s\"\n"
            ),
        )
    })
    .await
}

async fn a_check_that_never_passes_on_host_2_stops_the_rollout(database_url: Option<String>) {
    let w = world(
        database_url,
        |sshd, _| {
            let second = sshd.displays()[1].clone();
            format!("echo checking $FERRY_HOST\nif [ \"$FERRY_HOST\" = {second} ]; then exit 7; fi")
        },
        "3s",
    )
    .await;
    w.deploy(1, REPO, "production").await;
    let statuses = w.github.wait_final(1, WAIT).await;
    let last = statuses.last().unwrap();
    let hosts = w.sshd.displays();
    assert_eq!(last.state(), "failure", "{statuses:?}");
    let description = last.description();
    assert!(
        description.starts_with(&format!("Check 'healthz' failed on {} after ", hosts[1]))
            && description.ends_with("(exit 7)"),
        "{description}"
    );
    let ran = std::fs::read_to_string(w.scratch().join("ran")).unwrap();
    assert_eq!(
        ran,
        format!("{}\n{}\n", hosts[0], hosts[1]),
        "the third host never ran a step"
    );
    // Every try is in the log, the output of the last one only.
    let log = w.log_text(last.log_url().unwrap()).await;
    let tries = log.matches("check try ").count();
    assert!(
        (3..=5).contains(&tries),
        "tries every 1s within 3s on host 2, one on host 1: {tries}\n{log}"
    );
    assert!(log.contains("check try 1 of ~4 failed"), "{log}");
    let shown = log.matches(&format!("checking {}", hosts[1])).count();
    assert_eq!(shown, 1, "only the last try's output: {log}");
    w.assert_no_violations();
}

async fn a_check_that_passes_on_its_third_try_lets_the_rollout_go_on(database_url: Option<String>) {
    let w = world(
        database_url,
        |_, scratch| {
            let count = scratch.join("tries-$FERRY_HOST").display().to_string();
            format!(
                "n=$(cat \"{count}\" 2>/dev/null || echo 0); n=$((n + 1)); echo $n > \"{count}\"\n[ $n -ge 3 ]"
            )
        },
        "10s",
    )
    .await;
    w.deploy(2, REPO, "production").await;
    let statuses = w.github.wait_final(2, WAIT).await;
    assert_eq!(statuses.last().unwrap().state(), "success", "{statuses:?}");
    let hosts = w.sshd.displays();
    let ran = std::fs::read_to_string(w.scratch().join("ran")).unwrap();
    assert_eq!(ran, format!("{}\n{}\n{}\n", hosts[0], hosts[1], hosts[2]));
    let log = w
        .log_text(statuses.last().unwrap().log_url().unwrap())
        .await;
    assert_eq!(log.matches("passed after").count(), 3, "{log}");
    assert!(log.contains("check try 3 of ~11 passed"), "{log}");
    w.assert_no_violations();
}
