//! PostgreSQL's migrations (`migrations/postgres/`), applied once however
//! many replicas start together: under a transaction-scoped advisory lock
//! (a session lock would leak across pooled connections and PgBouncer).

use anyhow::Context;
use sqlx::PgPool;

const MIGRATIONS: &[&str] = &[
    include_str!("../../../migrations/postgres/0001_init.sql"),
    include_str!("../../../migrations/postgres/0002_accept_batch.sql"),
    include_str!("../../../migrations/postgres/0003_locks_and_cancel.sql"),
    include_str!("../../../migrations/postgres/0004_teardown.sql"),
    include_str!("../../../migrations/postgres/0005_statuses_once.sql"),
    include_str!("../../../migrations/postgres/0006_operator_actions.sql"),
    include_str!("../../../migrations/postgres/0007_wording_parameter.sql"),
    include_str!("../../../migrations/postgres/0008_cancel_rollback.sql"),
    include_str!("../../../migrations/postgres/0009_deploy_requests.sql"),
    include_str!("../../../migrations/postgres/0010_store_info_repair.sql"),
    include_str!("../../../migrations/postgres/0011_freeze_lifts.sql"),
    include_str!("../../../migrations/postgres/0012_required_checks.sql"),
    include_str!("../../../migrations/postgres/0013_outbox_backlog_index.sql"),
    include_str!("../../../migrations/postgres/0014_accept_superseded_at_once.sql"),
    include_str!("../../../migrations/postgres/0015_daemons.sql"),
];

/// `pg_advisory_xact_lock` key under which migrations run: replicas that
/// start together migrate once, one after the other.
const MIGRATION_LOCK: i64 = 0x6665_7272_795f_6d67; // "ferry_mg"

pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *tx)
        .await?;
    // Not CREATE ... IF NOT EXISTS: its notice would reach the journal at
    // every start.
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('ferry_migrations') IS NOT NULL")
        .fetch_one(&mut *tx)
        .await?;
    if !exists {
        sqlx::raw_sql(
            "CREATE TABLE ferry_migrations (
                 version    INTEGER PRIMARY KEY,
                 applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        )
        .execute(&mut *tx)
        .await?;
    }
    let version: i32 = sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM ferry_migrations")
        .fetch_one(&mut *tx)
        .await?;
    let known = MIGRATIONS.len() as i32;
    if version > known {
        anyhow::bail!(
            "the database is at schema version {version}, newer than this ferry knows \
             ({known}): every replica must run the same or a newer ferry"
        );
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        sqlx::raw_sql(sqlx::AssertSqlSafe(*sql))
            .execute(&mut *tx)
            .await
            .with_context(|| format!("migration {}", i + 1))?;
        sqlx::query("INSERT INTO ferry_migrations (version) VALUES ($1)")
            .bind(i as i32 + 1)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}
