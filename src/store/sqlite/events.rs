//! The event stream on SQLite: one writer, so `seq` order is commit order
//! and a cursor is a `seq`.

use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{OptionalExtension, Row, params};

use super::{DeploymentId, Owner, Result, SqliteStore, Timestamp};
use crate::store::events::{Event, EventKind, EventPosition, Events};

fn event_from_row(r: &Row<'_>) -> rusqlite::Result<Event> {
    let kind: String = r.get("kind")?;
    Ok(Event {
        position: EventPosition {
            xid: 0,
            seq: r.get("seq")?,
        },
        at: r.get("at")?,
        kind: EventKind::parse(&kind).unwrap_or(EventKind::Status),
        deployment: r.get::<_, Option<i64>>("deployment_id")?.map(DeploymentId),
        repository: r.get("repository")?,
        environment: r.get("environment")?,
        state: r.get("state")?,
        description: r.get("description")?,
        actor: r.get("actor")?,
        until: r.get("until_at")?,
    })
}

#[async_trait]
impl Events for SqliteStore {
    async fn take_events(
        &self,
        consumer: &str,
        owner: &Owner,
        limit: i64,
        lease: Duration,
    ) -> Result<Option<Vec<Event>>> {
        let (consumer, owner) = (consumer.to_string(), owner.0.clone());
        // The lease in the writer; the events on a reader, after it
        // committed: the writer's time is intake's.
        let cursor = self
            .write(move |tx| {
                let now = Timestamp::now();
                // A new consumer starts at the end of the stream.
                tx.prepare_cached(
                    "INSERT OR IGNORE INTO event_cursors (consumer, seq)
                     VALUES (?1, (SELECT COALESCE(MAX(seq), 0) FROM events))",
                )?
                .execute(params![consumer])?;
                tx.prepare_cached(
                    "UPDATE event_cursors SET leased_by = ?2, lease_until = ?3
                     WHERE consumer = ?1
                       AND (leased_by IS NULL OR leased_by = ?2 OR lease_until < ?4)
                     RETURNING seq",
                )?
                .query_row(params![consumer, owner, now + lease, now], |r| {
                    r.get::<_, i64>(0)
                })
                .optional()
            })
            .await?;
        let Some(cursor) = cursor else {
            return Ok(None);
        };
        self.read(move |c| {
            c.prepare_cached("SELECT * FROM events WHERE seq > ? ORDER BY seq LIMIT ?")?
                .query_map(params![cursor, limit], event_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .await
        .map(Some)
    }

    async fn ack_events(
        &self,
        consumer: &str,
        owner: &Owner,
        through: EventPosition,
    ) -> Result<bool> {
        let (consumer, owner) = (consumer.to_string(), owner.0.clone());
        self.write(move |tx| {
            let held = tx
                .prepare_cached(
                    "UPDATE event_cursors SET seq = MAX(seq, ?3)
                     WHERE consumer = ?1 AND leased_by = ?2",
                )?
                .execute(params![consumer, owner, through.seq])?;
            Ok(held > 0)
        })
        .await
    }

    async fn prune_events(&self, before: Timestamp) -> Result<u64> {
        self.write(move |tx| {
            Ok(tx
                .prepare_cached("DELETE FROM events WHERE at < ?")?
                .execute(params![before])? as u64)
        })
        .await
    }
}
