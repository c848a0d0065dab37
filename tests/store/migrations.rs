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
    // As a store migrated before 0008 made store_info, when the repair
    // (0011) runs on it.
    let c = rusqlite::Connection::open(dir.path().join("ferry.db")).unwrap();
    c.execute_batch("DROP TABLE store_info").unwrap();
    c.execute_batch(include_str!(
        "../../migrations/sqlite/0011_store_info_repair.sql"
    ))
    .unwrap();
    drop(c);
    let store = SqliteStore::open(dir.path()).await.unwrap();
    assert_eq!(store.created_at().await.unwrap(), first);
    store.close().await;
    // Once there, the repair changes nothing.
    store.close().await;
    let c = rusqlite::Connection::open(dir.path().join("ferry.db")).unwrap();
    c.execute_batch(include_str!(
        "../../migrations/sqlite/0011_store_info_repair.sql"
    ))
    .unwrap();
    let rows: i64 = c
        .query_row("SELECT COUNT(*) FROM store_info", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 1);
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
    sqlx::raw_sql("DROP TABLE store_info")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::raw_sql(include_str!(
        "../../migrations/postgres/0010_store_info_repair.sql"
    ))
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    let store = PgStore::connect(&url).await.unwrap();
    assert_eq!(store.created_at().await.unwrap(), first);
}
