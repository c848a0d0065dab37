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

/// A shipped migration edited after a database applied it is refused by
/// name; a database migrated before checksums were kept records them.
#[tokio::test(flavor = "multi_thread")]
async fn a_sqlite_migration_edited_after_it_ran_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    SqliteStore::open(dir.path()).await.unwrap().close().await;
    let c = rusqlite::Connection::open(dir.path().join("ferry.db")).unwrap();
    c.execute_batch("DELETE FROM migration_checksums WHERE version = 2")
        .unwrap();
    drop(c);
    SqliteStore::open(dir.path()).await.unwrap().close().await;
    let c = rusqlite::Connection::open(dir.path().join("ferry.db")).unwrap();
    let recorded: i64 = c
        .query_row("SELECT COUNT(*) FROM migration_checksums", [], |r| r.get(0))
        .unwrap();
    assert!(recorded >= 14, "{recorded}");
    c.execute_batch("UPDATE migration_checksums SET checksum = 'edited' WHERE version = 3")
        .unwrap();
    drop(c);
    let err = format!("{:#}", SqliteStore::open(dir.path()).await.err().unwrap());
    assert!(err.contains("migration 3 differs"), "{err}");
}

/// The same on PostgreSQL; and `ferry_accept`, kept in one file, is
/// applied again when the checksum the database recorded differs.
#[tokio::test(flavor = "multi_thread")]
async fn postgres_migrations_are_checksummed_and_functions_reapplied() {
    let url = ferry_testkit::postgres::cluster().database();
    let store: SharedStore = Arc::new(PgStore::connect(&url).await.unwrap());
    store.close().await;
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    // As a database migrated before checksums, with an older ferry_accept.
    let declared = include_str!("../../migrations/postgres/functions/ferry_accept.sql");
    let head = &declared[declared.find("CREATE OR REPLACE FUNCTION").unwrap()..];
    let head = &head[..head.find("LANGUAGE").unwrap()];
    let stub = format!("{head} LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'older'; END $$;");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "UPDATE ferry_migrations SET checksum = NULL;
         UPDATE ferry_functions SET checksum = 'older';
         {stub}"
    )))
    .execute(&pool)
    .await
    .unwrap();
    let store: SharedStore = Arc::new(PgStore::connect(&url).await.unwrap());
    // The real function again: a delivery is stored.
    super::accept(&store, 7, "p", false).await;
    assert!(store.get(DeploymentId(7)).await.unwrap().is_some());
    store.close().await;
    let unrecorded: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM ferry_migrations WHERE checksum IS NULL")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(unrecorded, 0);
    sqlx::raw_sql("UPDATE ferry_migrations SET checksum = 'edited' WHERE version = 4")
        .execute(&pool)
        .await
        .unwrap();
    let err = format!("{:#}", PgStore::connect(&url).await.err().unwrap());
    assert!(err.contains("migration 4 differs"), "{err}");
}
