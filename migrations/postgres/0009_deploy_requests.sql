-- Deployments an operator asked for from the command line (ferry deploy,
-- ferry rollback), until one replica of the running ferry has asked GitHub
-- and recorded the answer the command waits for. No ferry takes one after its deadline.
CREATE TABLE deploy_requests (
    seq               BIGSERIAL PRIMARY KEY,
    actor             TEXT    NOT NULL,
    repository        TEXT    NOT NULL,
    environment       TEXT    NOT NULL,
    git_ref           TEXT    NOT NULL,
    task              TEXT    NOT NULL,
    payload           TEXT    NOT NULL,   -- JSON
    description       TEXT    NOT NULL,
    skip_contexts     BOOLEAN NOT NULL,   -- send required_contexts: []
    production        BOOLEAN,            -- NULL: not sent
    transient         BOOLEAN,
    rollback_of       BIGINT,
    created_at        BIGINT  NOT NULL,   -- ms since the epoch
    deadline          BIGINT  NOT NULL,
    taken_at          BIGINT,
    taken_by          TEXT,
    withdrawn_at      BIGINT,
    answer_kind       TEXT,               -- created, refused, unreachable, in_doubt
    answer_deployment BIGINT,
    answer_text       TEXT
);
CREATE INDEX deploy_requests_pending ON deploy_requests (seq)
    WHERE taken_at IS NULL AND withdrawn_at IS NULL;
