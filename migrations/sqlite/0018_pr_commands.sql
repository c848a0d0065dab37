-- [commands]: each pull request comment that is a command, once (the
-- unique key: a comment delivered twice acts once), and how far it got.
CREATE TABLE pr_commands (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    repository      TEXT    NOT NULL,
    comment_id      INTEGER NOT NULL,
    number          INTEGER NOT NULL,   -- the pull request
    login           TEXT    NOT NULL,
    line            TEXT    NOT NULL,   -- the command, as written
    installation_id INTEGER,
    created_at      INTEGER NOT NULL,   -- ms since the epoch
    next_at         INTEGER NOT NULL,   -- the next look
    lease_owner     TEXT,
    reacted         INTEGER NOT NULL DEFAULT 0,
    create_sent_at  INTEGER,            -- a deployment was asked of GitHub
    deployment_id   INTEGER,
    reply_text      TEXT,
    reply_sent_at   INTEGER,            -- the reply was posted, or may have been
    reply_id        INTEGER,
    final_text      TEXT,               -- the deployment's end, for the reply
    edited          INTEGER NOT NULL DEFAULT 0,
    done_at         INTEGER,
    UNIQUE (repository, comment_id)
);
CREATE INDEX pr_commands_due ON pr_commands (next_at) WHERE done_at IS NULL;
CREATE INDEX pr_commands_deployment ON pr_commands (deployment_id);
