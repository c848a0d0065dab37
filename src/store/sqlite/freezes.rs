//! Freeze windows lifted for one environment, on SQLite.

use async_trait::async_trait;
use rusqlite::{Row, params};

use super::{Result, SqliteStore};
use crate::store::Timestamp;
use crate::store::freezes::{FreezeLift, Freezes};

fn lift_from_row(r: &Row<'_>) -> rusqlite::Result<FreezeLift> {
    Ok(FreezeLift {
        repository: r.get("repository")?,
        environment: r.get("environment")?,
        freeze: r.get("freeze_name")?,
        until: r.get("until")?,
        by: r.get("lifted_by")?,
        at: r.get("lifted_at")?,
    })
}

#[async_trait]
impl Freezes for SqliteStore {
    async fn lift_freeze(&self, lift: &FreezeLift) -> Result<bool> {
        let l = lift.clone();
        self.write(move |tx| {
            // Lifts whose window ended mean nothing: pruned as new ones come.
            tx.prepare_cached("DELETE FROM freeze_lifts WHERE until <= ?")?
                .execute(params![l.at])?;
            let added = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO freeze_lifts
                         (repository, environment, freeze_name, until, lifted_by, lifted_at)
                     VALUES (?, ?, ?, ?, ?, ?)",
                )?
                .execute(params![
                    l.repository,
                    l.environment,
                    l.freeze,
                    l.until,
                    l.by,
                    l.at
                ])?;
            Ok(added == 1)
        })
        .await
    }

    async fn freeze_lifts(&self, now: Timestamp) -> Result<Vec<FreezeLift>> {
        self.read(move |c| {
            c.prepare_cached(
                "SELECT * FROM freeze_lifts WHERE until > ?
                 ORDER BY lifted_at, repository, environment",
            )?
            .query_map(params![now], lift_from_row)?
            .collect()
        })
        .await
    }
}
