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
    include_str!("../../../migrations/postgres/0016_events.sql"),
    include_str!("../../../migrations/postgres/0017_notifications.sql"),
    include_str!("../../../migrations/postgres/0018_auto_candidates.sql"),
    include_str!("../../../migrations/postgres/0019_pr_commands.sql"),
    include_str!("../../../migrations/postgres/0020_lock_until.sql"),
    include_str!("../../../migrations/postgres/0021_protection_runs.sql"),
    include_str!("../../../migrations/postgres/0022_delivery_metrics.sql"),
];

/// `pg_advisory_xact_lock` key under which migrations run: replicas that
/// start together migrate once, one after the other.
const MIGRATION_LOCK: i64 = 0x6665_7272_795f_6d67; // "ferry_mg"

/// Functions kept in one file each and applied after the numbered
/// migrations whenever their text changes (`ferry_functions` holds the
/// checksum each database last applied).
const FUNCTIONS: &[(&str, &str)] = &[(
    "ferry_accept",
    include_str!("../../../migrations/postgres/functions/ferry_accept.sql"),
)];

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
    checksum_tables(&mut tx).await?;
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
    check_applied(&mut tx, version).await?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        sqlx::raw_sql(sqlx::AssertSqlSafe(*sql))
            .execute(&mut *tx)
            .await
            .with_context(|| format!("migration {}", i + 1))?;
        sqlx::query("INSERT INTO ferry_migrations (version, checksum) VALUES ($1, $2)")
            .bind(i as i32 + 1)
            .bind(crate::store::checksum(sql))
            .execute(&mut *tx)
            .await?;
    }
    for (name, sql) in FUNCTIONS {
        let sum = crate::store::checksum(sql);
        let applied: Option<String> =
            sqlx::query_scalar("SELECT checksum FROM ferry_functions WHERE name = $1")
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
        if applied.as_deref() != Some(sum.as_str()) {
            sqlx::raw_sql(sqlx::AssertSqlSafe(*sql))
                .execute(&mut *tx)
                .await
                .with_context(|| format!("function {name}"))?;
            sqlx::query(
                "INSERT INTO ferry_functions (name, checksum) VALUES ($1, $2)
                 ON CONFLICT (name) DO UPDATE SET checksum = excluded.checksum",
            )
            .bind(name)
            .bind(&sum)
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// The checksum column and the functions' table, on a database made
/// before they existed (again without IF NOT EXISTS and its notice).
async fn checksum_tables(tx: &mut sqlx::PgConnection) -> anyhow::Result<()> {
    let has_checksum: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM information_schema.columns
          WHERE table_name = 'ferry_migrations' AND column_name = 'checksum'
            AND table_schema = current_schema())",
    )
    .fetch_one(&mut *tx)
    .await?;
    if !has_checksum {
        sqlx::raw_sql("ALTER TABLE ferry_migrations ADD COLUMN checksum TEXT")
            .execute(&mut *tx)
            .await?;
    }
    let has_functions: bool =
        sqlx::query_scalar("SELECT to_regclass('ferry_functions') IS NOT NULL")
            .fetch_one(&mut *tx)
            .await?;
    if !has_functions {
        sqlx::raw_sql(
            "CREATE TABLE ferry_functions (name TEXT PRIMARY KEY, checksum TEXT NOT NULL)",
        )
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// Each applied migration is the one this ferry ships: one edited after it
/// ran would leave databases that differ with nothing to tell them apart.
/// Databases migrated before checksums were kept record them now.
async fn check_applied(tx: &mut sqlx::PgConnection, version: i32) -> anyhow::Result<()> {
    let rows: Vec<(i32, Option<String>)> =
        sqlx::query_as("SELECT version, checksum FROM ferry_migrations ORDER BY version")
            .fetch_all(&mut *tx)
            .await?;
    for (v, stored) in rows.into_iter().filter(|(v, _)| *v <= version) {
        let Some(sql) = MIGRATIONS.get(v as usize - 1) else {
            continue;
        };
        let sum = crate::store::checksum(sql);
        match stored {
            None => {
                sqlx::query("UPDATE ferry_migrations SET checksum = $2 WHERE version = $1")
                    .bind(v)
                    .bind(&sum)
                    .execute(&mut *tx)
                    .await?;
            }
            Some(s) if s != sum => anyhow::bail!(
                "migration {v} differs from the one applied to this database (checksum {s}, this ferry's {sum}): a shipped migration was edited; run the ferry that applied it"
            ),
            Some(_) => {}
        }
    }
    Ok(())
}
