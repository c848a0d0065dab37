//! The outbox of statuses for GitHub on SQLite: heads due in order per
//! deployment, urgent ones first, and what became of each post.

use async_trait::async_trait;

use super::*;
use crate::store::Timestamp;
use crate::store::{Outbox, PendingStatuses, StatusRecord};

#[async_trait]
impl Outbox for SqliteStore {
    async fn due_statuses(&self, now: Timestamp, limit: i64) -> Result<Vec<OutboxItem>> {
        self.read(move |c| {
            let item = |r: &Row<'_>| {
                let state: String = r.get("state")?;
                Ok(OutboxItem {
                    seq: r.get("seq")?,
                    deployment_id: DeploymentId(r.get("deployment_id")?),
                    repository: r.get("repository")?,
                    installation_id: r.get("installation_id")?,
                    attempts: r.get("attempts")?,
                    superseded: r.get("superseded")?,
                    in_doubt: r.get("in_doubt")?,
                    status: NewStatus {
                        state: StatusState::parse(&state)
                            .ok_or_else(|| bad_column(2, format!("status {state:?}")))?,
                        description: r.get("description")?,
                        log_url: r.get("log_url")?,
                        environment_url: r.get("environment_url")?,
                        auto_inactive: r.get("auto_inactive")?,
                    },
                })
            };
            // Heads of running and just-finished deployments first (few,
            // found through their own index), then the backlog in order.
            let urgent: Vec<OutboxItem> = c
                .prepare_cached(&format!(
                    "{OUTBOX_ITEM} ON d.id = o.deployment_id
                     WHERE o.next_attempt_at <= ?1 AND o.seq IN (
                         SELECT (SELECT MIN(p.seq) FROM status_outbox p
                                     INDEXED BY status_outbox_pending
                                 WHERE p.deployment_id = u.deployment_id
                                   AND p.sent_at IS NULL AND p.failed_at IS NULL)
                         FROM status_outbox u INDEXED BY status_outbox_urgent
                         WHERE u.sent_at IS NULL AND u.failed_at IS NULL
                           AND u.state NOT IN ('queued', 'inactive'))
                     ORDER BY o.seq LIMIT ?2"
                ))?
                .query_map(params![now, limit], item)?
                .collect::<rusqlite::Result<_>>()?;
            let backlog: Vec<OutboxItem> = c
                .prepare_cached(&format!(
                    "{OUTBOX_ITEM} INDEXED BY status_outbox_pending_seq ON d.id = o.deployment_id
                     WHERE o.sent_at IS NULL AND o.failed_at IS NULL AND o.next_attempt_at <= ?
                       AND NOT EXISTS (
                           SELECT 1 FROM status_outbox p INDEXED BY status_outbox_pending
                           WHERE p.deployment_id = o.deployment_id AND p.seq < o.seq
                             AND p.sent_at IS NULL AND p.failed_at IS NULL)
                     ORDER BY o.seq LIMIT ?"
                ))?
                .query_map(params![now, limit], item)?
                .collect::<rusqlite::Result<_>>()?;
            Ok(crate::store::urgent_first(urgent, backlog, limit))
        })
        .await
    }

    async fn next_status_due(&self) -> Result<Option<Timestamp>> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT MIN(next_attempt_at) FROM status_outbox
                 WHERE sent_at IS NULL AND failed_at IS NULL",
            )?
            .query_row([], |r| r.get(0))
        })
        .await
    }

    async fn awaiting_github(&self) -> Result<std::collections::HashSet<DeploymentId>> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT DISTINCT deployment_id FROM status_outbox
                 WHERE sent_at IS NULL AND failed_at IS NULL",
            )?
            .query_map([], |r| Ok(DeploymentId(r.get(0)?)))?
            .collect()
        })
        .await
    }

    async fn pending_summary(&self) -> Result<PendingStatuses> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT COUNT(*), MIN(created_at) FROM status_outbox
                 WHERE sent_at IS NULL AND failed_at IS NULL",
            )?
            .query_row([], |r| {
                Ok(PendingStatuses {
                    count: r.get(0)?,
                    oldest_at: r.get(1)?,
                })
            })
        })
        .await
    }

    async fn statuses_of(&self, id: DeploymentId) -> Result<Vec<StatusRecord>> {
        self.read(move |c| {
            c.prepare_cached("SELECT * FROM status_outbox WHERE deployment_id = ? ORDER BY seq")?
                .query_map(params![id.0], |r| {
                    let state: String = r.get("state")?;
                    Ok(StatusRecord {
                        state: StatusState::parse(&state).unwrap_or(StatusState::Error),
                        description: r.get("description")?,
                        log_url: r.get("log_url")?,
                        created_at: r.get("created_at")?,
                        attempts: r.get("attempts")?,
                        next_attempt_at: r.get("next_attempt_at")?,
                        sent_at: r.get("sent_at")?,
                        failed_at: r.get("failed_at")?,
                        last_error: r.get("last_error")?,
                        in_doubt: r.get::<_, Option<i64>>("tried_at")?.is_some(),
                    })
                })?
                .collect()
        })
        .await
    }

    /// In the writer's next commit: one fsync shared with the deliveries
    /// arriving now.
    async fn record_posts(&self, posts: &[(i64, PostOutcome)]) -> Result<()> {
        if posts.is_empty() {
            return Ok(());
        }
        let (reply, answer) = oneshot::channel();
        self.writer
            .send(Message::Record {
                posts: posts.to_vec(),
                reply,
            })
            .await
            .map_err(|_| Error::Closed)?;
        answer.await.map_err(|_| Error::Closed)?
    }
}
