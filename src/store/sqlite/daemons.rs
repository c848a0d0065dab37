//! Running daemons on SQLite: one box, one clock.

use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

use super::{Owner, Result, SqliteStore, Timestamp};
use crate::store::daemons::{Daemons, LastBeat};

const DAY: Duration = Duration::from_secs(24 * 3600);

#[async_trait]
impl Daemons for SqliteStore {
    async fn beat(&self, me: &Owner) -> Result<()> {
        let name = me.0.clone();
        self.write(move |tx| {
            let now = Timestamp::now();
            tx.prepare_cached(
                "INSERT INTO daemons (name, started_at, beat_at) VALUES (?1, ?2, ?2)
                 ON CONFLICT (name) DO UPDATE SET beat_at = excluded.beat_at",
            )?
            .execute(params![name, now])?;
            tx.prepare_cached("DELETE FROM daemons WHERE beat_at < ?")?
                .execute(params![now - DAY])?;
            Ok(())
        })
        .await
    }

    async fn gone(&self, me: &Owner) -> Result<()> {
        let name = me.0.clone();
        self.write(move |tx| {
            tx.prepare_cached("DELETE FROM daemons WHERE name = ?")?
                .execute(params![name])?;
            Ok(())
        })
        .await
    }

    async fn last_beat(&self) -> Result<Option<LastBeat>> {
        self.read(|c| {
            c.prepare_cached("SELECT name, beat_at FROM daemons ORDER BY beat_at DESC LIMIT 1")?
                .query_row([], |r| {
                    let at: Timestamp = r.get(1)?;
                    Ok(LastBeat {
                        name: r.get(0)?,
                        ago: (Timestamp::now() - at),
                    })
                })
                .optional()
        })
        .await
    }
}
