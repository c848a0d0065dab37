//! The event stream on PostgreSQL. Replicas commit concurrently, so a
//! cursor is an (xid, seq) pair and a read stops at the oldest transaction
//! still running (see migration 0016): an event committed late, with a
//! lower `seq`, is never skipped.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::PgRow;

use super::{DB_NOW, DeploymentId, Owner, PgStore, Result};
use crate::store::Timestamp;
use crate::store::events::{Event, EventKind, EventPosition, Events};

fn event_from_row(r: &PgRow) -> Result<Event> {
    let kind: String = r.try_get("kind")?;
    Ok(Event {
        position: EventPosition {
            xid: r.try_get("xid")?,
            seq: r.try_get("seq")?,
        },
        at: r.try_get("at")?,
        kind: EventKind::parse(&kind).unwrap_or(EventKind::Status),
        deployment: r
            .try_get::<Option<i64>, _>("deployment_id")?
            .map(DeploymentId),
        repository: r.try_get("repository")?,
        environment: r.try_get("environment")?,
        state: r.try_get("state")?,
        description: r.try_get("description")?,
        actor: r.try_get("actor")?,
        until: r.try_get("until_at")?,
    })
}

#[async_trait]
impl Events for PgStore {
    async fn take_events(
        &self,
        consumer: &str,
        owner: &Owner,
        limit: i64,
        lease: Duration,
    ) -> Result<Option<Vec<Event>>> {
        // A new consumer starts at the end of the stream.
        sqlx::query(
            "INSERT INTO event_cursors (consumer, xid, seq)
             SELECT $1, COALESCE(MAX(xid), 0), COALESCE(MAX(seq), 0) FROM events
             ON CONFLICT (consumer) DO NOTHING",
        )
        .bind(consumer)
        .execute(&self.pool)
        .await?;
        let sql = format!(
            "UPDATE event_cursors SET leased_by = $2, lease_until = {DB_NOW} + $3
             WHERE consumer = $1
               AND (leased_by IS NULL OR leased_by = $2 OR lease_until < {DB_NOW})
             RETURNING xid, seq"
        );
        let cursor: Option<(i64, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(consumer)
            .bind(&owner.0)
            .bind(lease.as_millis() as i64)
            .fetch_optional(&self.pool)
            .await?;
        let Some((xid, seq)) = cursor else {
            return Ok(None);
        };
        let rows = sqlx::query(
            "SELECT * FROM events
             WHERE (xid, seq) > ($1, $2)
               AND xid < pg_snapshot_xmin(pg_current_snapshot())::text::bigint
             ORDER BY xid, seq LIMIT $3",
        )
        .bind(xid)
        .bind(seq)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(event_from_row)
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    async fn ack_events(
        &self,
        consumer: &str,
        owner: &Owner,
        through: EventPosition,
    ) -> Result<bool> {
        let mut conn = self.pool.acquire().await?;
        advance(&mut conn, consumer, owner, through).await
    }

    async fn prune_events(&self, before: Timestamp) -> Result<u64> {
        Ok(sqlx::query("DELETE FROM events WHERE at < $1")
            .bind(before)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }
}

/// Moves `consumer`'s cursor past `through` if `owner` holds its lease;
/// whether it did. Shared by [`Events::ack_events`] and the notifications'
/// fan-out, which moves it in the transaction that stores what it read.
pub(super) async fn advance(
    conn: &mut sqlx::PgConnection,
    consumer: &str,
    owner: &Owner,
    through: EventPosition,
) -> Result<bool> {
    let held = sqlx::query(
        "UPDATE event_cursors
            SET xid = CASE WHEN (xid, seq) < ($3, $4) THEN $3 ELSE xid END,
                seq = CASE WHEN (xid, seq) < ($3, $4) THEN $4 ELSE seq END
          WHERE consumer = $1 AND leased_by = $2",
    )
    .bind(consumer)
    .bind(&owner.0)
    .bind(through.xid)
    .bind(through.seq)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(held > 0)
}
