use super::*;

async fn open(dir: &Path, url: &str) -> Logs {
    Logs::open(dir, url, None).await.unwrap()
}

#[tokio::test]
async fn tokens_are_per_deployment_and_per_key() {
    let dir = tempfile::tempdir().unwrap();
    let logs = open(dir.path(), "https://d.example").await;
    let t1 = logs.token(DeploymentId(1));
    assert_eq!(t1.len(), 64);
    assert!(logs.token_valid(DeploymentId(1), &t1));
    assert!(!logs.token_valid(DeploymentId(2), &t1));
    assert!(!logs.token_valid(DeploymentId(1), &t1[..32]));
    assert!(!logs.token_valid(DeploymentId(1), "zz"));
    assert!(!logs.token_valid(DeploymentId(1), ""));
    // The key persists: a restart keeps old links working.
    let again = open(dir.path(), "https://d.example").await;
    assert!(again.token_valid(DeploymentId(1), &t1));
    let other = tempfile::tempdir().unwrap();
    let stranger = open(other.path(), "https://d.example").await;
    assert!(!stranger.token_valid(DeploymentId(1), &t1));
    assert_eq!(
        logs.url(DeploymentId(7)),
        format!(
            "https://d.example/deployments/7/log?token={}",
            logs.token(DeploymentId(7))
        )
    );
}

#[tokio::test]
async fn prune_removes_only_old_logs() {
    let dir = tempfile::tempdir().unwrap();
    let logs = open(dir.path(), "http://x").await;
    for (id, text) in [(1, "old"), (2, "new")] {
        logs.writer(DeploymentId(id))
            .await
            .unwrap()
            .ferry(None, None, text);
    }
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3 * 86400);
    File::options()
        .write(true)
        .open(dir.path().join("logs/1.jsonl"))
        .unwrap()
        .set_modified(old)
        .unwrap();
    let day = std::time::Duration::from_secs(86400);
    assert_eq!(logs.prune(day).await.unwrap(), 1);
    assert!(logs.read(DeploymentId(1)).await.unwrap().is_none());
    assert!(logs.read(DeploymentId(2)).await.unwrap().is_some());
    assert!(
        dir.path().join(TOKEN_KEY_FILE).exists(),
        "only logs are pruned"
    );
}

#[tokio::test]
async fn partial_lines_wait_for_their_end() {
    let dir = tempfile::tempdir().unwrap();
    let logs = open(dir.path(), "http://x").await;
    let id = DeploymentId(5);
    let w = logs.writer(id).await.unwrap();
    w.ferry(None, None, "done");
    let (_, end) = logs.read_from(id, 0).await.unwrap().unwrap();
    let mut f = OpenOptions::new()
        .append(true)
        .open(dir.path().join("logs/5.jsonl"))
        .unwrap();
    f.write_all(b"{\"t\":1,\"stream\":\"out\",\"te").unwrap();
    let (more, end2) = logs.read_from(id, end).await.unwrap().unwrap();
    assert!(more.is_empty());
    assert_eq!(end2, end);
}
