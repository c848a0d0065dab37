-- Deployments an operator asked for from the command line (ferry deploy,
-- ferry rollback), until a running ferry has asked GitHub and recorded the
-- answer the command waits for. No ferry takes one after its deadline.
CREATE TABLE deploy_requests (
    seq               INTEGER PRIMARY KEY AUTOINCREMENT,
    actor             TEXT    NOT NULL,
    repository        TEXT    NOT NULL,
    environment       TEXT    NOT NULL,
    git_ref           TEXT    NOT NULL,
    task              TEXT    NOT NULL,
    payload           TEXT    NOT NULL,   -- JSON
    description       TEXT    NOT NULL,
    skip_contexts     INTEGER NOT NULL,   -- send required_contexts: []
    production        INTEGER,            -- NULL: not sent
    transient         INTEGER,
    rollback_of       INTEGER,
    created_at        INTEGER NOT NULL,   -- ms since the epoch
    deadline          INTEGER NOT NULL,
    taken_at          INTEGER,
    taken_by          TEXT,
    withdrawn_at      INTEGER,
    answer_kind       TEXT,               -- created, refused, unreachable, in_doubt
    answer_deployment INTEGER,
    answer_text       TEXT
);
CREATE INDEX deploy_requests_pending ON deploy_requests (seq)
    WHERE taken_at IS NULL AND withdrawn_at IS NULL;
