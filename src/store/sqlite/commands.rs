//! Pull request commands on SQLite.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, Row, params};

use super::{DeploymentId, Owner, Result, SqliteStore, Timestamp, looks};
use crate::store::commands::*;

const TABLE: &str = "pr_commands";
const OPEN: &str = "done_at IS NULL";

fn record_from_row(r: &Row<'_>) -> rusqlite::Result<CommandRecord> {
    Ok(CommandRecord {
        seq: r.get("seq")?,
        command: NewCommand {
            repository: r.get("repository")?,
            comment_id: r.get("comment_id")?,
            number: r.get("number")?,
            login: r.get("login")?,
            line: r.get("line")?,
            installation_id: r.get("installation_id")?,
        },
        created_at: r.get("created_at")?,
        reacted: r.get("reacted")?,
        create_sent: r.get::<_, Option<i64>>("create_sent_at")?.is_some(),
        deployment: r.get::<_, Option<i64>>("deployment_id")?.map(DeploymentId),
        reply: r.get("reply_text")?,
        reply_sent: r.get::<_, Option<i64>>("reply_sent_at")?.is_some(),
        reply_id: r.get("reply_id")?,
        final_text: r.get("final_text")?,
        edited: r.get("edited")?,
        done: r.get::<_, Option<i64>>("done_at")?.is_some(),
    })
}

#[async_trait]
impl Commands for SqliteStore {
    async fn record_command(&self, c: &NewCommand) -> Result<bool> {
        let c = c.clone();
        self.write(move |tx| {
            let now = Timestamp::now();
            let n = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO pr_commands (repository, comment_id, number, login,
                         line, installation_id, created_at, next_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
                )?
                .execute(params![
                    c.repository,
                    c.comment_id,
                    c.number,
                    c.login,
                    c.line,
                    c.installation_id,
                    now
                ])?;
            Ok(n == 1)
        })
        .await
    }

    async fn due_commands(
        &self,
        owner: &Owner,
        now: Timestamp,
        until: Timestamp,
        limit: i64,
    ) -> Result<Vec<CommandRecord>> {
        let when = (now, until, limit);
        looks::take_due(self, TABLE, OPEN, owner, when, record_from_row).await
    }

    async fn change_command(&self, seq: i64, owner: &Owner, ch: &CommandChange) -> Result<bool> {
        let (owner, ch) = (owner.0.clone(), ch.clone());
        self.write(move |tx| {
            let n = tx
                .prepare_cached(
                    "UPDATE pr_commands SET
                         reacted = MAX(reacted, ?3),
                         create_sent_at = CASE WHEN ?4 THEN COALESCE(create_sent_at, ?11)
                                               ELSE create_sent_at END,
                         deployment_id = COALESCE(?5, deployment_id),
                         reply_text = COALESCE(?6, reply_text),
                         reply_sent_at = CASE WHEN ?7 THEN COALESCE(reply_sent_at, ?11)
                                              ELSE reply_sent_at END,
                         reply_id = COALESCE(?8, reply_id),
                         edited = MAX(edited, ?9),
                         done_at = CASE WHEN ?10 THEN ?11 ELSE done_at END,
                         lease_owner = CASE WHEN ?10 THEN NULL ELSE lease_owner END,
                         next_at = COALESCE(?12, next_at)
                     WHERE seq = ?1 AND lease_owner = ?2 AND done_at IS NULL",
                )?
                .execute(params![
                    seq,
                    owner,
                    ch.reacted,
                    ch.create_sent,
                    ch.deployment.map(|d| d.0),
                    ch.reply,
                    ch.reply_sent,
                    ch.reply_id,
                    ch.edited,
                    ch.done,
                    Timestamp::now(),
                    ch.lease_until
                ])?;
            Ok(n == 1)
        })
        .await
    }

    async fn command_later(&self, seq: i64, owner: &Owner, at: Timestamp) -> Result<bool> {
        looks::later(self, TABLE, OPEN, seq, owner, at).await
    }

    async fn park_command(&self, seq: i64, owner: &Owner) -> Result<bool> {
        let owner = owner.0.clone();
        self.write(move |tx| {
            let n = tx
                .prepare_cached(
                    "UPDATE pr_commands
                     SET next_at = CASE WHEN final_text IS NULL THEN ?1 ELSE ?2 END,
                         lease_owner = NULL
                     WHERE seq = ?3 AND lease_owner = ?4 AND done_at IS NULL",
                )?
                .execute(params![PARKED, Timestamp::now(), seq, owner])?;
            Ok(n == 1)
        })
        .await
    }

    async fn command_deployment_ended(&self, id: DeploymentId, text: &str) -> Result<u64> {
        let text = text.to_string();
        self.write(move |tx| {
            let n = tx
                .prepare_cached(
                    "UPDATE pr_commands
                     SET final_text = ?1,
                         next_at = CASE WHEN lease_owner IS NULL THEN ?2 ELSE next_at END
                     WHERE deployment_id = ?3 AND done_at IS NULL",
                )?
                .execute(params![text, Timestamp::now(), id.0])?;
            Ok(n as u64)
        })
        .await
    }

    async fn release_commands(&self) -> Result<u64> {
        looks::release(self, TABLE, OPEN).await
    }

    async fn command_of(&self, id: DeploymentId) -> Result<Option<CommandRecord>> {
        self.read(move |c| {
            c.prepare_cached(
                "SELECT * FROM pr_commands WHERE deployment_id = ? ORDER BY seq DESC LIMIT 1",
            )?
            .query_row(params![id.0], record_from_row)
            .optional()
        })
        .await
    }
}
