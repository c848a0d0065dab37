//! `ferry lock --for`: a lock that lifts by itself, and what waited for it
//! runs then; `ferry locks` shows until when. On both stores.

use std::time::{Duration, Instant};

use ferry_testkit as common;
use ferry_testkit::backends;

use common::{Setup, World, target};

const REPO: &str = "octo-org/web";
const WAIT: Duration = Duration::from_secs(60);

backends!(a_lock_for_a_while_holds_deployments_until_it_lifts_by_itself,);

async fn a_lock_for_a_while_holds_deployments_until_it_lifts_by_itself(
    database_url: Option<String>,
) {
    let setup = Setup {
        database_url,
        ..Setup::default()
    };
    let w = World::build(setup, |sshd, _| {
        target(REPO, "production", &sshd.hosts(), &[("run", "true")], "")
    })
    .await;
    let bad = w.cli(&["lock", "octo-org/web:production", "--for", "soon"]);
    assert_eq!(bad.status.code(), Some(2), "{bad:?}");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("is not a duration"));
    let locked_at = Instant::now();
    let out = w.cli(&[
        "lock",
        "octo-org/web:production",
        "--reason",
        "db migration",
        "--for",
        "3s",
    ]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("locked octo-org/web:production until"));
    let listed = w.cli(&["locks", "--json"]);
    let line: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert!(line["until"].is_string(), "{line}");
    let table = String::from_utf8_lossy(&w.cli(&["locks"]).stdout).to_string();
    assert!(
        table.contains("db migration (lifts by itself at "),
        "{table}"
    );
    w.deploy(61, REPO, "production").await;
    let states = w.final_states(61, WAIT).await;
    assert_eq!(states.last().unwrap(), "success", "{states:?}");
    // It waited for the lock, which lifted by itself.
    assert!(
        locked_at.elapsed() >= Duration::from_secs(3),
        "ran {:?} after a 3s lock",
        locked_at.elapsed()
    );
    assert!(w.states(61).contains(&"queued".to_string()));
    assert!(
        w.github.statuses_of(61)[0]
            .description()
            .contains("locked by"),
        "{:?}",
        w.github.statuses_of(61)
    );
    let after = String::from_utf8_lossy(&w.cli(&["locks"]).stdout).to_string();
    assert!(after.contains("no environment is locked"), "{after}");
    assert!(
        w.ferry
            .output()
            .contains("lifted by itself: its --for ran out"),
        "{}",
        w.ferry.output()
    );
}
