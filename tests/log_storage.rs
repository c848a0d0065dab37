//! Deployment logs on both kinds of storage: files beside SQLite, and
//! PostgreSQL where replicas share it. The same tests run on each.

use ferry_testkit::backends;

use std::time::Duration;

use ferry::logs::{Logs, Stream};
use ferry::store::DeploymentId;

/// Files in a directory of the test's own, or the PostgreSQL database
/// `backends!` made for it.
struct Backend {
    dir: tempfile::TempDir,
    database_url: Option<String>,
}

impl Backend {
    async fn open(&self) -> Logs {
        let db = match &self.database_url {
            // The store makes the tables.
            Some(url) => Some(
                ferry::store::postgres::PgStore::connect(url)
                    .await
                    .unwrap()
                    .database(),
            ),
            None => None,
        };
        Logs::open(self.dir.path(), "https://d.example", db)
            .await
            .unwrap()
    }
}

fn backend(database_url: Option<String>) -> Backend {
    Backend {
        dir: tempfile::tempdir().unwrap(),
        database_url,
    }
}

backends!(
    with backend;
    lines_round_trip_and_readers_resume_at_an_offset,
    writers_of_one_deployment_keep_their_order,
    a_link_minted_by_one_opens_on_another,
    new_lines_are_announced,
    retention_removes_only_old_logs,
);

async fn lines_round_trip_and_readers_resume_at_an_offset(b: Backend) {
    let logs = b.open().await;
    let id = DeploymentId(5);
    assert!(logs.read(id).await.unwrap().is_none());
    let w = logs.writer(id).await.unwrap();
    w.line(Some("web1"), Some("build"), Stream::Out, "hello <b> 'ü'");
    w.ferry(None, None, "first");
    w.flush().await.unwrap();
    let (lines, end) = logs.read_from(id, 0).await.unwrap().unwrap();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0].text, "hello <b> 'ü'");
    assert_eq!(lines[0].host.as_deref(), Some("web1"));
    assert_eq!(lines[0].step.as_deref(), Some("build"));
    assert_eq!(lines[0].stream, Stream::Out);
    w.ended("web1", Some("build"), "exit 3", 3);
    w.flush().await.unwrap();
    let (more, end2) = logs.read_from(id, end).await.unwrap().unwrap();
    assert_eq!(more.len(), 1);
    assert_eq!(more[0].exit, Some(3));
    assert!(end2 > end);
    let (none, end3) = logs.read_from(id, end2).await.unwrap().unwrap();
    assert!(none.is_empty());
    assert_eq!(end3, end2);
    // Each line's offset is where a reader resumes after it.
    let entries = logs.entries_from(id, 0).await.unwrap().unwrap();
    assert_eq!(
        entries[0].1,
        logs.entries_from(id, 0).await.unwrap().unwrap()[0].1
    );
    let after_first = logs.entries_from(id, entries[0].1).await.unwrap().unwrap();
    assert_eq!(after_first[0].0.text, "first");
}

async fn writers_of_one_deployment_keep_their_order(b: Backend) {
    let logs = b.open().await;
    let id = DeploymentId(6);
    let runner = logs.writer(id).await.unwrap();
    for i in 0..50 {
        runner.line(Some("h"), Some("s"), Stream::Out, &format!("line {i}"));
    }
    // The final line comes from a writer opened later, as at the end of a
    // deployment; it must not overtake lines still buffered.
    let last = logs.writer(id).await.unwrap();
    last.ferry(None, None, "success: done");
    last.flush().await.unwrap();
    drop((runner, last));
    let lines = logs.read(id).await.unwrap().unwrap();
    assert_eq!(lines.len(), 51);
    assert_eq!(lines[49].text, "line 49");
    assert_eq!(lines[50].text, "success: done");
    // A writer opened after the others are gone carries on after them.
    let again = logs.writer(id).await.unwrap();
    again.ferry(None, None, "later");
    again.flush().await.unwrap();
    let lines = logs.read(id).await.unwrap().unwrap();
    assert_eq!(lines.len(), 52);
    assert_eq!(lines[51].text, "later");
}

async fn a_link_minted_by_one_opens_on_another(b: Backend) {
    let one = b.open().await;
    let token = one.token(DeploymentId(9));
    // Files: the same ferry after a restart. PostgreSQL: another replica.
    let two = b.open().await;
    assert!(two.token_valid(DeploymentId(9), &token));
    assert!(!two.token_valid(DeploymentId(8), &token));
}

async fn new_lines_are_announced(b: Backend) {
    let logs = b.open().await;
    let mut changes = logs.changes();
    let w = logs.writer(DeploymentId(11)).await.unwrap();
    w.ferry(None, None, "hello");
    let got = tokio::time::timeout(Duration::from_secs(5), changes.recv())
        .await
        .expect("announced")
        .unwrap();
    assert_eq!(got, DeploymentId(11));
}

async fn retention_removes_only_old_logs(b: Backend) {
    let logs = b.open().await;
    let w = logs.writer(DeploymentId(12)).await.unwrap();
    w.ferry(None, None, "kept");
    w.flush().await.unwrap();
    // Nothing is a day old yet.
    assert_eq!(logs.prune(Duration::from_secs(86400)).await.unwrap(), 0);
    // Log files age by their modification time, in whole seconds.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let fresh = logs.writer(DeploymentId(13)).await.unwrap();
    fresh.ferry(None, None, "new");
    fresh.flush().await.unwrap();
    assert_eq!(logs.prune(Duration::from_millis(1000)).await.unwrap(), 1);
    assert!(logs.read(DeploymentId(12)).await.unwrap().is_none());
    assert!(logs.read(DeploymentId(13)).await.unwrap().is_some());
}
