//! Running replicas on PostgreSQL, by the database's clock: the command
//! asking and the replicas may run on hosts whose clocks differ.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::Row;

use super::{DB_NOW, Owner, PgStore, Result};
use crate::store::daemons::{Daemons, LastBeat};

#[async_trait]
impl Daemons for PgStore {
    async fn beat(&self, me: &Owner) -> Result<()> {
        let sql = format!(
            "WITH forgotten AS (DELETE FROM daemons WHERE beat_at < {DB_NOW} - 86400000)
             INSERT INTO daemons (name, started_at, beat_at) VALUES ($1, {DB_NOW}, {DB_NOW})
             ON CONFLICT (name) DO UPDATE SET beat_at = excluded.beat_at"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&me.0)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn gone(&self, me: &Owner) -> Result<()> {
        sqlx::query("DELETE FROM daemons WHERE name = $1")
            .bind(&me.0)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn last_beat(&self) -> Result<Option<LastBeat>> {
        let sql = format!(
            "SELECT name, GREATEST({DB_NOW} - beat_at, 0) AS ago FROM daemons
             ORDER BY beat_at DESC LIMIT 1"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| -> Result<LastBeat> {
            Ok(LastBeat {
                name: r.try_get("name")?,
                ago: Duration::from_millis(r.try_get::<i64, _>("ago")? as u64),
            })
        })
        .transpose()
    }
}
