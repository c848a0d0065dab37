//! The webhook route in-process, for answers that need a broken store.

use ferry_testkit as common;

use ferry::config::Config;
use ferry::logs::Logs;
use ferry::store::sqlite::SqliteStore;
use ferry::store::{Deployments, Store};

#[tokio::test]
async fn storage_unavailable_is_503_and_nothing_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("secret"), common::SECRET).unwrap();
    std::fs::write(d.join("token"), "t").unwrap();
    std::fs::write(d.join("known_hosts"), "").unwrap();
    let text = format!(
        "[server]\npublic_url = \"http://x\"\n[github]\nwebhook_secret_file = \"secret\"\ntoken_file = \"token\"\n\
         [storage]\ndir = \"state\"\n[ssh]\nknown_hosts_file = \"known_hosts\"\n{}",
        common::target(
            "Codertocat/Hello-World",
            "production",
            &["h".into()],
            &[("s", "true")],
            ""
        )
    );
    let config = Config::parse(&text, &d.join("ferry.toml"), &|_| None).unwrap();
    let store = SqliteStore::open(&config.storage.dir).await.unwrap();
    let logs = Logs::open(&config.storage.dir, "http://x", None)
        .await
        .unwrap();
    let routes = ferry::daemon::routes_only(config, std::sync::Arc::new(store.clone()), logs);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/webhook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, routes).await });

    store.close().await;
    let body = serde_json::to_vec(&common::fixture("deployment/payload.json")).unwrap();
    let response = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/json")
        .header("x-github-event", "deployment")
        .header("x-github-delivery", "d-1")
        .header(
            "x-hub-signature-256",
            common::signature(common::SECRET, &body),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    // A fresh store on the same files holds nothing: a 503 accepted nothing.
    let reopened = SqliteStore::open(&d.join("state")).await.unwrap();
    assert!(reopened.recent(10).await.unwrap().is_empty());
}
