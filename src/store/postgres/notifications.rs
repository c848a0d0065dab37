//! Notifications on PostgreSQL: replicas claim the heads of each chain
//! with `FOR UPDATE SKIP LOCKED` and a lease, so each try is made by one.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::PgRow;

use super::{DB_NOW, DeploymentId, Owner, PgStore, Result};
use crate::store::Timestamp;
use crate::store::events::EventPosition;
use crate::store::notifications::*;

fn record_from_row(r: &PgRow) -> Result<NotificationRecord> {
    let state: String = r.try_get("state")?;
    let state = NotificationState::parse(&state).unwrap_or(NotificationState::Pending);
    let pending = state == NotificationState::Pending;
    Ok(NotificationRecord {
        sink: r.try_get("sink")?,
        event: r.try_get("event")?,
        delivery: r.try_get("delivery")?,
        state,
        attempts: r.try_get("attempts")?,
        created_at: r.try_get("created_at")?,
        next_try_at: if pending {
            r.try_get("next_try_at")?
        } else {
            None
        },
        last_error: r.try_get("last_error")?,
        done_at: r.try_get("done_at")?,
    })
}

#[async_trait]
impl Notifications for PgStore {
    async fn fan_out(
        &self,
        consumer: &str,
        owner: &Owner,
        notes: &[NewNotification],
        through: EventPosition,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let held = super::events::advance(&mut tx, consumer, owner, through).await?;
        if !held {
            return Ok(false);
        }
        // One statement for the batch: a burst fans out hundreds at a time.
        let col = |f: fn(&NewNotification) -> String| notes.iter().map(f).collect::<Vec<_>>();
        let num = |f: fn(&NewNotification) -> i64| notes.iter().map(f).collect::<Vec<_>>();
        sqlx::query(
            "INSERT INTO notifications
                 (sink, event, chain, deployment_id, delivery, body, created_at,
                  next_try_at, event_xid, event_seq)
             SELECT sink, event, chain, deployment_id, delivery, body, at, at, xid, seq
               FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[],
                           $6::text[], $7::bigint[], $8::bigint[], $9::bigint[])
                    AS n(sink, event, chain, deployment_id, delivery, body, at, xid, seq)
             ON CONFLICT (sink, event_xid, event_seq) DO NOTHING",
        )
        .bind(col(|n| n.sink.clone()))
        .bind(col(|n| n.event.clone()))
        .bind(col(|n| n.chain.clone()))
        .bind(
            notes
                .iter()
                .map(|n| n.deployment.map(|d| d.0))
                .collect::<Vec<_>>(),
        )
        .bind(col(|n| n.delivery.clone()))
        .bind(col(|n| n.body.clone()))
        .bind(notes.iter().map(|n| n.at).collect::<Vec<_>>())
        .bind(num(|n| n.position.xid))
        .bind(num(|n| n.position.seq))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn claim_notifications(
        &self,
        sink: &str,
        owner: &Owner,
        limit: i64,
        lease: Duration,
    ) -> Result<Vec<Notification>> {
        let sql = format!(
            "WITH due AS (
                 SELECT n.id FROM notifications n
                 WHERE n.sink = $1 AND n.state = 'pending' AND n.next_try_at <= {DB_NOW}
                   AND (n.lease_until IS NULL OR n.lease_until < {DB_NOW})
                   AND NOT EXISTS (
                       SELECT 1 FROM notifications p
                       WHERE p.sink = n.sink AND p.chain = n.chain
                         AND p.state = 'pending' AND p.id < n.id)
                 ORDER BY n.id LIMIT $3
                 FOR UPDATE SKIP LOCKED)
             UPDATE notifications n SET leased_by = $2, lease_until = {DB_NOW} + $4
               FROM due WHERE n.id = due.id
             RETURNING n.id, n.sink, n.event, n.deployment_id, n.delivery, n.body,
                       n.created_at, n.attempts,
                       (SELECT m.channel FROM slack_messages m
                         WHERE m.sink = n.sink AND m.deployment_id = n.deployment_id) AS channel,
                       (SELECT m.ts FROM slack_messages m
                         WHERE m.sink = n.sink AND m.deployment_id = n.deployment_id) AS ts"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(sink)
            .bind(&owner.0)
            .bind(limit)
            .bind(lease.as_millis() as i64)
            .fetch_all(&self.pool)
            .await?;
        let mut claimed = rows
            .iter()
            .map(|r| {
                let channel: Option<String> = r.try_get("channel")?;
                let ts: Option<String> = r.try_get("ts")?;
                Ok(Notification {
                    id: r.try_get("id")?,
                    sink: r.try_get("sink")?,
                    event: r.try_get("event")?,
                    deployment: r
                        .try_get::<Option<i64>, _>("deployment_id")?
                        .map(DeploymentId),
                    delivery: r.try_get("delivery")?,
                    body: r.try_get("body")?,
                    created_at: r.try_get("created_at")?,
                    attempts: r.try_get("attempts")?,
                    slack: channel
                        .zip(ts)
                        .map(|(channel, ts)| SlackMessage { channel, ts }),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        claimed.sort_by_key(|n| n.id);
        Ok(claimed)
    }

    async fn record_notifications(
        &self,
        owner: &Owner,
        tries: &[(i64, NotificationOutcome)],
    ) -> Result<Vec<bool>> {
        let mut tx = self.pool.begin().await?;
        let sql = format!(
            "UPDATE notifications
                SET state = $3, attempts = attempts + 1,
                    next_try_at = COALESCE($4, next_try_at),
                    last_error = COALESCE($5, last_error),
                    done_at = CASE WHEN $3 = 'pending' THEN NULL ELSE {DB_NOW} END,
                    leased_by = NULL, lease_until = NULL
              WHERE id = $1 AND leased_by = $2 AND state = 'pending'
              RETURNING sink, deployment_id"
        );
        let mut recorded = Vec::with_capacity(tries.len());
        for (id, outcome) in tries {
            let (state, next, error) = outcome.columns();
            let row: Option<(String, Option<i64>)> =
                sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
                    .bind(id)
                    .bind(&owner.0)
                    .bind(state.as_str())
                    .bind(next)
                    .bind(error)
                    .fetch_optional(&mut *tx)
                    .await?;
            if let (Some((sink, Some(d))), NotificationOutcome::Delivered { slack: Some(m) }) =
                (&row, outcome)
            {
                sqlx::query(
                    "INSERT INTO slack_messages (sink, deployment_id, channel, ts)
                     VALUES ($1, $2, $3, $4)
                     ON CONFLICT (sink, deployment_id)
                     DO UPDATE SET channel = EXCLUDED.channel, ts = EXCLUDED.ts",
                )
                .bind(sink)
                .bind(d)
                .bind(&m.channel)
                .bind(&m.ts)
                .execute(&mut *tx)
                .await?;
            }
            recorded.push(row.is_some());
        }
        tx.commit().await?;
        Ok(recorded)
    }

    async fn release_notifications(&self) -> Result<u64> {
        Ok(sqlx::query(
            "UPDATE notifications SET leased_by = NULL, lease_until = NULL
             WHERE state = 'pending' AND leased_by IS NOT NULL",
        )
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    async fn notifications_of(&self, deployment: DeploymentId) -> Result<Vec<NotificationRecord>> {
        let rows = sqlx::query("SELECT * FROM notifications WHERE deployment_id = $1 ORDER BY id")
            .bind(deployment.0)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(record_from_row).collect()
    }

    async fn pending_notifications(&self) -> Result<Vec<(String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT sink, COUNT(*) FROM notifications
             WHERE state = 'pending' GROUP BY sink ORDER BY sink",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    async fn prune_notifications(&self, before: Timestamp) -> Result<u64> {
        let n = sqlx::query("DELETE FROM notifications WHERE state <> 'pending' AND done_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await?
            .rows_affected();
        sqlx::query(
            "DELETE FROM slack_messages m WHERE NOT EXISTS (
                 SELECT 1 FROM notifications n
                 WHERE n.sink = m.sink AND n.deployment_id = m.deployment_id)",
        )
        .execute(&self.pool)
        .await?;
        Ok(n)
    }
}
