//! Rows that are work looked at under a lease (auto-deploy candidates,
//! pull request commands, protection rule runs): the same three moves on
//! each table, written once. `table` and `open` (the SQL condition of a
//! row still to be worked on) are ferry's own constants, never data.

use rusqlite::{OptionalExtension, Row, params};

use super::{Owner, Result, SqliteStore, Timestamp};

/// The open rows of `table` due by `now`, oldest first, at most `limit`,
/// each leased to `owner` until `until` (its next look moves there).
pub(super) async fn take_due<T: Send + 'static>(
    store: &SqliteStore,
    table: &'static str,
    open: &'static str,
    owner: &Owner,
    (now, until, limit): (Timestamp, Timestamp, i64),
    map: fn(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>> {
    // Asked every second: a read finds "nothing" without the writer.
    let any = store
        .read(move |c| {
            c.prepare_cached(&format!(
                "SELECT seq FROM {table} WHERE {open} AND next_at <= ? LIMIT 1"
            ))?
            .query_row(params![now], |r| r.get::<_, i64>(0))
            .optional()
        })
        .await?;
    if any.is_none() {
        return Ok(Vec::new());
    }
    let owner = owner.0.clone();
    store
        .write(move |tx| {
            let mut due: Vec<(i64, T)> = tx
                .prepare_cached(&format!(
                    "UPDATE {table} SET next_at = ?1, lease_owner = ?2 WHERE seq IN (
                         SELECT seq FROM {table}
                         WHERE {open} AND next_at <= ?3 ORDER BY seq LIMIT ?4)
                     RETURNING *"
                ))?
                .query_map(params![until, owner, now, limit], |r| {
                    Ok((r.get("seq")?, map(r)?))
                })?
                .collect::<rusqlite::Result<_>>()?;
            due.sort_by_key(|(seq, _)| *seq);
            Ok(due.into_iter().map(|(_, t)| t).collect())
        })
        .await
}

/// Row `seq` is looked at again at `at`, its lease let go; false when
/// `owner` no longer holds it or it is no longer open.
pub(super) async fn later(
    store: &SqliteStore,
    table: &'static str,
    open: &'static str,
    seq: i64,
    owner: &Owner,
    at: Timestamp,
) -> Result<bool> {
    let owner = owner.0.clone();
    store
        .write(move |tx| {
            let n = tx
                .prepare_cached(&format!(
                    "UPDATE {table} SET next_at = ?1, lease_owner = NULL
                     WHERE seq = ?2 AND lease_owner = ?3 AND {open}"
                ))?
                .execute(params![at, seq, owner])?;
            Ok(n == 1)
        })
        .await
}

/// At the start of a process that uses the store alone: the last one's
/// leased looks are due at once. How many.
pub(super) async fn release(
    store: &SqliteStore,
    table: &'static str,
    open: &'static str,
) -> Result<u64> {
    store
        .write(move |tx| {
            let n = tx
                .prepare_cached(&format!(
                    "UPDATE {table} SET lease_owner = NULL, next_at = MIN(next_at, ?1)
                     WHERE {open} AND lease_owner IS NOT NULL"
                ))?
                .execute(params![Timestamp::now()])?;
            Ok(n as u64)
        })
        .await
}
