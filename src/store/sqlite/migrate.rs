//! SQLite's migrations (`migrations/sqlite/`), applied in order, each in the
//! transaction that records it in `PRAGMA user_version`.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

const MIGRATIONS: &[&str] = &[
    include_str!("../../../migrations/sqlite/0001_init.sql"),
    include_str!("../../../migrations/sqlite/0002_outbox_heads.sql"),
    include_str!("../../../migrations/sqlite/0003_remote_steps.sql"),
    include_str!("../../../migrations/sqlite/0004_leases.sql"),
    include_str!("../../../migrations/sqlite/0005_locks_and_cancel.sql"),
    include_str!("../../../migrations/sqlite/0006_teardown.sql"),
    include_str!("../../../migrations/sqlite/0007_statuses_once.sql"),
    include_str!("../../../migrations/sqlite/0008_operator_actions.sql"),
    include_str!("../../../migrations/sqlite/0009_cancel_rollback.sql"),
    include_str!("../../../migrations/sqlite/0010_deploy_requests.sql"),
    include_str!("../../../migrations/sqlite/0011_store_info_repair.sql"),
    include_str!("../../../migrations/sqlite/0012_freeze_lifts.sql"),
    include_str!("../../../migrations/sqlite/0013_required_checks.sql"),
    include_str!("../../../migrations/sqlite/0014_daemons.sql"),
    include_str!("../../../migrations/sqlite/0015_events.sql"),
    include_str!("../../../migrations/sqlite/0016_notifications.sql"),
    include_str!("../../../migrations/sqlite/0017_auto_candidates.sql"),
    include_str!("../../../migrations/sqlite/0018_pr_commands.sql"),
    include_str!("../../../migrations/sqlite/0019_lock_until.sql"),
    include_str!("../../../migrations/sqlite/0020_protection_runs.sql"),
    include_str!("../../../migrations/sqlite/0021_delivery_metrics.sql"),
];

pub fn run(conn: &mut Connection) -> anyhow::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version == 0 {
        version = legacy_version(&tx)?;
    }
    let known = MIGRATIONS.len() as i64;
    if version > known {
        anyhow::bail!(
            "the database is at schema version {version}, newer than this ferry knows \
             ({known}): run the newer ferry, or restore a backup taken before the upgrade"
        );
    }
    // Each applied migration is the one this ferry ships; databases
    // migrated before checksums were kept record them now.
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS migration_checksums (
             version INTEGER PRIMARY KEY, checksum TEXT NOT NULL)",
    )?;
    for (i, sql) in MIGRATIONS.iter().enumerate().take(version as usize) {
        let v = i as i64 + 1;
        let sum = crate::store::checksum(sql);
        let stored: Option<String> = tx
            .query_row(
                "SELECT checksum FROM migration_checksums WHERE version = ?",
                [v],
                |r| r.get(0),
            )
            .optional()?;
        match stored {
            None => {
                tx.execute(
                    "INSERT INTO migration_checksums (version, checksum) VALUES (?, ?)",
                    rusqlite::params![v, sum],
                )?;
            }
            Some(s) if s != sum => anyhow::bail!(
                "migration {v} differs from the one applied to this database (checksum {s}, this ferry's {sum}): a shipped migration was edited; run the ferry that applied it"
            ),
            Some(_) => {}
        }
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
        tx.execute(
            "INSERT OR REPLACE INTO migration_checksums (version, checksum) VALUES (?, ?)",
            rusqlite::params![i as i64 + 1, crate::store::checksum(sql)],
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// Databases made before ferry had one SQLite driver recorded their
/// migrations in sqlx's table; carry that version over.
fn legacy_version(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<i64> {
    let has_table: Option<String> = tx
        .query_row(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    if has_table.is_none() {
        return Ok(0);
    }
    tx.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations WHERE success",
        [],
        |r| r.get(0),
    )
}
