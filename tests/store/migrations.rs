//! Migrations that repair what an earlier one left out: a store migrated
//! while store_info was not yet part of its migration gets one, begun with
//! its first deployment, and the reconciler can read it.

use std::sync::Arc;

use ferry::store::postgres::PgStore;
use ferry::store::sqlite::SqliteStore;
use ferry::store::*;

use super::accept;

#[tokio::test(flavor = "multi_thread")]
async fn a_sqlite_store_without_store_info_gets_one() {
    let dir = tempfile::tempdir().unwrap();
    let store: SharedStore = Arc::new(SqliteStore::open(dir.path()).await.unwrap());
    accept(&store, 1, "p", false).await;
    let first = store
        .get(DeploymentId(1))
        .await
        .unwrap()
        .unwrap()
        .created_at;
    store.close().await;
    // As a store migrated through 0010 before 0008 made store_info (the
    // tables of the migrations after the repair go too: they run again).
    let c = rusqlite::Connection::open(dir.path().join("ferry.db")).unwrap();
    c.execute_batch("DROP TABLE store_info; DROP TABLE freeze_lifts; PRAGMA user_version = 10;")
        .unwrap();
    drop(c);
    let store = SqliteStore::open(dir.path()).await.unwrap();
    assert_eq!(store.created_at().await.unwrap(), first);
    store.close().await;
    // Once there, it stays as it was.
    let store = SqliteStore::open(dir.path()).await.unwrap();
    assert_eq!(store.created_at().await.unwrap(), first);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_postgres_store_without_store_info_gets_one() {
    let url = ferry_testkit::postgres::cluster().database();
    let store: SharedStore = Arc::new(PgStore::connect(&url).await.unwrap());
    accept(&store, 1, "p", false).await;
    let first = store
        .get(DeploymentId(1))
        .await
        .unwrap()
        .unwrap()
        .created_at;
    store.close().await;
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    sqlx::raw_sql(
        "DROP TABLE store_info; DROP TABLE freeze_lifts; DELETE FROM ferry_migrations WHERE version > 9;",
    )
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let store = PgStore::connect(&url).await.unwrap();
    assert_eq!(store.created_at().await.unwrap(), first);
}
