//! Rows that are work looked at under a lease (auto-deploy candidates,
//! pull request commands, protection rule runs): the same three moves on
//! each table, written once; each due look is taken by one replica
//! (`FOR UPDATE SKIP LOCKED`). `table` and `open` (the SQL condition of a
//! row still to be worked on) are ferry's own constants, never data.

use sqlx::Row;
use sqlx::postgres::PgRow;

use super::{Owner, PgStore, Result, Timestamp};

/// The open rows of `table` due by `now`, oldest first, at most `limit`,
/// each leased to `owner` until `until` (its next look moves there).
pub(super) async fn take_due<T>(
    store: &PgStore,
    table: &'static str,
    open: &'static str,
    owner: &Owner,
    (now, until, limit): (Timestamp, Timestamp, i64),
    map: fn(&PgRow) -> std::result::Result<T, sqlx::Error>,
) -> Result<Vec<T>> {
    let sql = format!(
        "UPDATE {table} SET next_at = $1, lease_owner = $2 WHERE seq IN (
             SELECT seq FROM {table} WHERE {open} AND next_at <= $3
             ORDER BY seq LIMIT $4 FOR UPDATE SKIP LOCKED)
         RETURNING *"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(until)
        .bind(&owner.0)
        .bind(now)
        .bind(limit)
        .fetch_all(&store.pool)
        .await?;
    let mut due = rows
        .iter()
        .map(|r| Ok((r.try_get::<i64, _>("seq")?, map(r)?)))
        .collect::<std::result::Result<Vec<_>, sqlx::Error>>()?;
    due.sort_by_key(|(seq, _)| *seq);
    Ok(due.into_iter().map(|(_, t)| t).collect())
}

/// Row `seq` is looked at again at `at`, its lease let go; false when
/// `owner` no longer holds it or it is no longer open.
pub(super) async fn later(
    store: &PgStore,
    table: &'static str,
    open: &'static str,
    seq: i64,
    owner: &Owner,
    at: Timestamp,
) -> Result<bool> {
    let sql = format!(
        "UPDATE {table} SET next_at = $1, lease_owner = NULL
         WHERE seq = $2 AND lease_owner = $3 AND {open}"
    );
    let n = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(at)
        .bind(seq)
        .bind(&owner.0)
        .execute(&store.pool)
        .await?
        .rows_affected();
    Ok(n == 1)
}

/// At the start of a process that uses the store alone: the last one's
/// leased looks are due at once. How many.
pub(super) async fn release(
    store: &PgStore,
    table: &'static str,
    open: &'static str,
) -> Result<u64> {
    let sql = format!(
        "UPDATE {table} SET lease_owner = NULL, next_at = LEAST(next_at, $1)
         WHERE {open} AND lease_owner IS NOT NULL"
    );
    Ok(sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(Timestamp::now())
        .execute(&store.pool)
        .await?
        .rows_affected())
}
