//! Pull request commands on PostgreSQL: the unique key decides between
//! replicas receiving the same comment, and each due look is taken by one
//! replica (`FOR UPDATE SKIP LOCKED`).

use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::PgRow;

use super::{DeploymentId, Owner, PgStore, Result, Timestamp, looks};
use crate::store::commands::*;

const TABLE: &str = "pr_commands";
const OPEN: &str = "done_at IS NULL";

fn record_from_row(r: &PgRow) -> std::result::Result<CommandRecord, sqlx::Error> {
    Ok(CommandRecord {
        seq: r.try_get("seq")?,
        command: NewCommand {
            repository: r.try_get("repository")?,
            comment_id: r.try_get("comment_id")?,
            number: r.try_get("number")?,
            login: r.try_get("login")?,
            line: r.try_get("line")?,
            installation_id: r.try_get("installation_id")?,
        },
        created_at: r.try_get("created_at")?,
        reacted: r.try_get("reacted")?,
        create_sent: r.try_get::<Option<i64>, _>("create_sent_at")?.is_some(),
        deployment: r
            .try_get::<Option<i64>, _>("deployment_id")?
            .map(DeploymentId),
        reply: r.try_get("reply_text")?,
        reply_sent: r.try_get::<Option<i64>, _>("reply_sent_at")?.is_some(),
        reply_id: r.try_get("reply_id")?,
        final_text: r.try_get("final_text")?,
        edited: r.try_get("edited")?,
        done: r.try_get::<Option<i64>, _>("done_at")?.is_some(),
    })
}

#[async_trait]
impl Commands for PgStore {
    async fn record_command(&self, c: &NewCommand) -> Result<bool> {
        let n = sqlx::query(
            "INSERT INTO pr_commands (repository, comment_id, number, login, line,
                 installation_id, created_at, next_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
             ON CONFLICT (repository, comment_id) DO NOTHING",
        )
        .bind(&c.repository)
        .bind(c.comment_id)
        .bind(c.number)
        .bind(&c.login)
        .bind(&c.line)
        .bind(c.installation_id)
        .bind(Timestamp::now())
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
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
        let n = sqlx::query(
            "UPDATE pr_commands SET
                 reacted = reacted OR $3,
                 create_sent_at = CASE WHEN $4 THEN COALESCE(create_sent_at, $11)
                                       ELSE create_sent_at END,
                 deployment_id = COALESCE($5, deployment_id),
                 reply_text = COALESCE($6, reply_text),
                 reply_sent_at = CASE WHEN $7 THEN COALESCE(reply_sent_at, $11)
                                      ELSE reply_sent_at END,
                 reply_id = COALESCE($8, reply_id),
                 edited = edited OR $9,
                 done_at = CASE WHEN $10 THEN $11 ELSE done_at END,
                 lease_owner = CASE WHEN $10 THEN NULL ELSE lease_owner END,
                 next_at = COALESCE($12, next_at)
             WHERE seq = $1 AND lease_owner = $2 AND done_at IS NULL",
        )
        .bind(seq)
        .bind(&owner.0)
        .bind(ch.reacted)
        .bind(ch.create_sent)
        .bind(ch.deployment.map(|d| d.0))
        .bind(&ch.reply)
        .bind(ch.reply_sent)
        .bind(ch.reply_id)
        .bind(ch.edited)
        .bind(ch.done)
        .bind(Timestamp::now())
        .bind(ch.lease_until)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    async fn command_later(&self, seq: i64, owner: &Owner, at: Timestamp) -> Result<bool> {
        looks::later(self, TABLE, OPEN, seq, owner, at).await
    }

    async fn park_command(&self, seq: i64, owner: &Owner) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE pr_commands
             SET next_at = CASE WHEN final_text IS NULL THEN $1 ELSE $2 END, lease_owner = NULL
             WHERE seq = $3 AND lease_owner = $4 AND done_at IS NULL",
        )
        .bind(PARKED)
        .bind(Timestamp::now())
        .bind(seq)
        .bind(&owner.0)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    async fn command_deployment_ended(&self, id: DeploymentId, text: &str) -> Result<u64> {
        let n = sqlx::query(
            "UPDATE pr_commands
             SET final_text = $1,
                 next_at = CASE WHEN lease_owner IS NULL THEN $2 ELSE next_at END
             WHERE deployment_id = $3 AND done_at IS NULL",
        )
        .bind(text)
        .bind(Timestamp::now())
        .bind(id.0)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n)
    }

    async fn release_commands(&self) -> Result<u64> {
        looks::release(self, TABLE, OPEN).await
    }

    async fn command_of(&self, id: DeploymentId) -> Result<Option<CommandRecord>> {
        let row = sqlx::query(
            "SELECT * FROM pr_commands WHERE deployment_id = $1 ORDER BY seq DESC LIMIT 1",
        )
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(record_from_row).transpose()?)
    }
}
