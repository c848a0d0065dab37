//! Notifications on SQLite: one writer, so a claim is an UPDATE of the
//! heads of each chain in one transaction.

use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{OptionalExtension, Row, params};

use super::{DeploymentId, Owner, Result, SqliteStore, Timestamp};
use crate::store::events::EventPosition;
use crate::store::notifications::*;

fn record_from_row(r: &Row<'_>) -> rusqlite::Result<NotificationRecord> {
    let state: String = r.get("state")?;
    let state = NotificationState::parse(&state).unwrap_or(NotificationState::Pending);
    let pending = state == NotificationState::Pending;
    Ok(NotificationRecord {
        sink: r.get("sink")?,
        event: r.get("event")?,
        delivery: r.get("delivery")?,
        state,
        attempts: r.get("attempts")?,
        created_at: r.get("created_at")?,
        next_try_at: if pending { r.get("next_try_at")? } else { None },
        last_error: r.get("last_error")?,
        done_at: r.get("done_at")?,
    })
}

#[async_trait]
impl Notifications for SqliteStore {
    async fn fan_out(
        &self,
        consumer: &str,
        owner: &Owner,
        notes: &[NewNotification],
        through: EventPosition,
    ) -> Result<bool> {
        let (consumer, owner, notes) = (consumer.to_string(), owner.0.clone(), notes.to_vec());
        self.write(move |tx| {
            let held = tx
                .prepare_cached(
                    "UPDATE event_cursors SET seq = MAX(seq, ?3)
                     WHERE consumer = ?1 AND leased_by = ?2",
                )?
                .execute(params![consumer, owner, through.seq])?;
            if held == 0 {
                return Ok(false);
            }
            let mut insert = tx.prepare_cached(
                "INSERT OR IGNORE INTO notifications
                     (sink, event, chain, deployment_id, delivery, body, created_at,
                      next_try_at, event_xid, event_seq)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8, ?9)",
            )?;
            for n in &notes {
                insert.execute(params![
                    n.sink,
                    n.event,
                    n.chain,
                    n.deployment.map(|d| d.0),
                    n.delivery,
                    n.body,
                    n.at,
                    n.position.xid,
                    n.position.seq
                ])?;
            }
            Ok(true)
        })
        .await
    }

    async fn claim_notifications(
        &self,
        sink: &str,
        owner: &Owner,
        limit: i64,
        lease: Duration,
    ) -> Result<Vec<Notification>> {
        let (sink, owner) = (sink.to_string(), owner.0.clone());
        self.write(move |tx| {
            let now = Timestamp::now();
            let ids: Vec<i64> = tx
                .prepare_cached(
                    "SELECT n.id FROM notifications n INDEXED BY notifications_due
                     WHERE n.sink = ?1 AND n.state = 'pending' AND n.next_try_at <= ?2
                       AND (n.lease_until IS NULL OR n.lease_until < ?2)
                       AND NOT EXISTS (
                           SELECT 1 FROM notifications p INDEXED BY notifications_heads
                           WHERE p.sink = n.sink AND p.chain = n.chain
                             AND p.state = 'pending' AND p.id < n.id)
                     ORDER BY n.id LIMIT ?3",
                )?
                .query_map(params![sink, now, limit], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            let mut claimed = Vec::with_capacity(ids.len());
            let mut take = tx.prepare_cached(
                "UPDATE notifications SET leased_by = ?2, lease_until = ?3 WHERE id = ?1
                 RETURNING id, sink, event, deployment_id, delivery, body, created_at, attempts",
            )?;
            let mut message = tx.prepare_cached(
                "SELECT channel, ts FROM slack_messages WHERE sink = ?1 AND deployment_id = ?2",
            )?;
            for id in ids {
                let mut n = take.query_row(params![id, owner, now + lease], |r| {
                    Ok(Notification {
                        id: r.get(0)?,
                        sink: r.get(1)?,
                        event: r.get(2)?,
                        deployment: r.get::<_, Option<i64>>(3)?.map(DeploymentId),
                        delivery: r.get(4)?,
                        body: r.get(5)?,
                        created_at: r.get(6)?,
                        attempts: r.get(7)?,
                        slack: None,
                    })
                })?;
                if let Some(d) = n.deployment {
                    n.slack = message
                        .query_row(params![n.sink, d.0], |r| {
                            Ok(SlackMessage {
                                channel: r.get(0)?,
                                ts: r.get(1)?,
                            })
                        })
                        .optional()?;
                }
                claimed.push(n);
            }
            Ok(claimed)
        })
        .await
    }

    async fn record_notifications(
        &self,
        owner: &Owner,
        tries: &[(i64, NotificationOutcome)],
    ) -> Result<Vec<bool>> {
        let (owner, tries) = (owner.0.clone(), tries.to_vec());
        self.write(move |tx| {
            let now = Timestamp::now();
            let mut update = tx.prepare_cached(
                "UPDATE notifications
                    SET state = ?3, attempts = attempts + 1,
                        next_try_at = COALESCE(?4, next_try_at),
                        last_error = COALESCE(?5, last_error), done_at = ?6,
                        leased_by = NULL, lease_until = NULL
                  WHERE id = ?1 AND leased_by = ?2 AND state = 'pending'
                  RETURNING sink, deployment_id",
            )?;
            let mut message = tx.prepare_cached(
                "INSERT INTO slack_messages (sink, deployment_id, channel, ts)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (sink, deployment_id)
                 DO UPDATE SET channel = excluded.channel, ts = excluded.ts",
            )?;
            let mut recorded = Vec::with_capacity(tries.len());
            for (id, outcome) in &tries {
                let (state, next, error) = outcome.columns();
                let done = (state != NotificationState::Pending).then_some(now);
                let state = state.as_str();
                let row: Option<(String, Option<i64>)> = update
                    .query_row(params![id, owner, state, next, error, done], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })
                    .optional()?;
                if let (Some((sink, Some(d))), NotificationOutcome::Delivered { slack: Some(m) }) =
                    (&row, outcome)
                {
                    message.execute(params![sink, d, m.channel, m.ts])?;
                }
                recorded.push(row.is_some());
            }
            Ok(recorded)
        })
        .await
    }

    async fn release_notifications(&self) -> Result<u64> {
        self.write(|tx| {
            Ok(tx
                .prepare_cached(
                    "UPDATE notifications SET leased_by = NULL, lease_until = NULL
                     WHERE state = 'pending' AND leased_by IS NOT NULL",
                )?
                .execute([])? as u64)
        })
        .await
    }

    async fn notifications_of(&self, deployment: DeploymentId) -> Result<Vec<NotificationRecord>> {
        self.read(move |c| {
            c.prepare_cached(
                "SELECT * FROM notifications INDEXED BY notifications_of
                 WHERE deployment_id = ? ORDER BY id",
            )?
            .query_map(params![deployment.0], record_from_row)?
            .collect()
        })
        .await
    }

    async fn pending_notifications(&self) -> Result<Vec<(String, i64)>> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT sink, COUNT(*) FROM notifications INDEXED BY notifications_due
                 WHERE state = 'pending' GROUP BY sink ORDER BY sink",
            )?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect()
        })
        .await
    }

    async fn prune_notifications(&self, before: Timestamp) -> Result<u64> {
        self.write(move |tx| {
            let n = tx
                .prepare_cached(
                    "DELETE FROM notifications WHERE state <> 'pending' AND done_at < ?",
                )?
                .execute(params![before])?;
            tx.prepare_cached(
                "DELETE FROM slack_messages WHERE NOT EXISTS (
                     SELECT 1 FROM notifications n
                     WHERE n.sink = slack_messages.sink
                       AND n.deployment_id = slack_messages.deployment_id)",
            )?
            .execute([])?;
            Ok(n as u64)
        })
        .await
    }
}
