//! The outbox of statuses for GitHub on PostgreSQL: heads due in order per
//! deployment, urgent ones first, and what became of each post.
//!
//! Which replica sends statuses: one at a time, holding the outbox's lease
//! in the database. One sender keeps each deployment's statuses in order
//! without a claim per status (a write per status, and a query that got
//! slower the longer the backlog); GitHub's rate limit, not one replica,
//! bounds how fast statuses go anyway. A sender that stops lets go of the
//! lease; one that dies holds it until it runs out ([`LEASE`]).

use crate::store::{PendingStatuses, StatusRecord, StatusState};
use crate::sync::LockExt;
use async_trait::async_trait;

use super::*;
use crate::store::Outbox;
use crate::store::Owner;
use crate::store::Timestamp;
use sqlx::PgPool;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What [`OutboxItem`] is read from: a status and its deployment.
macro_rules! outbox_item {
    () => {
        "SELECT o.seq, o.deployment_id, o.state, o.description, o.log_url,
             o.environment_url, o.auto_inactive, o.attempts, d.repository, d.installation_id,
             (o.state = 'queued' AND d.state = 'inactive') AS superseded,
             o.tried_at IS NOT NULL AS in_doubt
         FROM status_outbox o JOIN deployments d ON d.id = o.deployment_id"
    };
}

/// The heads (first pending status) of running and just-finished
/// deployments, due by `$1`, at most `$2`: few, found through their own
/// index, and sent before the backlog. The head test is a correlated MIN,
/// not NOT EXISTS: PostgreSQL turned that into a hash anti-join over every
/// pending status (29 ms a look with a burst's backlog).
pub const URGENT_HEADS: &str = concat!(
    outbox_item!(),
    " WHERE o.next_attempt_at <= $1 AND o.seq IN (
         SELECT (SELECT MIN(p.seq) FROM status_outbox p
                 WHERE p.deployment_id = u.deployment_id
                   AND p.sent_at IS NULL AND p.failed_at IS NULL)
         FROM status_outbox u
         WHERE u.sent_at IS NULL AND u.failed_at IS NULL
           AND u.state NOT IN ('queued', 'inactive'))
     ORDER BY o.seq LIMIT $2"
);

/// The backlog's heads in order, due by `$1`, at most `$2`: the pending
/// `queued` and `inactive` statuses walked in order (status_outbox_backlog),
/// stopping at `$2` heads. Only those states: a deployment whose head is of
/// another state is urgent, and an index of every pending status in order
/// is one the planner also walked for each head's MIN (migration 0013).
pub const BACKLOG_HEADS: &str = concat!(
    outbox_item!(),
    " WHERE o.sent_at IS NULL AND o.failed_at IS NULL
       AND o.state IN ('queued', 'inactive') AND o.next_attempt_at <= $1
       AND o.seq = (
           SELECT MIN(p.seq) FROM status_outbox p
           WHERE p.deployment_id = o.deployment_id
             AND p.sent_at IS NULL AND p.failed_at IS NULL)
     ORDER BY o.seq LIMIT $2"
);

#[async_trait]
impl Outbox for PgStore {
    /// Only the replica holding the outbox's lease gets any: one sends at
    /// a time (see `outbox`).
    async fn due_statuses(&self, now: Timestamp, limit: i64) -> Result<Vec<OutboxItem>> {
        if !self.outbox.held(&self.pool).await? {
            return Ok(Vec::new());
        }
        let heads = |query: &'static str| {
            sqlx::query(query)
                .bind(now)
                .bind(limit)
                .fetch_all(&self.pool)
        };
        let urgent = heads(URGENT_HEADS).await?;
        let backlog = heads(BACKLOG_HEADS).await?;
        let items = |rows: Vec<PgRow>| -> Result<Vec<OutboxItem>> {
            rows.iter().map(outbox_item).collect()
        };
        Ok(crate::store::urgent_first(
            items(urgent)?,
            items(backlog)?,
            limit,
        ))
    }

    async fn next_status_due(&self) -> Result<Option<Timestamp>> {
        if !self.outbox.held(&self.pool).await? {
            return Ok(None);
        }
        Ok(sqlx::query_scalar(
            "SELECT MIN(next_attempt_at) FROM status_outbox
             WHERE sent_at IS NULL AND failed_at IS NULL",
        )
        .fetch_one(&self.pool)
        .await?)
    }

    async fn awaiting_github(&self) -> Result<std::collections::HashSet<DeploymentId>> {
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT DISTINCT deployment_id FROM status_outbox
             WHERE sent_at IS NULL AND failed_at IS NULL",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(ids.into_iter().map(DeploymentId).collect())
    }

    async fn pending_summary(&self) -> Result<PendingStatuses> {
        let (count, oldest_at): (i64, Option<Timestamp>) = sqlx::query_as(
            "SELECT COUNT(*), MIN(created_at) FROM status_outbox
             WHERE sent_at IS NULL AND failed_at IS NULL",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(PendingStatuses { count, oldest_at })
    }

    async fn statuses_of(&self, id: DeploymentId) -> Result<Vec<StatusRecord>> {
        let rows = sqlx::query("SELECT * FROM status_outbox WHERE deployment_id = $1 ORDER BY seq")
            .bind(id.0)
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let state: String = r.try_get("state")?;
            out.push(StatusRecord {
                state: StatusState::parse(&state).unwrap_or(StatusState::Error),
                description: r.try_get("description")?,
                log_url: r.try_get("log_url")?,
                created_at: r.try_get("created_at")?,
                attempts: i64::from(r.try_get::<i32, _>("attempts")?),
                next_attempt_at: r.try_get("next_attempt_at")?,
                sent_at: r.try_get("sent_at")?,
                failed_at: r.try_get("failed_at")?,
                last_error: r.try_get("last_error")?,
                in_doubt: r.try_get::<Option<i64>, _>("tried_at")?.is_some(),
            });
        }
        Ok(out)
    }

    async fn record_posts(&self, posts: &[(i64, PostOutcome)]) -> Result<()> {
        if posts.is_empty() {
            return Ok(());
        }
        let now = Timestamp::now();
        let mut tx = self.pool.begin().await?;
        for (seq, outcome) in posts {
            let query = match outcome {
                PostOutcome::Sent | PostOutcome::Confirmed => sqlx::query(
                    "UPDATE status_outbox SET sent_at = $1, attempts = attempts + 1 WHERE seq = $2",
                )
                .bind(now)
                .bind(seq),
                PostOutcome::Trying => {
                    sqlx::query("UPDATE status_outbox SET tried_at = $1 WHERE seq = $2")
                        .bind(now)
                        .bind(seq)
                }
                PostOutcome::Unanswered { at, error } => sqlx::query(
                    "UPDATE status_outbox SET next_attempt_at = $1, attempts = attempts + 1, \
                     last_error = $2 WHERE seq = $3",
                )
                .bind(at)
                .bind(error)
                .bind(seq),
                PostOutcome::Coalesced => sqlx::query(
                    "UPDATE status_outbox SET failed_at = $1, last_error = $2 WHERE seq = $3",
                )
                .bind(now)
                .bind(crate::store::COALESCED)
                .bind(seq),
                PostOutcome::RetryAt { at, error } => sqlx::query(
                    "UPDATE status_outbox SET next_attempt_at = $1, attempts = attempts + 1, \
                     last_error = $2, tried_at = NULL WHERE seq = $3",
                )
                .bind(at)
                .bind(error)
                .bind(seq),
                PostOutcome::Failed { error } => sqlx::query(
                    "UPDATE status_outbox SET failed_at = $1, attempts = attempts + 1, \
                     last_error = $2 WHERE seq = $3",
                )
                .bind(now)
                .bind(error)
                .bind(seq),
            };
            query.execute(&mut *tx).await?;
        }
        Ok(tx.commit().await?)
    }
}

/// How long the lease lasts unrenewed: as long as GitHub's request timeout
/// (15 s, in `github`), and short enough that a dead replica's `error`
/// statuses go out within the 30 s docs/reference.md allows.
const LEASE: Duration = Duration::from_secs(15);
/// Renewed when less than this is left; an idle outbox asks every 5 s.
const RENEW_BELOW: Duration = Duration::from_secs(10);

pub struct OutboxLease {
    owner: Owner,
    /// Until when this replica holds it, as far as it knows.
    held_until: Mutex<Option<Instant>>,
}

impl OutboxLease {
    pub fn new(owner: Owner) -> OutboxLease {
        OutboxLease {
            owner,
            held_until: Mutex::new(None),
        }
    }

    fn until(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.held_until.locked()
    }

    /// Whether this replica may send now: takes or renews the lease when
    /// it is free, expired, or about to run out.
    pub async fn held(&self, pool: &PgPool) -> std::result::Result<bool, sqlx::Error> {
        let asked = Instant::now();
        if self
            .until()
            .is_some_and(|u| u > asked + (LEASE - RENEW_BELOW))
        {
            return Ok(true);
        }
        let got: Option<i32> = sqlx::query_scalar(
            "INSERT INTO ferry_leases (name, owner, until) VALUES ('outbox', $1, clock_timestamp() + make_interval(secs => $2))
             ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, until = excluded.until
             WHERE ferry_leases.owner = excluded.owner OR ferry_leases.until < clock_timestamp()
             RETURNING 1",
        )
        .bind(&self.owner.0)
        .bind(LEASE.as_secs_f64())
        .fetch_optional(pool)
        .await?;
        // Counted from before the question: never believed longer than true.
        *self.until() = got.map(|_| asked + LEASE);
        Ok(got.is_some())
    }

    /// Lets go at shutdown, so that another replica sends at once.
    pub async fn release(&self, pool: &PgPool) {
        if self.until().take().is_some() {
            let _ = sqlx::query("DELETE FROM ferry_leases WHERE name = 'outbox' AND owner = $1")
                .bind(&self.owner.0)
                .execute(pool)
                .await;
        }
    }
}
