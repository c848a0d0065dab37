-- [commands]: each pull request comment that is a command, once (the
-- unique key: a comment delivered twice acts once), and how far it got.
CREATE TABLE pr_commands (
    seq             BIGSERIAL PRIMARY KEY,
    repository      TEXT    NOT NULL,
    comment_id      BIGINT NOT NULL,
    number          BIGINT NOT NULL,   -- the pull request
    login           TEXT    NOT NULL,
    line            TEXT    NOT NULL,   -- the command, as written
    installation_id BIGINT,
    created_at      BIGINT NOT NULL,   -- ms since the epoch
    next_at         BIGINT NOT NULL,   -- the next look
    lease_owner     TEXT,
    reacted         BOOLEAN NOT NULL DEFAULT false,
    create_sent_at  BIGINT,            -- a deployment was asked of GitHub
    deployment_id   BIGINT,
    reply_text      TEXT,
    reply_sent_at   BIGINT,            -- the reply was posted, or may have been
    reply_id        BIGINT,
    final_text      TEXT,               -- the deployment's end, for the reply
    edited          BOOLEAN NOT NULL DEFAULT false,
    done_at         BIGINT,
    UNIQUE (repository, comment_id)
);
CREATE INDEX pr_commands_due ON pr_commands (next_at) WHERE done_at IS NULL;
CREATE INDEX pr_commands_deployment ON pr_commands (deployment_id);
