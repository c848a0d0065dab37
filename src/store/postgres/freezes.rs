//! Freeze windows lifted for one environment, on PostgreSQL: every replica
//! reads the same lifts.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::PgRow;

use super::{PgStore, Result};
use crate::store::Timestamp;
use crate::store::freezes::{FreezeLift, Freezes};

fn lift_from_row(r: &PgRow) -> std::result::Result<FreezeLift, sqlx::Error> {
    Ok(FreezeLift {
        repository: r.try_get("repository")?,
        environment: r.try_get("environment")?,
        freeze: r.try_get("freeze_name")?,
        until: r.try_get("until")?,
        by: r.try_get("lifted_by")?,
        at: r.try_get("lifted_at")?,
    })
}

#[async_trait]
impl Freezes for PgStore {
    async fn lift_freeze(&self, l: &FreezeLift) -> Result<bool> {
        // Lifts whose window ended mean nothing: pruned as new ones come.
        sqlx::query("DELETE FROM freeze_lifts WHERE until <= $1")
            .bind(l.at)
            .execute(&self.pool)
            .await?;
        let added = sqlx::query(
            "INSERT INTO freeze_lifts
                 (repository, environment, freeze_name, until, lifted_by, lifted_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT DO NOTHING",
        )
        .bind(&l.repository)
        .bind(&l.environment)
        .bind(&l.freeze)
        .bind(l.until)
        .bind(&l.by)
        .bind(l.at)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(added == 1)
    }

    async fn freeze_lifts(&self, now: Timestamp) -> Result<Vec<FreezeLift>> {
        let rows = sqlx::query(
            "SELECT * FROM freeze_lifts WHERE until > $1
             ORDER BY lifted_at, repository, environment",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(lift_from_row)
            .collect::<std::result::Result<_, _>>()?)
    }
}
