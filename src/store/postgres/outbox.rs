//! Which replica sends statuses: one at a time, holding the outbox's lease
//! in the database. One sender keeps each deployment's statuses in order
//! without a claim per status (a write per status, and a query that got
//! slower the longer the backlog); GitHub's rate limit, not one replica,
//! bounds how fast statuses go anyway. A sender that stops lets go of the
//! lease; one that dies holds it until it runs out ([`LEASE`]).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use sqlx::PgPool;

use crate::store::Owner;

/// How long the lease lasts unrenewed: as long as GitHub's request timeout
/// (15 s, in `github`), and short enough that a dead replica's `error`
/// statuses go out within the 30 s the SPEC allows.
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
        self.held_until.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether this replica may send now: takes or renews the lease when
    /// it is free, expired, or about to run out.
    pub async fn held(&self, pool: &PgPool) -> Result<bool, sqlx::Error> {
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
