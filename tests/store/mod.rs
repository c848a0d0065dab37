//! The store's contract, run against both backends: each test is written
//! once against [`ferry::store::Store`] and instantiated for SQLite and for
//! PostgreSQL (a real server, see `ferry_testkit::postgres`). One module
//! per noun, named as the backends' files are (`src/store/sqlite/`,
//! `src/store/postgres/`), as riverqueue/river's driver test suite is.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use ferry::store::postgres::PgStore;
use ferry::store::sqlite::SqliteStore;
use ferry::store::*;

/// Opens the backend's database; again on each call, so a test can see
/// what survives a reopen.
type Open = Box<dyn Fn() -> Pin<Box<dyn Future<Output = SharedStore>>>>;

struct Backend {
    open: Open,
    /// Keeps the SQLite directory alive for the test.
    _dir: Option<tempfile::TempDir>,
}

/// SQLite in a directory of the test's own, or the PostgreSQL database
/// `backends!` made for it.
fn backend(database_url: Option<String>) -> Backend {
    match database_url {
        None => {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().to_path_buf();
            Backend {
                open: Box::new(move || {
                    let path = path.clone();
                    Box::pin(async move {
                        Arc::new(SqliteStore::open(&path).await.unwrap()) as SharedStore
                    })
                }),
                _dir: Some(dir),
            }
        }
        Some(url) => Backend {
            open: Box::new(move || {
                let url = url.clone();
                Box::pin(
                    async move { Arc::new(PgStore::connect(&url).await.unwrap()) as SharedStore },
                )
            }),
            _dir: None,
        },
    }
}

/// A PostgreSQL database of its own, migrated, and a pool to it for the
/// tests that read query plans or fill tables directly.
async fn migrated_postgres() -> sqlx::PgPool {
    let url = ferry_testkit::postgres::cluster().database();
    let store = PgStore::connect(&url).await.unwrap();
    store.close().await;
    sqlx::PgPool::connect(&url).await.unwrap()
}

fn deployment(id: i64, env: &str) -> NewDeployment {
    NewDeployment {
        id: DeploymentId(id),
        repository: "o/r".into(),
        environment: env.into(),
        task: "deploy".into(),
        git_ref: "main".into(),
        sha: "abc".into(),
        payload: "{}".into(),
        creator: "me".into(),
        production: true,
        transient: false,
        installation_id: Some(7),
        gated: false,
    }
}

fn key(d: &str) -> DeliveryKey {
    DeliveryKey {
        hook_id: "1".into(),
        delivery_id: d.into(),
    }
}

fn queued() -> NewStatus {
    NewStatus::new(StatusState::Queued, "queued")
}

fn new() -> Accepted {
    Accepted::New { superseded: vec![] }
}

async fn accept(store: &SharedStore, id: i64, env: &str, supersede: bool) -> Accepted {
    store
        .accept(
            &key(&format!("k{id}")),
            &deployment(id, env),
            &queued(),
            supersede,
        )
        .await
        .unwrap()
}

fn me() -> Owner {
    Owner("test (pid 1)".into())
}

async fn succeed(store: &SharedStore, claim: Claim) {
    store
        .finish(
            claim,
            State::Success,
            &NewStatus::new(StatusState::Success, "ok"),
        )
        .await
        .unwrap();
}

mod actions;
mod cancels;
mod candidates;
mod commands;
mod daemons;
mod deployments;
mod events;
mod freezes;
mod gates;
mod leases;
mod locks;
mod migrations;
mod notifications;
mod outbox;
mod outcomes;
mod protection;
mod requests;
mod steps;
mod teardowns;
