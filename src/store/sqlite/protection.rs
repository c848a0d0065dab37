//! Runs waiting at the deployment protection rule, on SQLite.

use async_trait::async_trait;
use rusqlite::{Row, params};

use super::{Owner, Result, SqliteStore, Timestamp, looks};
use crate::store::protection::*;

const TABLE: &str = "protection_runs";
const OPEN: &str = "state = 'waiting'";

fn run_from_row(r: &Row<'_>) -> rusqlite::Result<WaitingRun> {
    Ok(WaitingRun {
        seq: r.get("seq")?,
        run: NewRun {
            repository: r.get("repository")?,
            environment: r.get("environment")?,
            run_id: r.get("run_id")?,
            callback_url: r.get("callback_url")?,
            installation_id: r.get("installation_id")?,
        },
        since: r.get("since")?,
        reported: r.get("reported")?,
    })
}

#[async_trait]
impl ProtectionRuns for SqliteStore {
    async fn record_run(&self, run: &NewRun) -> Result<bool> {
        let run = run.clone();
        self.write(move |tx| {
            let now = Timestamp::now();
            let n = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO protection_runs (repository, environment, run_id,
                         callback_url, installation_id, since, next_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
                )?
                .execute(params![
                    run.repository,
                    run.environment,
                    run.run_id,
                    run.callback_url,
                    run.installation_id,
                    now
                ])?;
            Ok(n == 1)
        })
        .await
    }

    async fn due_runs(
        &self,
        owner: &Owner,
        now: Timestamp,
        until: Timestamp,
        limit: i64,
    ) -> Result<Vec<WaitingRun>> {
        let when = (now, until, limit);
        looks::take_due(self, TABLE, OPEN, owner, when, run_from_row).await
    }

    async fn run_later(
        &self,
        seq: i64,
        owner: &Owner,
        at: Timestamp,
        reported: Option<&str>,
    ) -> Result<bool> {
        let (owner, reported) = (owner.0.clone(), reported.map(str::to_string));
        self.write(move |tx| {
            let n = tx
                .prepare_cached(
                    "UPDATE protection_runs SET next_at = ?1, lease_owner = NULL,
                         reported = COALESCE(?2, reported)
                     WHERE seq = ?3 AND lease_owner = ?4 AND state = 'waiting'",
                )?
                .execute(params![at, reported, seq, owner])?;
            Ok(n == 1)
        })
        .await
    }

    async fn end_run(&self, seq: i64, owner: &Owner, end: RunEnd) -> Result<bool> {
        let owner = owner.0.clone();
        self.write(move |tx| {
            let n = tx
                .prepare_cached(
                    "UPDATE protection_runs SET state = ?1, done_at = ?2, lease_owner = NULL
                     WHERE seq = ?3 AND lease_owner = ?4 AND state = 'waiting'",
                )?
                .execute(params![end.as_str(), Timestamp::now(), seq, owner])?;
            Ok(n == 1)
        })
        .await
    }

    async fn waiting_runs(&self) -> Result<Vec<WaitingRun>> {
        self.read(|c| {
            c.prepare_cached("SELECT * FROM protection_runs WHERE state = 'waiting' ORDER BY seq")?
                .query_map([], run_from_row)?
                .collect()
        })
        .await
    }

    async fn release_runs(&self) -> Result<u64> {
        looks::release(self, TABLE, OPEN).await
    }
}
